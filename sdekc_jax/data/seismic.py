"""Seismic data (not public; provided by the SDEKC paper's authors): x.npy + y.npy, or one .npz
with x and y."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .common import (DatasetInfo, _check_finite, _file_or_folder, _missing_files_error, _only_all, _remap_labels,
                     _require_data_dir, _unreadable_file_error)


def _seismic_arrays(info: DatasetInfo, data_dir: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    if _file_or_folder(info, data_dir, (".npz",)):
        npz_path = data_dir
    elif (data_dir / "x.npy").is_file() and (data_dir / "y.npy").is_file():
        try:
            return data_dir, np.load(data_dir / "x.npy", allow_pickle=False), np.load(data_dir / "y.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise _unreadable_file_error(info, data_dir, str(exc)) from exc
    else:
        npzs = sorted(p for p in data_dir.glob("*") if p.suffix.lower() == ".npz" and p.is_file())
        if len(npzs) > 1:
            raise _unreadable_file_error(
                info, data_dir, f"several .npz files ({', '.join(p.name for p in npzs)}); pass the path of one as data_dir"
            )
        if not npzs:
            missing = [n for n in ("x.npy", "y.npy") if not (data_dir / n).is_file()]
            raise _missing_files_error(info, data_dir, [f"{' and '.join(missing)} (or one .npz file with x and y)"])
        npz_path = npzs[0]
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            keys = {k.lower(): k for k in npz.files}
            if "x" not in keys or "y" not in keys:
                raise ValueError(f"arrays {', '.join(npz.files) or 'none'}, expected x and y")
            return npz_path, npz[keys["x"]], npz[keys["y"]]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise _unreadable_file_error(info, npz_path, str(exc)) from exc


def _load_seismic(data_dir: Path | None, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """x (N, 16, 48) or (N, 16, 48, 1); values outside [0, 1] are min-max scaled over the whole
    array to [0, 1]; labels (two values) remapped to 0..1 in sorted order."""
    info = SEISMIC
    _only_all(info, subset)
    data_dir = _require_data_dir(info, data_dir)
    where, x, y = _seismic_arrays(info, data_dir)
    y = np.asarray(y).reshape(-1)
    shape = info.shape
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != shape or len(y) != len(x):
        raise _unreadable_file_error(
            info, where, f"x has shape {x.shape}, y {y.shape}; expected x (N, {shape[0]}, {shape[1]}) or "
            f"(N, {shape[0]}, {shape[1]}, 1) and y (N,)"
        )
    x = x.astype(np.float64)
    _check_finite(info, where, x)
    lo, hi = (x.min(), x.max()) if x.size else (0.0, 0.0)
    if lo < 0 or hi > 1:
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if len(np.unique(y)) > info.n_clusters:
        raise _unreadable_file_error(info, where, f"labels {np.unique(y)[:10].tolist()}: more than two classes")
    return x.astype(np.float32), _remap_labels(y)


SEISMIC = DatasetInfo(
    name="seismic",
    shape=(16, 48, 1),
    n_clusters=2,
    files=("x.npy", "y.npy"),
    files_note=(
        "x (N, 16, 48) or (N, 16, 48, 1) and y (N,) with two label values; or one .npz file holding x and y "
        "(data_dir may be its path); values outside [0, 1] are min-max scaled; subset 'all' only"
    ),
    source="no public address: the SDEKC paper's seismic data is not public, it is provided by the paper's authors",
    loader=_load_seismic,
    n_samples={"all": 9200},
    needs_data_dir=True,
)
