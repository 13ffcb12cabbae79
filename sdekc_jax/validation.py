"""Input checks shared by the estimator, the methods and the CLI: one clear error per problem."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .config import SKIP_PRESETS


def check_images(x: Any, name: str = "X") -> np.ndarray:
    """Validate images and return them as NHWC float32.

    Accepts (N, H, W) (a channel axis is added) and (N, H, W, C). uint8 input is scaled to
    [0, 1] by 1/255; other integer types are refused (their range is unknown); float64 is cast.
    """
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} has dtype {x.dtype}; pass float images (e.g. in [0, 1]) or uint8 (scaled by 1/255)")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{name} must be images of shape (N, H, W) or (N, H, W, C); got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf ({int(np.size(x) - np.isfinite(x).sum())} values); clean the data first")
    return x


def resolve_skips(skip_weights: str | Sequence[float] | None) -> tuple[float, float] | None:
    """A preset name ("swapped", "paper-text", "none"), a pair (w_enc, w_dec), or None."""
    if isinstance(skip_weights, str):
        if skip_weights not in SKIP_PRESETS:
            raise ValueError(f"unknown skip preset {skip_weights!r}; choose one of {sorted(SKIP_PRESETS)} or pass (w_enc, w_dec)")
        return SKIP_PRESETS[skip_weights]
    if skip_weights is None:
        return None
    try:
        w = tuple(float(v) for v in skip_weights)
    except (TypeError, ValueError):
        w = ()
    if len(w) != 2 or not all(np.isfinite(w)):
        raise ValueError(f"skip_weights must be two finite numbers (w_enc, w_dec), a preset name or None; got {skip_weights!r}")
    return w
