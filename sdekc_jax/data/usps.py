"""USPS: DEKM's USPS.h5, the LIBSVM files usps / usps.t, or the copy embedded in the package
(``usps.npz`` next to this module, see README.md there)."""

from __future__ import annotations

import bz2
import importlib.resources
from pathlib import Path

import numpy as np

from .common import DatasetInfo, _check_folder, _missing_files_error, _splits, _unreadable_file_error, _verify_checksum
from .formats import _read_h5

_USPS_SCALE = 2000  # usps.npz stores round(x * 2000) as uint16 (USPS.h5 has 2001 grey levels)
USPS_LIBSVM_FILES = {"train": "usps", "test": "usps.t"}  # each plain or with .bz2
_USPS_H5_SUFFIXES = (".h5", ".hdf5")


def _read_usps_libsvm(info: DatasetInfo, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a LIBSVM-format USPS file (plain or bzip2, detected from the content).

    Lines ``label index:value ...``: labels 1..10, where label k is the digit k-1 (the convention
    of the LIBSVM page and of torchvision's USPS); indices 1..256 are the pixels of the 16x16 image
    in row-major order; values in [-1, 1].  A feature missing from a line is 0, as in any LIBSVM
    sparse file; the pixel value is then ``(v + 1) / 2`` in [0, 1] (so a missing feature reads as 0.5).
    """
    raw = path.read_bytes()
    if raw[:3] == b"BZh":
        try:
            raw = bz2.decompress(raw)
        except (OSError, ValueError, EOFError) as exc:
            raise _unreadable_file_error(info, path, f"corrupt bzip2 data ({exc})") from exc
    try:
        lines = raw.decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise _unreadable_file_error(info, path, "not a LIBSVM text file") from exc
    xs, ys = [], []
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        label, *features = line.split()
        row = np.zeros(256, np.float64)
        try:
            if sum(f.count(":") for f in features) != len(features):
                raise ValueError("features must be index:value")
            pairs = np.array(" ".join(features).replace(":", " ").split(), dtype=np.float64).reshape(-1, 2)
            index, value = pairs[:, 0], pairs[:, 1]
            if pairs.size and (np.any(index != np.round(index)) or index.min() < 1 or index.max() > 256):
                raise ValueError("feature indices must be integers 1..256")
            if pairs.size and not (np.isfinite(value).all() and value.min() >= -1 - 1e-6 and value.max() <= 1 + 1e-6):
                raise ValueError("feature values must be in [-1, 1]")
            row[index.astype(np.int64) - 1] = value
            digit = float(label)
            if digit != round(digit) or not 1 <= digit <= 10:
                raise ValueError(f"label {label} is not an integer 1..10")
        except ValueError as exc:
            raise _unreadable_file_error(info, path, f"line {lineno}: {exc}") from exc
        xs.append(row)
        ys.append(int(digit) - 1)
    if not xs:
        raise _unreadable_file_error(info, path, "no samples in the file")
    x = np.clip((np.stack(xs) + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
    return x, np.asarray(ys, np.int32)


def _find_usps_libsvm(folder: Path, split: str) -> Path | None:
    base = USPS_LIBSVM_FILES[split]
    return next((p for p in (folder / f"{base}.bz2", folder / base) if p.is_file()), None)


def _load_usps(data_dir: Path | None, subset: str) -> tuple[np.ndarray, np.ndarray]:
    info = USPS
    splits = _splits(subset)
    if data_dir is None:
        ref = importlib.resources.files(__package__).joinpath("usps.npz")
        with importlib.resources.as_file(ref) as npz_path, np.load(npz_path) as npz:
            xs = [npz[f"{s}_x"].astype(np.float32) / np.float32(_USPS_SCALE) for s in splits]
            ys = [npz[f"{s}_y"] for s in splits]
        return np.concatenate(xs), np.concatenate(ys)

    libsvm_names = {n for b in USPS_LIBSVM_FILES.values() for n in (b, f"{b}.bz2")}
    if data_dir.is_file() and data_dir.name in libsvm_names:
        data_dir = data_dir.parent  # the path of one LIBSVM file: read its folder
    is_file_path = data_dir.is_file() or data_dir.suffix.lower() in _USPS_H5_SUFFIXES
    path = data_dir if is_file_path else data_dir / "USPS.h5"
    if not path.is_file():
        _check_folder(info, path.parent)
        if is_file_path:
            raise _missing_files_error(info, path.parent, [path.name])
        found = {s: _find_usps_libsvm(data_dir, s) for s in splits}
        if not any(found.values()):
            raise _missing_files_error(
                info, data_dir, [f"USPS.h5 (or the LIBSVM files {' and '.join(USPS_LIBSVM_FILES.values())}, plain or .bz2)"]
            )
        missing = [f"{USPS_LIBSVM_FILES[s]}.bz2 (or {USPS_LIBSVM_FILES[s]})" for s, p in found.items() if p is None]
        if missing:
            raise _missing_files_error(info, data_dir, missing)
        xs, ys = [], []
        for p in found.values():
            _verify_checksum("usps", p)
            x, y = _read_usps_libsvm(info, p)
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)
    _verify_checksum("usps", path)
    arrays = _read_h5(
        info, path, tuple(f"{s}/{n}" for s in splits for n in ("data", "target")),
        "HDF5 groups train/test, each with data (N,256) and target (N,)",
    )
    xs = [arrays[f"{s}/data"].astype(np.float32) for s in splits]
    return np.concatenate(xs), np.concatenate([arrays[f"{s}/target"] for s in splits])


USPS = DatasetInfo(
    name="usps",
    shape=(16, 16, 1),
    n_clusters=10,
    files=("USPS.h5", "usps.bz2", "usps.t.bz2"),
    files_note=(
        "USPS.h5, or else the LIBSVM files usps (train) and usps.t (test), plain or .bz2; "
        "data_dir may also be the path of the .h5 file; data_dir=None uses the copy in the package"
    ),
    source=(
        "https://github.com/spdj2271/DEKM (USPS.h5 of the DEKM reference code); LIBSVM format: "
        "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps"
    ),
    loader=_load_usps,
    n_samples={"train": 7291, "test": 2007, "all": 9298},
)
