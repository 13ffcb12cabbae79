"""The registry of data sets (:data:`DATASETS`) and :func:`load_dataset`, which checks the name and
subset, calls the data set's loader and converts and validates what it returns."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .coil20 import COIL20
from .common import SUBSETS, DatasetInfo
from .frgc import FRGC
from .mnist import FASHION_MNIST, MNIST
from .seismic import SEISMIC
from .usps import USPS

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (USPS, MNIST, FASHION_MNIST, COIL20, FRGC, SEISMIC)}


def _canonical_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS:
        default = sorted(k for k, v in DATASETS.items() if not v.needs_data_dir)
        files_only = sorted(k for k, v in DATASETS.items() if v.needs_data_dir)
        raise ValueError(
            f"unknown data set {name!r}; known: {', '.join(default)}"
            + (f"; with data_dir only: {', '.join(files_only)}" if files_only else "")
        )
    return key


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, subset: str = "all"
) -> tuple[np.ndarray, np.ndarray]:
    """Load a data set as ``(x, y)``: NHWC float32 images in [0, 1] and int32 labels 0..K-1.

    Args:
      name: a key of :data:`DATASETS` (case-insensitive; ``_`` and ``-`` are equivalent).
      data_dir: folder with the data set's files (see ``DATASETS[name].files`` and ``.files_note``);
        None uses the default source of the data set (embedded copy, system package or TFDS);
        required for the data sets without one (``DATASETS[name].needs_data_dir``).
      subset: "train", "test" or "all" (train followed by test); only "all" for the data sets
        without a split (coil20, frgc, seismic).
    """
    key = _canonical_name(name)
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    info = DATASETS[key]
    x, y = info.loader(None if data_dir is None else Path(data_dir).expanduser(), subset)

    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max)
    if x.ndim < 2 or x[0].size != np.prod(info.shape):
        raise ValueError(f"{key}: images of shape {x.shape[1:]}, expected {info.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32).reshape((len(x), *info.shape))
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"{key}: {len(x)} images but {len(y)} labels")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{key}: pixel values outside [0, 1] (min {x.min()}, max {x.max()})")
    if y.size and (y.min() < 0 or y.max() >= info.n_clusters):
        raise ValueError(f"{key}: labels outside 0..{info.n_clusters - 1} (min {y.min()}, max {y.max()})")
    return x, y.astype(np.int32)
