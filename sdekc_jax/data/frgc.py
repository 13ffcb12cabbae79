"""FRGC: DEKM's FRGC.h5, or a folder of per-subject image folders (resized to 32x32 by area
averaging)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (DatasetInfo, _check_finite, _file_or_folder, _missing_files_error, _only_all, _remap_labels,
                     _require_data_dir, _unreadable_file_error, _verify_checksum)
from .formats import _read_h5, _resize_list, _to_rgb, read_image, read_png, resize_images

FRGC_SIZE = (32, 32)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".gif")


def _frgc_from_h5(info: DatasetInfo, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (N, H, W, 3) or (N, 3, W, H), values 0..255 or 0..1; ``labels`` any values.

    The channels-first layout is DEKM's FRGC.h5, written from MATLAB: its axes are (N, C, W, H)
    and it is converted as DEKM's utils.py does, ``np.swapaxes(data, 1, 3)``.
    """
    arrays = _read_h5(info, path, ("data", "labels"), "HDF5 datasets data and labels")
    data, labels = arrays["data"], arrays["labels"].reshape(-1)
    if data.ndim == 4 and data.shape[-1] == 3:
        x = data
    elif data.ndim == 4 and data.shape[1] == 3:
        x = np.swapaxes(data, 1, 3)
    else:
        x = None
    if x is None or len(labels) != len(data):
        raise _unreadable_file_error(
            info, path, f"data has shape {data.shape}, labels {labels.shape}; expected data (N, 32, 32, 3) "
            "or (N, 3, 32, 32) and labels (N,)"
        )
    x = x.astype(np.float32)
    _check_finite(info, path, x)
    if x.size and (x.min() < 0 or x.max() > 255):
        raise _unreadable_file_error(info, path, f"pixel values in [{x.min()}, {x.max()}], expected 0..255 or 0..1")
    if x.size and x.max() > 1:
        x = x / np.float32(255)
    return resize_images(x, FRGC_SIZE, "area"), _remap_labels(labels)


def _frgc_from_folders(info: DatasetInfo, folder: Path, classes: list[tuple[Path, list[Path]]]):
    """One sub-folder per subject (label = rank of its name), images sorted by name, resized to 32x32."""
    if len(classes) > info.n_clusters:
        raise _unreadable_file_error(
            info, folder, f"{len(classes)} class folders with images, expected at most {info.n_clusters}"
        )
    paths = [p for _, files in classes for p in files]
    y = np.repeat(np.arange(len(classes), dtype=np.int32), [len(files) for _, files in classes])
    try:  # a .png file must be a PNG; the other suffixes: any format Pillow recognises
        images = [read_png(p) if p.suffix.lower() == ".png" else read_image(p) for p in paths]
    except ValueError as exc:
        raise _unreadable_file_error(info, folder, str(exc)) from exc
    return _resize_list([_to_rgb(img) for img in images], FRGC_SIZE, "area"), y


def _load_frgc(data_dir: Path | None, subset: str) -> tuple[np.ndarray, np.ndarray]:
    info = FRGC
    _only_all(info, subset)
    data_dir = _require_data_dir(info, data_dir)
    if _file_or_folder(info, data_dir, (".h5", ".hdf5")):
        path = data_dir
    elif (data_dir / "FRGC.h5").is_file():
        path = data_dir / "FRGC.h5"
    else:
        classes = []
        for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in sub.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
            if files:
                classes.append((sub, files))
        if not classes:
            raise _missing_files_error(
                info, data_dir, ["FRGC.h5 (or one sub-folder of PNG images per subject)"]
            )
        return _frgc_from_folders(info, data_dir, classes)
    _verify_checksum("frgc", path)
    return _frgc_from_h5(info, path)


FRGC = DatasetInfo(
    name="frgc",
    shape=(*FRGC_SIZE, 3),
    n_clusters=20,
    files=("FRGC.h5",),
    files_note=(
        "HDF5 datasets data (N, 32, 32, 3) or DEKM's (N, 3, 32, 32) and labels; data_dir may be the path of "
        "the .h5 file; or a folder with one sub-folder of images per subject (PNG, JPEG, BMP, PPM/PGM, TIFF "
        "or GIF), resized to 32x32 RGB; subset 'all' only"
    ),
    source="https://github.com/spdj2271/DEKM (FRGC.h5 of the DEKM reference code)",
    loader=_load_frgc,
    n_samples={"all": 2462},
    needs_data_dir=True,
)
