"""Small helpers shared by the benchmark scripts."""
from __future__ import annotations

import json


def write_json(path: str | None, rows) -> None:
    """Write the measured rows to ``path`` (when given) as JSON."""
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)
