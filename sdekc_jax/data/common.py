"""What every loader shares: the :class:`DatasetInfo` entry, the known checksums, and the checks
and one-line errors (missing folder or file, unreadable data) that name the data set, the place
and where the data set is published."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

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
    n_samples: dict[str, int] = dataclasses.field(default_factory=dict)  # subset -> count (of the paper)
    needs_data_dir: bool = False  # no default source: data_dir must be given


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


def _only_all(info: DatasetInfo, subset: str) -> None:
    if subset != "all":
        raise ValueError(
            f"{info.name} has no train/test split (the paper clusters all {info.n_samples.get('all', '')} "
            f"images); use subset='all', got {subset!r}"
        )


def _require_data_dir(info: DatasetInfo, data_dir: Path | None) -> Path:
    if data_dir is None:
        note = f" ({info.files_note})" if info.files_note else ""
        raise FileNotFoundError(
            f"{info.name}: this data set has no default source; pass data_dir, the folder (or file) "
            f"holding its data. Expected files: {', '.join(info.files)}{note}. "
            f"The data set is published at {info.source}"
        )
    return data_dir


def _file_or_folder(info: DatasetInfo, data_dir: Path, suffixes: tuple[str, ...]) -> bool:
    """True when `data_dir` names a file (an existing file, or a path ending in one of `suffixes`).

    A file path that does not exist raises the missing-file error naming its folder.
    """
    if data_dir.is_dir():
        return False
    if data_dir.is_file():
        return True
    if data_dir.suffix.lower() in suffixes:
        _check_folder(info, data_dir.parent)
        raise _missing_files_error(info, data_dir.parent, [data_dir.name])
    _check_folder(info, data_dir)  # raises: does not exist
    return False


def _remap_labels(y: np.ndarray) -> np.ndarray:
    """Labels as 0..K-1 in the sorted order of their unique values."""
    _, inverse = np.unique(np.asarray(y).reshape(-1), return_inverse=True)
    return inverse.astype(np.int32)


def _check_finite(info: DatasetInfo, path: Path, x: np.ndarray) -> None:
    if x.size and not np.isfinite(x).all():
        raise _unreadable_file_error(info, path, "the images contain NaN or infinite values")
