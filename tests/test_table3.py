"""experiments/table3.py: resumable cells, budget caps recorded, the Markdown report."""
import importlib.util
import json
from pathlib import Path

import pytest

from sdekc_jax.methods import get_method

spec = importlib.util.spec_from_file_location("table3", Path(__file__).resolve().parents[1] / "experiments" / "table3.py")
table3 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table3)


def test_budget_caps_bind_only_below_the_defaults():
    dec = get_method("dec")
    assert table3.budget_overrides(dec, "usps", 100, None) == {}                 # USPS pretrains 50 < 100
    assert table3.budget_overrides(dec, "usps", 10, 3000) == {"pretrain_epochs": 10, "max_iters": 101}
    assert table3.budget_overrides(get_method("sdekc"), "usps", None, 10 ** 6) == {}
    assert table3.budget_overrides(get_method("kmeans"), "usps", 1, 1) == {}


def test_cells_are_kept_and_skipped(tmp_path, monkeypatch):
    out = tmp_path / "t3"
    assert table3.main(["--methods", "kmeans", "--seeds", "0", "1", "--out", str(out)]) == 0
    cells = json.loads((out / "table3.json").read_text())["cells"]
    assert set(cells) == {"kmeans|usps|0", "kmeans|usps|1"}
    assert all(0.5 < c["acc"] < 0.8 and c["budget"] == "full" and not c["reduced_budget"] for c in cells.values())
    md = (out / "table3.md").read_text()
    assert "| usps | kmeans | 2 |" in md

    calls = []
    monkeypatch.setattr(table3, "run", lambda *a, **k: calls.append(a) or pytest.fail("finished cell recomputed"))
    assert table3.main(["--methods", "kmeans", "--seeds", "0", "1", "--out", str(out)]) == 0
    assert calls == []


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise FloatingPointError("loss became nan")

    monkeypatch.setattr(table3, "run", boom)
    out = tmp_path / "t3"
    assert table3.main(["--methods", "kmeans", "--seeds", "0", "1", "--out", str(out)]) == 0
    cells = json.loads((out / "table3.json").read_text())["cells"]
    assert len(cells) == 2 and all("loss became nan" in c["error"] for c in cells.values())
    assert "Failed cells" in (out / "table3.md").read_text()
