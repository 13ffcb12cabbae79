"""MNIST and Fashion-MNIST: a folder of IDX files, Debian's dataset-fashion-mnist package, or
TensorFlow Datasets."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np

from .common import DatasetInfo, _check_folder, _missing_files_error, _splits, _unreadable_file_error, _verify_checksum
from .formats import read_idx

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Where `apt-get install dataset-fashion-mnist` puts the files on Debian/Ubuntu.  The loader reads
# this module's attribute when called (patch it here, not on sdekc_jax.data, to redirect it).
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def _find_idx(info: DatasetInfo, folder: Path, subset: str) -> list[Path]:
    """Paths of the IDX files `subset` needs: ``name.gz`` or plain ``name``."""
    _check_folder(info, folder)
    found, missing = [], []
    for split in _splits(subset):
        for base in IDX_FILES[split]:
            candidates = [folder / f"{base}.gz", folder / base]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                missing.append(f"{base}.gz")
            else:
                found.append(path)
    if missing:
        raise _missing_files_error(info, folder, missing)
    return found


def _load_idx_folder(info: DatasetInfo, folder: Path, subset: str):
    paths = _find_idx(info, folder, subset)
    xs, ys = [], []
    for img_path, lbl_path in zip(paths[0::2], paths[1::2]):
        for p in (img_path, lbl_path):
            _verify_checksum(info.name, p)
        try:
            x, y = read_idx(img_path, ndim=3), read_idx(lbl_path, ndim=1)
        except ValueError as exc:
            raise _unreadable_file_error(info, folder, str(exc)) from exc
        if len(x) != len(y):
            raise _unreadable_file_error(
                info, img_path, f"{len(x)} images but {len(y)} labels in {lbl_path.name}"
            )
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _load_tfds(info: DatasetInfo, tfds_name: str, subset: str):
    """Load through TensorFlow Datasets (downloads on first use).

    With tensorflow installed: ``tfds.load(..., batch_size=-1, as_supervised=True)``.  Without
    tensorflow, TFDS can only read a data set already prepared in ``array_record`` format
    (``tfds.data_source``); downloading/preparing MNIST needs tensorflow.
    """
    hint = (
        f"download the IDX files ({', '.join(info.files)}) from {info.source} "
        "and pass their folder as data_dir"
    )
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise ImportError(
            f"{info.name}: loading without data_dir needs tensorflow-datasets; or {hint}."
        ) from exc

    xs, ys = [], []
    if importlib.util.find_spec("tensorflow") is not None:
        for split in _splits(subset):
            ds = tfds.load(tfds_name, split=split, batch_size=-1, as_supervised=True)
            x, y = tfds.as_numpy(ds)
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    for split in _splits(subset):
        try:
            source = tfds.data_source(tfds_name, split=split, download=False)
            examples = [source[i] for i in range(len(source))]
        except Exception as exc:  # noqa: BLE001 - re-raised with the explanation below
            raise FileNotFoundError(
                f"{info.name}: tensorflow is not installed, and TensorFlow Datasets needs it to "
                f"download and prepare '{tfds_name}' (tfds.load). Without tensorflow TFDS can only "
                f"read a copy already prepared with file_format='array_record' (tfds.data_source), "
                f"which failed: {exc}. Install tensorflow, or {hint}."
            ) from exc
        xs.append(np.stack([np.asarray(e["image"]) for e in examples]))
        ys.append(np.array([e["label"] for e in examples]))
    return np.concatenate(xs), np.concatenate(ys)


def _load_mnist(data_dir: Path | None, subset: str):
    if data_dir is None:
        return _load_tfds(MNIST, "mnist", subset)
    return _load_idx_folder(MNIST, data_dir, subset)


def _load_fashion_mnist(data_dir: Path | None, subset: str):
    if data_dir is None:
        if DEBIAN_FASHION_MNIST_DIR.is_dir():
            return _load_idx_folder(FASHION_MNIST, DEBIAN_FASHION_MNIST_DIR, subset)
        return _load_tfds(FASHION_MNIST, "fashion_mnist", subset)
    return _load_idx_folder(FASHION_MNIST, data_dir, subset)


_IDX_NOTE = "gzipped or not; only the pair of the requested subset is needed"
_IDX_GZ = tuple(f"{b}.gz" for s in ("train", "test") for b in IDX_FILES[s])

MNIST = DatasetInfo(
    name="mnist",
    shape=(28, 28, 1),
    n_clusters=10,
    files=_IDX_GZ,
    files_note=_IDX_NOTE,
    source="http://yann.lecun.com/exdb/mnist/",
    loader=_load_mnist,
    n_samples={"train": 60000, "test": 10000, "all": 70000},
)

FASHION_MNIST = dataclasses.replace(
    MNIST,
    name="fashion-mnist",
    source="https://github.com/zalandoresearch/fashion-mnist (Debian: apt-get install dataset-fashion-mnist)",
    loader=_load_fashion_mnist,
)
