"""Data set loaders for the paper's benchmarks.

Every loader returns ``(x, y)`` as numpy arrays: images NHWC ``float32`` in ``[0, 1]`` and
``int32`` labels ``0..K-1``.  ``subset="all"`` is the training split followed by the test
split (the convention of the deep-clustering papers, which cluster both together).

Data sets without a train/test split (COIL-20, FRGC, seismic) only accept ``subset="all"``.

Adding a data set is one loader function ``loader(data_dir: Path | None, subset: str) -> (x, y)``
plus one :class:`DatasetInfo` entry in :data:`DATASETS` (and its checksums in
:data:`KNOWN_SHA256`); :func:`load_dataset` does the name/subset checks and the final
conversion and validation.

Images that need resizing (COIL-20 to 28x28, FRGC images to 32x32) go through :func:`resize_images`:
a separable linear resampling written in numpy (deterministic, no image library).  COIL-20 uses
``"bilinear"``, which reproduces ``tf.image.resize(..., "bilinear")`` (half-pixel centres, no
anti-aliasing), the resize of the DEKM reference code; images of the FRGC folder layout use
``"area"`` (exact area averaging when shrinking, bilinear when enlarging).  PNG files are decoded by
the small pure-numpy/zlib decoder :func:`read_png` (Pillow is not needed; it is only used, when
installed, for JPEG files of the FRGC folder layout).
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import importlib.resources
import importlib.util
import os
import re
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["DATASETS", "KNOWN_SHA256", "DatasetInfo", "load_dataset", "read_png", "resize_images"]

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


# --------------------------------------------------------------------------------------------
# Image helpers: resizing, PNG decoding, colour conversion
# --------------------------------------------------------------------------------------------


def _resize_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
    """(n_out, n_in) matrix of a 1-D linear resampling; rows sum to 1.

    "bilinear": half-pixel centres, edge-clamped, no anti-aliasing (= ``tf.image.resize`` with
    method "bilinear" and ``antialias=False``, the TF2 default).  "area": exact area averaging
    (each output pixel is the mean of the input area it covers, partial pixels weighted by their
    overlap) when shrinking, "bilinear" when enlarging.
    """
    if method == "area" and n_in > n_out:
        scale = n_in / n_out
        lo = np.arange(n_out)[:, None] * scale
        i = np.arange(n_in)[None, :]
        overlap = np.minimum(i + 1, lo + scale) - np.maximum(i, lo)
        return np.clip(overlap, 0.0, None) / scale
    if method not in ("bilinear", "area"):
        raise ValueError(f"unknown resize method {method!r}")
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    base = np.floor(src)
    frac = src - base
    lower = np.clip(base, 0, n_in - 1).astype(np.int64)
    upper = np.clip(base + 1, 0, n_in - 1).astype(np.int64)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lower), 1.0 - frac)
    np.add.at(m, (np.arange(n_out), upper), frac)
    return m


def resize_images(x: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """Resize NHWC images to ``size`` = (height, width); float32 output clipped to the input range.

    Separable: ``Rh @ image @ Rw.T`` per channel with the matrices of :func:`_resize_matrix`
    (``method`` "bilinear" or "area").  Deterministic and exact to float32 rounding.
    """
    x = np.asarray(x, dtype=np.float32)
    h, w = x.shape[1:3]
    if (h, w) == tuple(size):
        return x.copy()
    rh = _resize_matrix(h, size[0], method).astype(np.float32)
    rw = _resize_matrix(w, size[1], method).astype(np.float32)
    out = (rh @ x.transpose(0, 3, 1, 2)) @ rw.T  # (N, C, H', W')
    out = np.ascontiguousarray(out.transpose(0, 2, 3, 1))
    if x.size:
        np.clip(out, x.min(), x.max(), out=out)
    return out


def _resize_list(images: list[np.ndarray], size: tuple[int, int], method: str) -> np.ndarray:
    """Resize HWC images of possibly different sizes (same channel count) into one NHWC array."""
    if not images:
        return np.zeros((0, *size, 1), np.float32)
    out = np.empty((len(images), *size, images[0].shape[-1]), np.float32)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(img.shape, []).append(i)
    for idx in groups.values():
        out[idx] = resize_images(np.stack([images[i] for i in idx]), size, method)
    return out


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as PIL's convert("L")


def _to_grey(img: np.ndarray) -> np.ndarray:
    """HWC image (1-4 channels; an alpha channel is dropped) -> HW1."""
    if img.shape[-1] in (1, 2):
        return img[..., :1]
    return (img[..., :3] @ _LUMA)[..., None]


def _to_rgb(img: np.ndarray) -> np.ndarray:
    """HWC image (1-4 channels; an alpha channel is dropped) -> HW3."""
    if img.shape[-1] in (1, 2):
        return np.repeat(img[..., :1], 3, axis=-1)
    return img[..., :3]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> (channels, allowed bit depths)
_PNG_COLOR_TYPES = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)), 4: (2, (8, 16)), 6: (4, (8, 16))}
_PNG_BATCH_MIN = 8  # unfilter Avg/Paeth rows across images with numpy from this many images on


def _png_parse(path: Path) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray | None]:
    """((width, height, bit depth, colour type), filtered rows (H, 1+stride) uint8, palette or None)."""
    data = path.read_bytes()
    if data[:8] != _PNG_SIGNATURE:
        raise ValueError(f"{path}: not a PNG file")
    pos, ihdr, idat, palette = 8, None, [], None
    while True:
        if pos + 8 > len(data):
            raise ValueError(f"{path}: truncated PNG (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"{path}: truncated PNG chunk {ctype!r}")
        if struct.unpack(">I", crc)[0] != zlib.crc32(ctype + body):
            raise ValueError(f"{path}: CRC error in PNG chunk {ctype!r} (corrupt file)")
        pos += 12 + length
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    if ihdr is None:
        raise ValueError(f"{path}: PNG without IHDR chunk")
    width, height, depth, color, compression, filtering, interlace = ihdr
    if color not in _PNG_COLOR_TYPES or depth not in _PNG_COLOR_TYPES[color][1] or compression or filtering:
        raise ValueError(f"{path}: unsupported PNG (colour type {color}, bit depth {depth})")
    if interlace:
        raise ValueError(f"{path}: interlaced PNG is not supported (re-save it non-interlaced)")
    if color == 3 and palette is None:
        raise ValueError(f"{path}: palette PNG without PLTE chunk")
    stride = (width * _PNG_COLOR_TYPES[color][0] * depth + 7) // 8
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ValueError(f"{path}: corrupt PNG image data ({exc})") from exc
    if len(raw) < height * (stride + 1):
        raise ValueError(f"{path}: truncated PNG image data")
    rows = np.frombuffer(raw, np.uint8, count=height * (stride + 1)).reshape(height, stride + 1)
    return (width, height, depth, color), rows, palette


def _unfilter_sequential(cur: np.ndarray, prev: np.ndarray, bpp: int, ftype: int) -> np.ndarray:
    """Undo the Average (3) or Paeth (4) filter of one row of several images: (n, stride) int32."""
    n, stride = cur.shape
    if n >= _PNG_BATCH_MIN:  # numpy across images, one pixel (bpp bytes) at a time
        zero = np.zeros((n, bpp), np.int32)
        for x0 in range(0, stride, bpp):
            sl = slice(x0, x0 + bpp)
            a = cur[:, x0 - bpp:x0] if x0 else zero
            b = prev[:, sl]
            if ftype == 3:
                cur[:, sl] = (cur[:, sl] + ((a + b) >> 1)) & 255
            else:
                c = prev[:, x0 - bpp:x0] if x0 else zero
                pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
                pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
                cur[:, sl] = (cur[:, sl] + pred) & 255
        return cur
    for k in range(n):  # few images: plain Python on lists is faster than numpy per byte
        row, up = cur[k].tolist(), prev[k].tolist()
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = up[i]
            if ftype == 3:
                row[i] = (row[i] + ((a + b) >> 1)) & 255
            else:
                c = up[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        cur[k] = row
    return cur


def _png_unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo the PNG row filters of N same-size images: (N, H, 1+stride) -> (N, H, stride) uint8."""
    n, height, stride = rows.shape[0], rows.shape[1], rows.shape[2] - 1
    out = np.empty((n, height, stride), np.uint8)
    prev = np.zeros((n, stride), np.int32)
    for r in range(height):
        ftypes = rows[:, r, 0]
        cur = rows[:, r, 1:].astype(np.int32)
        for ftype in np.unique(ftypes):
            sel = np.flatnonzero(ftypes == ftype)
            if ftype == 1:  # Sub: running sum (mod 256) along the row, per byte of a pixel
                cur[sel] = np.cumsum(cur[sel].reshape(len(sel), -1, bpp), axis=1).reshape(len(sel), stride) & 255
            elif ftype == 2:  # Up
                cur[sel] = (cur[sel] + prev[sel]) & 255
            elif ftype in (3, 4):
                cur[sel] = _unfilter_sequential(cur[sel], prev[sel], bpp, int(ftype))
            elif ftype != 0:
                raise ValueError(f"invalid PNG filter type {ftype} in row {r}")
        out[:, r] = cur
        prev = cur
    return out


def read_png(paths: list[str | os.PathLike] | str | os.PathLike) -> list[np.ndarray] | np.ndarray:
    """Decode PNG files into float32 HWC arrays in [0, 1] (pure numpy + zlib).

    Supports every non-interlaced PNG: grey, grey+alpha, RGB, RGBA (bit depth 8 or 16), grey 1-16
    bits and palette images (expanded to RGB).  Channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
    Images of the same size are unfiltered together (vectorised across images).  A single path
    returns one array, a list of paths a list.  Raises ValueError naming the file on a corrupt or
    unsupported file.
    """
    single = isinstance(paths, (str, os.PathLike))
    path_list = [Path(p) for p in ([paths] if single else paths)]
    parsed = [_png_parse(p) for p in path_list]
    images: list[np.ndarray | None] = [None] * len(parsed)
    groups: dict[tuple[int, int, int, int], list[int]] = {}
    for i, (meta, _, _) in enumerate(parsed):
        groups.setdefault(meta, []).append(i)
    for (width, height, depth, color), idx in groups.items():
        channels = _PNG_COLOR_TYPES[color][0]
        bpp = max(1, channels * depth // 8)
        try:
            raw = _png_unfilter(np.stack([parsed[i][1] for i in idx]), bpp)
        except ValueError as exc:
            raise ValueError(f"{', '.join(str(path_list[i]) for i in idx[:3])}: {exc}") from exc
        if depth == 16:
            vals = raw.view(">u2").reshape(len(idx), height, width, channels).astype(np.float32) / 65535
        elif depth == 8:
            vals = raw.reshape(len(idx), height, width, channels)
        else:
            bits = np.unpackbits(raw, axis=-1)[..., : width * depth].reshape(len(idx), height, width, depth)
            vals = (bits.astype(np.uint8) << np.arange(depth - 1, -1, -1, dtype=np.uint8)).sum(-1, dtype=np.uint8)
            vals = vals[..., None]
        for j, i in enumerate(idx):
            if color == 3:
                palette = parsed[i][2]
                if vals[j].max(initial=0) >= len(palette):
                    raise ValueError(f"{path_list[i]}: palette index out of range")
                images[i] = palette[vals[j][..., 0]].astype(np.float32) / 255
            elif depth == 16:
                images[i] = vals[j]
            else:
                images[i] = vals[j].astype(np.float32) / np.float32(2**depth - 1)
    return images[0] if single else images  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# USPS (DEKM's USPS.h5, the LIBSVM files usps / usps.t, or the copy embedded in the package)
# --------------------------------------------------------------------------------------------

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
    info = DATASETS["usps"]
    splits = _splits(subset)
    if data_dir is None:
        ref = importlib.resources.files(__package__).joinpath("data", "usps.npz")
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
# COIL-20 (the coil-20-proc PNGs, a MATLAB .mat with fea/gnd, or DEKM's COIL20.h5)
# --------------------------------------------------------------------------------------------

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


def _read_mat(info: DatasetInfo, path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Variables `names` of a MATLAB file: scipy.io.loadmat, or h5py for a v7.3 (HDF5) file."""
    import scipy.io

    try:
        try:
            mat = scipy.io.loadmat(path, variable_names=names)
            out = {n: np.asarray(mat[n]) for n in names if n in mat}
        except NotImplementedError:  # v7.3: HDF5, arrays stored transposed (MATLAB is column-major)
            import h5py

            with h5py.File(path, "r") as f:
                out = {n: np.asarray(f[n]).T for n in names if n in f}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise _unreadable_file_error(info, path, f"not a readable MATLAB file ({exc})") from exc
    missing = [n for n in names if n not in out]
    if missing:
        raise _unreadable_file_error(info, path, f"missing variable(s) {', '.join(missing)}")
    return out


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
    import h5py

    try:
        with h5py.File(path, "r") as f:
            data, labels = np.asarray(f["data"], np.float32), np.asarray(f["labels"]).reshape(-1)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable_file_error(info, path, f"{exc} (expected HDF5 datasets data and labels)") from exc
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
    info = DATASETS["coil20"]
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


# --------------------------------------------------------------------------------------------
# FRGC (DEKM's FRGC.h5, or a folder of per-subject image folders)
# --------------------------------------------------------------------------------------------

FRGC_SIZE = (32, 32)
_PNG_SUFFIXES = (".png",)
_PIL_SUFFIXES = (".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".gif")  # decoded with Pillow


def _frgc_from_h5(info: DatasetInfo, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (N, H, W, 3) or (N, 3, W, H), values 0..255 or 0..1; ``labels`` any values.

    The channels-first layout is DEKM's FRGC.h5, written from MATLAB: its axes are (N, C, W, H)
    and it is converted as DEKM's utils.py does, ``np.swapaxes(data, 1, 3)``.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            data, labels = np.asarray(f["data"]), np.asarray(f["labels"]).reshape(-1)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable_file_error(info, path, f"{exc} (expected HDF5 datasets data and labels)") from exc
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


def _read_images_rgb(info: DatasetInfo, folder: Path, paths: list[Path]) -> list[np.ndarray]:
    pngs = [p for p in paths if p.suffix.lower() in _PNG_SUFFIXES]
    others = [p for p in paths if p.suffix.lower() not in _PNG_SUFFIXES]
    try:
        decoded = dict(zip(pngs, read_png(pngs))) if pngs else {}
    except ValueError as exc:
        raise _unreadable_file_error(info, folder, str(exc)) from exc
    if others:
        try:
            from PIL import Image
        except ImportError as exc:
            raise _unreadable_file_error(
                info, folder, f"{len(others)} image(s) such as {others[0]} are not PNG; without Pillow only PNG "
                "files can be decoded: convert them to PNG (or install Pillow)"
            ) from exc
        for p in others:
            try:
                with Image.open(p) as im:
                    decoded[p] = np.asarray(im.convert("RGB"), np.float32) / np.float32(255)
            except OSError as exc:
                raise _unreadable_file_error(info, p, str(exc)) from exc
    return [_to_rgb(decoded[p]) for p in paths]


def _frgc_from_folders(info: DatasetInfo, folder: Path, classes: list[tuple[Path, list[Path]]]):
    """One sub-folder per subject (label = rank of its name), images sorted by name, resized to 32x32."""
    if len(classes) > info.n_clusters:
        raise _unreadable_file_error(
            info, folder, f"{len(classes)} class folders with images, expected at most {info.n_clusters}"
        )
    paths = [p for _, files in classes for p in files]
    y = np.repeat(np.arange(len(classes), dtype=np.int32), [len(files) for _, files in classes])
    x = _resize_list(_read_images_rgb(info, folder, paths), FRGC_SIZE, "area")
    return x, y


def _load_frgc(data_dir: Path | None, subset: str) -> tuple[np.ndarray, np.ndarray]:
    info = DATASETS["frgc"]
    _only_all(info, subset)
    data_dir = _require_data_dir(info, data_dir)
    if _file_or_folder(info, data_dir, (".h5", ".hdf5")):
        path = data_dir
    elif (data_dir / "FRGC.h5").is_file():
        path = data_dir / "FRGC.h5"
    else:
        suffixes = _PNG_SUFFIXES + _PIL_SUFFIXES
        classes = []
        for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in sub.iterdir() if p.suffix.lower() in suffixes and p.is_file())
            if files:
                classes.append((sub, files))
        if not classes:
            raise _missing_files_error(
                info, data_dir, ["FRGC.h5 (or one sub-folder of PNG images per subject)"]
            )
        return _frgc_from_folders(info, data_dir, classes)
    _verify_checksum("frgc", path)
    return _frgc_from_h5(info, path)


# --------------------------------------------------------------------------------------------
# Seismic (x.npy + y.npy, or one .npz with x and y)
# --------------------------------------------------------------------------------------------


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
    info = DATASETS["seismic"]
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


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_IDX_NOTE = "gzipped or not; only the pair of the requested subset is needed"

DATASETS: dict[str, DatasetInfo] = {
    "usps": DatasetInfo(
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
    "coil20": DatasetInfo(
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
    ),
    "frgc": DatasetInfo(
        name="frgc",
        shape=(*FRGC_SIZE, 3),
        n_clusters=20,
        files=("FRGC.h5",),
        files_note=(
            "HDF5 datasets data (N, 32, 32, 3) or DEKM's (N, 3, 32, 32) and labels; data_dir may be the path of "
            "the .h5 file; or a folder with one sub-folder of images per subject (PNG; other formats such as "
            "JPEG need Pillow), resized to 32x32 RGB; subset 'all' only"
        ),
        source="https://github.com/spdj2271/DEKM (FRGC.h5 of the DEKM reference code)",
        loader=_load_frgc,
        n_samples={"all": 2462},
        needs_data_dir=True,
    ),
    "seismic": DatasetInfo(
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
    ),
}


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
