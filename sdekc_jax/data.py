"""Data set loaders for the paper's benchmarks.

Every loader returns ``(x, y)`` as numpy arrays: images NHWC ``float32`` in ``[0, 1]`` and
``int32`` labels ``0..K-1``.  ``subset="all"`` is the training split followed by the test
split (the convention of the deep-clustering papers, which cluster both together).

Adding a data set is one loader function ``loader(data_dir: Path | None, subset: str) -> (x, y)``
plus one :class:`DatasetInfo` entry in :data:`DATASETS` (and its checksums in
:data:`KNOWN_SHA256`); :func:`load_dataset` does the name/subset checks and the final
conversion and validation.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.resources
import importlib.util
import os
import warnings
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["DATASETS", "KNOWN_SHA256", "DatasetInfo", "load_dataset"]

SUBSETS = ("all", "train", "test")

Loader = Callable[[Path | None, str], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Registry entry of a data set."""

    name: str
    shape: tuple[int, int, int]  # (H, W, C) of one image
    n_clusters: int
    files: tuple[str, ...]  # files expected in ``data_dir`` (alternatives described in `files_note`)
    source: str  # where the data set is published (for error messages)
    loader: Loader
    files_note: str = ""
    n_samples: dict[str, int] = dataclasses.field(default_factory=dict)  # subset -> count


# sha256 of known files, per data set and file name.  Several values are accepted where the
# same file is distributed with different gzip headers.
KNOWN_SHA256: dict[str, dict[str, tuple[str, ...]]] = {
    "usps": {
        # DEKM reference code (spdj2271/DEKM), see sdekc_jax/data/README.md.
        "USPS.h5": ("734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36",),
    },
    "mnist": {
        # Files of http://yann.lecun.com/exdb/mnist/ (as listed in TFDS' url_checksums/mnist.txt).
        "train-images-idx3-ubyte.gz": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",),
        "train-labels-idx1-ubyte.gz": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",),
        "t10k-images-idx3-ubyte.gz": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",),
        "t10k-labels-idx1-ubyte.gz": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",),
    },
    "fashion-mnist": {
        # First value: Debian package dataset-fashion-mnist; second: zalandoresearch's own
        # download (TFDS' url_checksums/fashion_mnist.txt).  Same data, different gzip headers.
        "train-images-idx3-ubyte.gz": (
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        ),
        "train-labels-idx1-ubyte.gz": (
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        ),
        "t10k-images-idx3-ubyte.gz": (
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
    },
}

# Where `apt-get install dataset-fashion-mnist` puts the files on Debian/Ubuntu.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------------------------
# Helpers shared by the loaders
# --------------------------------------------------------------------------------------------

_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """sha256 of a file, computed once per process (keyed by path, size and mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA256_CACHE[key] = h.hexdigest()
    return _SHA256_CACHE[key]


def _verify_checksum(dataset: str, path: Path) -> None:
    """Warn (don't fail) when a file with a known name has an unexpected sha256."""
    expected = KNOWN_SHA256.get(dataset, {}).get(path.name)
    if not expected:
        return
    actual = _sha256(path)
    if actual not in expected:
        warnings.warn(
            f"{dataset}: sha256 of {path} is {actual}, expected "
            f"{' or '.join(expected)}; the file may be corrupt or a different version.",
            stacklevel=2,
        )


def _missing_files_error(info: DatasetInfo, folder: Path, missing: list[str]) -> FileNotFoundError:
    note = f" ({info.files_note})" if info.files_note else ""
    return FileNotFoundError(
        f"{info.name}: missing file(s) {', '.join(missing)} in folder {folder}. "
        f"Expected files: {', '.join(info.files)}{note}. "
        f"The data set is published at {info.source}"
    )


def _unreadable_file_error(info: DatasetInfo, where: Path, why: str) -> ValueError:
    return ValueError(
        f"{info.name}: cannot read data in {where}: {why}. Expected files: {', '.join(info.files)}. "
        f"The data set is published at {info.source}"
    )


def _check_folder(info: DatasetInfo, data_dir: Path) -> None:
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"{info.name}: data folder {data_dir} does not exist. Expected files: "
            f"{', '.join(info.files)}. The data set is published at {info.source}"
        )


def _splits(subset: str) -> tuple[str, ...]:
    return ("train", "test") if subset == "all" else (subset,)


# --------------------------------------------------------------------------------------------
# USPS (DEKM's USPS.h5, or the copy embedded in the package)
# --------------------------------------------------------------------------------------------

_USPS_SCALE = 2000  # usps.npz stores round(x * 2000) as uint16 (USPS.h5 has 2001 grey levels)


def _load_usps(data_dir: Path | None, subset: str) -> tuple[np.ndarray, np.ndarray]:
    info = DATASETS["usps"]
    splits = _splits(subset)
    if data_dir is None:
        ref = importlib.resources.files(__package__).joinpath("data", "usps.npz")
        with importlib.resources.as_file(ref) as npz_path, np.load(npz_path) as npz:
            xs = [npz[f"{s}_x"].astype(np.float32) / np.float32(_USPS_SCALE) for s in splits]
            ys = [npz[f"{s}_y"] for s in splits]
        return np.concatenate(xs), np.concatenate(ys)

    is_file_path = data_dir.is_file() or data_dir.suffix.lower() in (".h5", ".hdf5")
    path = data_dir if is_file_path else data_dir / "USPS.h5"
    if not path.is_file():
        _check_folder(info, path.parent)
        raise _missing_files_error(info, path.parent, [path.name])
    _verify_checksum("usps", path)

    import h5py

    try:
        with h5py.File(path, "r") as f:
            xs = [np.asarray(f[s]["data"], dtype=np.float32) for s in splits]
            ys = [np.asarray(f[s]["target"]) for s in splits]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable_file_error(
            info, path, f"{exc} (expected HDF5 groups train/test, each with data (N,256) and target (N,))"
        ) from exc
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (IDX files, or TensorFlow Datasets)
# --------------------------------------------------------------------------------------------

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, bottom of page).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not; detected from the content) into a numpy array.

    Raises ValueError on a bad magic number, unexpected number of dimensions, or a truncated /
    oversized / corrupt file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read file ({exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, nd = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    if ndim is not None and nd != ndim:
        raise ValueError(f"{path}: IDX file has {nd} dimensions, expected {ndim}")
    header = 4 + 4 * nd
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=nd, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX file with dims {dims} needs {expected} data bytes, has {len(raw) - header}"
            " (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


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


def _load_idx_folder(info: DatasetInfo, key: str, folder: Path, subset: str):
    paths = _find_idx(info, folder, subset)
    xs, ys = [], []
    for img_path, lbl_path in zip(paths[0::2], paths[1::2]):
        for p in (img_path, lbl_path):
            _verify_checksum(key, p)
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
    info = DATASETS["mnist"]
    if data_dir is None:
        return _load_tfds(info, "mnist", subset)
    return _load_idx_folder(info, "mnist", data_dir, subset)


def _load_fashion_mnist(data_dir: Path | None, subset: str):
    info = DATASETS["fashion-mnist"]
    if data_dir is None:
        if DEBIAN_FASHION_MNIST_DIR.is_dir():
            return _load_idx_folder(info, "fashion-mnist", DEBIAN_FASHION_MNIST_DIR, subset)
        return _load_tfds(info, "fashion_mnist", subset)
    return _load_idx_folder(info, "fashion-mnist", data_dir, subset)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_IDX_NOTE = "gzipped or not; only the pair of the requested subset is needed"

DATASETS: dict[str, DatasetInfo] = {
    "usps": DatasetInfo(
        name="usps",
        shape=(16, 16, 1),
        n_clusters=10,
        files=("USPS.h5",),
        files_note="data_dir may also be the path of the .h5 file; data_dir=None uses the copy in the package",
        source="https://github.com/spdj2271/DEKM (USPS.h5 of the DEKM reference code)",
        loader=_load_usps,
        n_samples={"train": 7291, "test": 2007, "all": 9298},
    ),
    "mnist": DatasetInfo(
        name="mnist",
        shape=(28, 28, 1),
        n_clusters=10,
        files=tuple(f"{b}.gz" for s in ("train", "test") for b in IDX_FILES[s]),
        files_note=_IDX_NOTE,
        source="http://yann.lecun.com/exdb/mnist/",
        loader=_load_mnist,
        n_samples={"train": 60000, "test": 10000, "all": 70000},
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        shape=(28, 28, 1),
        n_clusters=10,
        files=tuple(f"{b}.gz" for s in ("train", "test") for b in IDX_FILES[s]),
        files_note=_IDX_NOTE,
        source="https://github.com/zalandoresearch/fashion-mnist (Debian: apt-get install dataset-fashion-mnist)",
        loader=_load_fashion_mnist,
        n_samples={"train": 60000, "test": 10000, "all": 70000},
    ),
}


def _canonical_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    return key


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, subset: str = "all"
) -> tuple[np.ndarray, np.ndarray]:
    """Load a data set as ``(x, y)``: NHWC float32 images in [0, 1] and int32 labels 0..K-1.

    Args:
      name: a key of :data:`DATASETS` (case-insensitive; ``_`` and ``-`` are equivalent).
      data_dir: folder with the data set's files (see ``DATASETS[name].files``); None uses the
        default source of the data set (embedded copy, system package or TFDS).
      subset: "train", "test" or "all" (train followed by test).
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
