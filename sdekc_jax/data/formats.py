"""File formats and image operations of the loaders: IDX, images (PNG and others, decoded by
Pillow), MATLAB and HDF5 files, colour conversion and resizing.

Images are decoded by Pillow into float32 HWC arrays in [0, 1] (:func:`read_png`,
:func:`read_image`).  Pillow keeps 16 bits only for grey PNGs; it reads 16-bit RGB, RGBA and
grey+alpha PNGs as 8 bits per channel (the high byte), so those come back within 1/257 of the
exact 16-bit value.

Resizing (:func:`resize_images`) is a separable linear resampling written in numpy
(deterministic, float32, no image library), because neither Pillow nor ``jax.image.resize``
gives both methods the loaders need:

* ``"bilinear"`` (COIL-20 to 28x28) reproduces ``tf.image.resize(..., "bilinear")``, the resize
  of the DEKM reference code: half-pixel centres, edge-clamped, no anti-aliasing.  Pillow's
  ``BILINEAR`` anti-aliases when shrinking (a wider triangle), so it is a different image.
  (``jax.image.resize(..., "linear", antialias=False)`` is the same resampling.)
* ``"area"`` (FRGC folder images to 32x32): exact area averaging when shrinking (partial pixels
  weighted by their overlap), bilinear when enlarging.  Pillow's ``BOX`` samples the box at
  pixel centres (weights 0 or 1, no partial pixels) and ``jax.image.resize`` has no area method.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .common import DatasetInfo, _unreadable_file_error

# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, bottom of page).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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


# --------------------------------------------------------------------------------------------
# Images (Pillow)
# --------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GREY_ALPHA = 4  # IHDR colour type; the IHDR chunk comes first, its colour type is byte 25 of the file


def _pil_to_float(im) -> np.ndarray:
    """A loaded Pillow image as float32 HWC in [0, 1]: 8-bit modes / 255, 16-bit grey / 65535."""
    if im.mode in ("1", "P", "PA"):  # bilevel -> grey 0/255; palette expanded to RGB(A)
        im = im.convert({"1": "L", "P": "RGB", "PA": "RGBA"}[im.mode])
    if im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PNG"):  # older Pillow: grey16 PNG as "I"
        scale = 65535
    elif im.mode in ("L", "LA", "RGB", "RGBA"):
        scale = 255
    else:  # CMYK, YCbCr, 32-bit integer or float images: as Pillow converts them to RGB
        im, scale = im.convert("RGB"), 255
    x = np.asarray(im, np.float32) / np.float32(scale)
    return x if x.ndim == 3 else x[..., None]


def _decode(path: Path, png_only: bool) -> np.ndarray:
    """One image file as float32 HWC; every failure of Pillow becomes one ValueError naming the file."""
    from PIL import Image, PngImagePlugin

    data = path.read_bytes()
    is_png = data[:8] == _PNG_SIGNATURE
    if png_only and not is_png:
        raise ValueError(f"{path}: not a PNG file")
    try:
        if is_png:  # verify(): the CRC of every chunk up to IEND, which load() does not check for the image data
            with PngImagePlugin.PngImageFile(io.BytesIO(data)) as im:
                im.verify()
        with PngImagePlugin.PngImageFile(io.BytesIO(data)) if is_png else Image.open(path) as im:
            im.load()
            x = _pil_to_float(im)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: corrupt or unsupported {'PNG' if is_png else 'image'} file ({exc})") from exc
    if is_png and data[25] == _PNG_GREY_ALPHA and x.shape[-1] == 4:
        x = x[..., [0, 3]]  # Pillow opens 16-bit grey+alpha as RGBA (R = G = B): back to grey+alpha
    return x


def read_png(paths: list[str | os.PathLike] | str | os.PathLike) -> list[np.ndarray] | np.ndarray:
    """Decode PNG files into float32 HWC arrays in [0, 1], with Pillow.

    Every PNG: grey (1-16 bits), grey+alpha, RGB, RGBA, palette (expanded to RGB), interlaced or
    not.  Channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.  Values are the stored levels divided by
    the largest level of the bit depth (``2**depth - 1``), except that 16-bit RGB, RGBA and
    grey+alpha images are read at 8 bits (see the module docstring).  A single path returns one array, a list of
    paths a list.  Raises ValueError naming the file on a corrupt, truncated or non-PNG file.
    """
    single = isinstance(paths, (str, os.PathLike))
    images = [_decode(Path(p), png_only=True) for p in ([paths] if single else paths)]
    return images[0] if single else images


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode one image file of any format Pillow reads (JPEG, BMP, TIFF, GIF, PNG, ...) into a
    float32 HWC array in [0, 1]; PNG files as :func:`read_png`, other modes than grey, RGB(A)
    and palette converted to RGB by Pillow.  Raises ValueError naming the file when it cannot be
    decoded."""
    return _decode(Path(path), png_only=False)


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


# --------------------------------------------------------------------------------------------
# Resizing (numpy; see the module docstring for why)
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


# --------------------------------------------------------------------------------------------
# MATLAB and HDF5 files
# --------------------------------------------------------------------------------------------


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


def _read_h5(info: DatasetInfo, path: Path, names: tuple[str, ...], expected: str) -> dict[str, np.ndarray]:
    """Datasets `names` (``"group/name"`` paths) of an HDF5 file; `expected` describes the layout
    in the error raised when the file is not HDF5 or lacks one of them."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {n: np.asarray(f[n]) for n in names}
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable_file_error(info, path, f"{exc} (expected {expected})") from exc
