"""Input checks shared by the estimator, the methods and the CLI: one clear error per problem."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .config import SKIP_PRESETS, check_setting


def check_images(x: Any, name: str = "X", *, image_shape: Sequence[int] | None = None,
                 allow_flat: bool = False) -> np.ndarray:
    """Validate images and return them as NHWC float32.

    Accepts (N, H, W) (a channel axis is added) and (N, H, W, C). uint8 input is scaled to
    [0, 1] by 1/255; other integer types are refused (their range is unknown); float64 is cast.
    Flat (N, D) input is reshaped to ``(N, *image_shape)`` when ``image_shape`` is given, to
    (N, 1, D, 1) when ``allow_flat`` (models that flatten anyway: raw K-means, the dense AE), and
    refused otherwise.
    """
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[0] > 0:
        if image_shape is not None:
            shape = tuple(int(v) for v in image_shape)
            if int(np.prod(shape)) != x.shape[1]:
                raise ValueError(f"{name} has {x.shape[1]} features per sample, image_shape {shape} needs {int(np.prod(shape))}")
            x = x.reshape(x.shape[0], *shape)
        elif allow_flat:
            x = x.reshape(x.shape[0], 1, x.shape[1], 1)
        else:
            raise ValueError(f"{name} is flat, shape {x.shape}: this method's convolutional autoencoder needs images; "
                             f"reshape to (N, H, W) or (N, H, W, C), or pass image_shape=(H, W, C)")
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
    check_pixel_range(x, name)
    return x


PIXEL_SLACK = 1e-3  # rounding slack around [0, 1]


def check_pixel_range(x: np.ndarray, name: str = "X") -> None:
    """Refuse images that are not finite or not in [0, 1] (within :data:`PIXEL_SLACK`), with the
    fix in the one-line message. The autoencoders, their learning rate and the reconstruction
    loss assume pixels in [0, 1]; data in 0..255 would train on a loss thousands of times too
    large, and absurd scales end in overflow."""
    x = np.asarray(x)
    finite = np.isfinite(x)
    if not finite.all():
        raise ValueError(f"{name} contains NaN or inf ({int(finite.size - finite.sum())} values); clean the data first")
    lo, hi = float(x.min()), float(x.max())
    if lo < -PIXEL_SLACK or hi > 1 + PIXEL_SLACK:
        fix = "divide by 255 (they look like 8-bit pixel values) or pass uint8" if lo >= 0 and hi <= 255 else \
            "rescale them, e.g. (X - X.min()) / (X.max() - X.min())"
        raise ValueError(f"{name} has values in [{lo:.6g}, {hi:.6g}], but the models expect images in [0, 1]: {fix}")


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


def check_fit_data(x: np.ndarray, n_clusters: Any, name: str = "X") -> None:
    """Checks that need the whole training set: a valid ``n_clusters`` and data that vary."""
    n = x.shape[0]
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or not 2 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be an integer in [2, n_samples={n}], got {n_clusters!r}")
    if n > 1 and np.all(x == x[:1]):
        raise ValueError(f"{name} has no variation: all {n} samples are identical, so there is nothing to cluster")


def check_seeds(seeds: Any, label: str = "seeds") -> list[int]:
    """Distinct seeds in [0, 2**32 - 1] (:data:`~sdekc_jax.config.SEED_MAX`), as Python ints; one
    ValueError line naming ``label`` otherwise. JAX's PRNG keys take 32-bit seeds, so a seed
    outside that range would silently repeat another one (2**32 gives seed 0's run)."""
    try:
        seeds = list(seeds)
    except TypeError:
        raise ValueError(f"{label} must be a list of integers, got {seeds!r}") from None
    if not seeds:
        raise ValueError(f"{label} is empty: give at least one seed")
    out = [check_setting("seed", s, label) for s in seeds]
    dup = next((s for i, s in enumerate(out) if s in out[:i]), None)
    if dup is not None:
        raise ValueError(f"{label} lists seed {dup} twice: each seed is one run, and a repeat would count it twice "
                         f"in the mean")
    return out
