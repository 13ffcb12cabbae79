"""COIL-20: the coil-20-proc PNGs, a MATLAB .mat with fea/gnd, or DEKM's COIL20.h5; resized to
28x28 as the DEKM reference code does (``tf.image.resize(..., "bilinear")``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .common import (DatasetInfo, _check_finite, _file_or_folder, _missing_files_error, _only_all, _remap_labels,
                     _require_data_dir, _unreadable_file_error, _verify_checksum)
from .formats import _read_h5, _read_mat, _resize_list, _to_grey, read_png, resize_images

COIL20_SIZE = (28, 28)  # the paper resizes the 128x128 (or 32x32) images to 28x28
_COIL_PNG = re.compile(r"^obj(\d+)__(\d+)\.png$", re.IGNORECASE)


def _coil_pngs(folder: Path) -> list[tuple[int, int, Path]]:
    """(object, view, path) of the ``obj<k>__<view>.png`` files in `folder`, sorted by (object, view)."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _COIL_PNG.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(found, key=lambda t: t[:2])


def _coil_from_mat(info: DatasetInfo, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``fea`` (N, s*s): each row one image stored column-major (MATLAB), ``gnd`` 1..20."""
    mat = _read_mat(info, path, ("fea", "gnd"))
    fea, gnd = mat["fea"].astype(np.float32), mat["gnd"].reshape(-1)
    side = round(float(np.sqrt(fea.shape[-1]))) if fea.ndim == 2 else 0
    if fea.ndim != 2 or side * side != fea.shape[1] or len(gnd) != len(fea):
        raise _unreadable_file_error(
            info, path, f"fea has shape {fea.shape} and gnd {mat['gnd'].shape}; expected fea (N, 1024) "
            "(32x32 images, one per row) and gnd (N, 1)"
        )
    x = fea.reshape(len(fea), side, side).transpose(0, 2, 1)  # = each row reshaped with order="F"
    _check_finite(info, path, x)
    if x.size and x.min() < 0:
        raise _unreadable_file_error(info, path, f"negative pixel values (min {x.min()})")
    if x.size and x.max() > 1:
        x = x / x.max()  # grey levels 0..255 (or any other positive range) -> [0, 1]
    y = gnd.astype(np.int64)
    if y.size and y.min() >= 1:
        y = y - 1  # gnd 1..20 -> 0..19
    return x[..., None], y


def _coil_from_h5(info: DatasetInfo, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """DEKM's COIL20.h5: ``data`` (N, 1, W, H) (written from MATLAB) 0..255, ``labels``.

    Converted as DEKM's utils.py does: squeeze, ``np.swapaxes(x, 1, 2)``, divide by 255 (when the
    values exceed 1); labels remapped to 0..19 in sorted order.
    """
    arrays = _read_h5(info, path, ("data", "labels"), "HDF5 datasets data and labels")
    data, labels = arrays["data"].astype(np.float32), arrays["labels"].reshape(-1)
    if data.ndim == 4 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim != 3 or len(labels) != len(data):
        raise _unreadable_file_error(
            info, path, f"data has shape {data.shape}, labels {labels.shape}; expected data (N, 1, W, H) and labels (N,)"
        )
    x = np.swapaxes(data, 1, 2)
    _check_finite(info, path, x)
    if x.size and x.max() > 1:
        x = x / np.float32(255)
    return x[..., None], _remap_labels(labels)


def _load_coil20(data_dir: Path | None, subset: str) -> tuple[np.ndarray, np.ndarray]:
    info = COIL20
    _only_all(info, subset)
    data_dir = _require_data_dir(info, data_dir)
    if _file_or_folder(info, data_dir, (".mat", ".h5", ".hdf5")):
        path = data_dir
    else:
        pngs = _coil_pngs(data_dir) or _coil_pngs(data_dir / "coil-20-proc")
        if pngs:
            bad = sorted({k for k, _, _ in pngs if not 1 <= k <= info.n_clusters})
            if bad:
                raise _unreadable_file_error(info, pngs[0][2].parent, f"object numbers {bad} outside 1..20")
            try:
                images = read_png([p for _, _, p in pngs])
            except ValueError as exc:
                raise _unreadable_file_error(info, pngs[0][2].parent, str(exc)) from exc
            x = _resize_list([_to_grey(img) for img in images], COIL20_SIZE, "bilinear")
            return x, np.array([k - 1 for k, _, _ in pngs], np.int32)
        mats = sorted(p for p in data_dir.glob("*") if p.suffix.lower() == ".mat" and p.is_file())
        preferred = [p for p in mats if p.name.lower() == "coil20.mat"]
        if preferred or len(mats) == 1:
            path = (preferred or mats)[0]
        elif mats:
            raise _unreadable_file_error(
                info, data_dir, f"several .mat files ({', '.join(p.name for p in mats)}); pass the path of one as data_dir"
            )
        elif (data_dir / "COIL20.h5").is_file():
            path = data_dir / "COIL20.h5"
        else:
            raise _missing_files_error(
                info, data_dir, ["obj<k>__<view>.png (here or in coil-20-proc/), or COIL20.mat, or COIL20.h5"]
            )
    _verify_checksum("coil20", path)
    if path.suffix.lower() == ".mat":
        x, y = _coil_from_mat(info, path)
    elif path.suffix.lower() in (".h5", ".hdf5"):
        x, y = _coil_from_h5(info, path)
    else:
        raise _unreadable_file_error(info, path, "expected a .mat or .h5 file, or a folder")
    order = np.argsort(y, kind="stable")  # by object; the file's order (the view) within an object
    return resize_images(x[order], COIL20_SIZE, "bilinear"), y[order]


COIL20 = DatasetInfo(
    name="coil20",
    shape=(*COIL20_SIZE, 1),
    n_clusters=20,
    files=("coil-20-proc/obj<k>__<view>.png", "COIL20.mat", "COIL20.h5"),
    files_note=(
        "any one of: the 1,440 processed 128x128 PNGs obj1__0.png..obj20__71.png (data_dir may be the "
        "coil-20-proc folder or its parent); a MATLAB file with fea (N x 1024, 32x32 images stored "
        "column-major) and gnd (1..20) (data_dir may be its path; a single .mat in the folder is used); "
        "DEKM's COIL20.h5 (data, labels). Resized to 28x28 (bilinear as tf.image.resize); subset 'all' only"
    ),
    source="https://www.cs.columbia.edu/CAVE/software/softlib/coil-20.php",
    loader=_load_coil20,
    n_samples={"all": 1440},
    needs_data_dir=True,
)
