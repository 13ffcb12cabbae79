"""Progress bars (tqdm) that write to stderr and can be switched off."""
from __future__ import annotations

from tqdm.auto import tqdm


def progress(iterable=None, **kwargs):
    kwargs.setdefault("leave", True)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
