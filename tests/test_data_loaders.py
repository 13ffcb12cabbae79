"""Loaders of USPS (LIBSVM files), COIL-20, FRGC and the seismic data, on small files written here."""
import bz2
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from sdekc_jax.data import DATASETS, load_dataset, read_png, resize_images

# Files named like known files (USPS.h5) do not have the known checksums.
pytestmark = pytest.mark.filterwarnings("ignore:.*sha256 of")


# ---------------------------------------------------------------------------- PNG writer


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


# Adam7 interlacing: (x0, y0, dx, dy) of the seven passes
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_scanlines(arr, depth, filters) -> bytes:
    """Filtered scanlines of an HWC array: row filters cycle through `filters`."""
    h, w, c = arr.shape
    if depth == 16:
        rows = arr.astype(">u2").reshape(h, -1).view(np.uint8)
    elif depth == 8:
        rows = arr.astype(np.uint8).reshape(h, -1)
    else:
        bits = np.unpackbits(arr.astype(np.uint8)[..., 0, None], axis=-1)[..., 8 - depth:]
        rows = np.packbits(bits.reshape(h, w * depth), axis=-1)
    bpp = max(1, c * depth // 8)
    out, prev = [], np.zeros(rows.shape[1], np.int64)
    for r in range(h):
        x = rows[r].astype(np.int64)
        a = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        cc = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        ftype = filters[r % len(filters)]
        pred = [0, a, prev, (a + prev) // 2, _paeth(a, prev, cc)][ftype]
        out.append(bytes([ftype]) + ((x - pred) & 255).astype(np.uint8).tobytes())
        prev = x
    return b"".join(out)


def png_bytes(arr, depth=8, color=None, palette=None, filters=(0, 1, 2, 3, 4), interlace=0) -> bytes:
    """Minimal PNG encoder (zlib by hand; Adam7 when `interlace`); IDAT split in two chunks."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    h, w, c = arr.shape
    if color is None:
        color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    passes = [arr[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7] if interlace else [arr]
    z = zlib.compress(b"".join(png_scanlines(p, depth, filters) for p in passes if p.size))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    plte = chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes()) if palette is not None else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + plte + chunk(b"IDAT", z[:7]) + chunk(b"IDAT", z[7:])
            + chunk(b"IEND", b""))


def write_png(path: Path, arr, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(arr, **kw))
    return path


# ---------------------------------------------------------------------------- registry


def test_registry_new_datasets():
    assert DATASETS["coil20"].shape == (28, 28, 1) and DATASETS["coil20"].n_clusters == 20
    assert DATASETS["frgc"].shape == (32, 32, 3) and DATASETS["frgc"].n_clusters == 20
    assert DATASETS["seismic"].shape == (16, 48, 1) and DATASETS["seismic"].n_clusters == 2
    assert DATASETS["coil20"].n_samples == {"all": 1440}
    assert DATASETS["frgc"].n_samples == {"all": 2462}
    assert DATASETS["seismic"].n_samples == {"all": 9200}
    assert {k for k, v in DATASETS.items() if v.needs_data_dir} == {"coil20", "frgc", "seismic"}
    with pytest.raises(ValueError, match="with data_dir only: coil20, frgc, seismic"):
        load_dataset("cifar10")


@pytest.mark.parametrize("name", ["coil20", "frgc", "seismic"])
def test_no_split_and_no_default(name, tmp_path):
    with pytest.raises(ValueError, match="subset='all'"):
        load_dataset(name, tmp_path, subset="train")
    with pytest.raises(FileNotFoundError, match="no default source") as e:
        load_dataset(name)
    assert DATASETS[name].files[0] in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(name, tmp_path / "nowhere")


# ---------------------------------------------------------------------------- resize


def test_resize_bilinear_and_area_by_hand():
    row = np.arange(1.0, 7.0, dtype=np.float32)  # 1..6
    img = np.tile(row, (2, 1))[None, :, :, None]  # (1, 2, 6, 1): rows identical
    # bilinear 6 -> 4, half-pixel centres: src = (o + 0.5) * 1.5 - 0.5 = 0.25, 1.75, 3.25, 4.75
    out = resize_images(img, (2, 4), "bilinear")[0, 0, :, 0]
    np.testing.assert_allclose(out, [1.25, 2.75, 4.25, 5.75], rtol=1e-6)
    # area 6 -> 4: each output averages 1.5 input pixels
    out = resize_images(img, (2, 4), "area")[0, 0, :, 0]
    np.testing.assert_allclose(out, [(1 + 0.5 * 2) / 1.5, (0.5 * 2 + 3) / 1.5, (4 + 0.5 * 5) / 1.5, (0.5 * 5 + 6) / 1.5],
                               rtol=1e-6)
    # bilinear 5 -> 2: src = 0.75, 3.25; enlarging 2 -> 4: src = -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
    out = resize_images(np.arange(5.0)[None, None, :, None], (1, 2), "bilinear")[0, 0, :, 0]
    np.testing.assert_allclose(out, [0.75, 3.25], rtol=1e-6)
    for method in ("bilinear", "area"):
        out = resize_images(np.array([0.0, 1.0])[None, None, :, None], (1, 4), method)[0, 0, :, 0]
        np.testing.assert_allclose(out, [0, 0.25, 0.75, 1], atol=1e-7)
    # rows and columns handled separately and in the right axes; constants stay constant
    x = np.random.default_rng(0).random((3, 10, 7, 2)).astype(np.float32)
    for method in ("bilinear", "area"):
        y = resize_images(x, (4, 5), method)
        assert y.shape == (3, 4, 5, 2) and y.dtype == np.float32
        np.testing.assert_allclose(resize_images(np.ones_like(x), (4, 5), method), 1.0, atol=1e-6)
        np.testing.assert_allclose(y[..., 1], resize_images(x[..., 1:], (4, 5), method)[..., 0])
        np.testing.assert_allclose(resize_images(x.transpose(0, 2, 1, 3), (5, 4), method), y.transpose(0, 2, 1, 3),
                                   atol=1e-6)


# ---------------------------------------------------------------------------- PNG decoding (Pillow)


# kind -> (bit depth, channels; 0 = palette, Adam7 interlaced)
PNG_KINDS = {
    "grey1": (1, 1, 0), "grey2": (2, 1, 0), "grey4": (4, 1, 0), "grey8": (8, 1, 0), "grey16": (16, 1, 0),
    "ga8": (8, 2, 0), "ga16": (16, 2, 0), "rgb8": (8, 3, 0), "rgb16": (16, 3, 0), "rgba8": (8, 4, 0),
    "rgba16": (16, 4, 0), "palette4": (4, 0, 0), "palette8": (8, 0, 0),
    "grey8-interlaced": (8, 1, 1), "rgb8-interlaced": (8, 3, 1), "grey16-interlaced": (16, 1, 1),
}


@pytest.mark.parametrize("kind", PNG_KINDS)
def test_png_decoder(tmp_path, kind):
    """PNGs written by hand (zlib, every row filter): levels / (2**depth - 1), exactly; Pillow reads
    16-bit colour and grey+alpha at 8 bits, i.e. the high byte / 255 (within 1/257 of level / 65535)."""
    depth, channels, interlace = PNG_KINDS[kind]
    rng = np.random.default_rng(list(PNG_KINDS).index(kind))
    h, w = 7, 9
    maxval = 2**depth - 1
    paths, expected = [], []
    for i in range(3):
        filters = (0, 1, 2, 3, 4)[i:] + (0, 1, 2, 3, 4)[:i]  # rows of different filters across images
        if channels == 0:
            palette = rng.integers(0, 256, size=(2**depth, 3))
            idx = rng.integers(0, 2**depth, size=(h, w))
            p = write_png(tmp_path / f"{i}.png", idx, depth=depth, color=3, palette=palette, filters=filters,
                          interlace=interlace)
            expected.append(palette[idx].astype(np.float32) / np.float32(255))
        else:
            arr = rng.integers(0, maxval + 1, size=(h, w, channels))
            p = write_png(tmp_path / f"{i}.png", arr, depth=depth, filters=filters, interlace=interlace)
            if depth == 16 and channels > 1:
                np.testing.assert_allclose((arr >> 8) / 255, arr / maxval, atol=1 / 257 + 1e-12)
                expected.append((arr >> 8).astype(np.float32) / np.float32(255))
            else:
                expected.append(arr.astype(np.float32) / np.float32(maxval))
        paths.append(p)
    images = read_png(paths)
    for img, exp in zip(images, expected):
        assert img.dtype == np.float32 and img.shape == exp.shape
        np.testing.assert_array_equal(img, exp)
    np.testing.assert_array_equal(read_png(paths[0]), expected[0])
    np.testing.assert_array_equal(read_png(str(paths[1])), expected[1])


def test_read_png_exact_values(tmp_path):
    """Values pinned by hand: grey levels over the largest level of the bit depth, palette -> RGB."""
    grey8 = write_png(tmp_path / "g8.png", np.array([[0, 1, 128, 255]], np.uint8))
    np.testing.assert_array_equal(read_png(grey8)[0, :, 0], np.array([0, 1, 128, 255], np.float32) / np.float32(255))
    grey16 = write_png(tmp_path / "g16.png", np.array([[0, 1, 257, 32768, 65535]]), depth=16)
    np.testing.assert_array_equal(read_png(grey16)[0, :, 0], np.float32([0, 1, 257, 32768, 65535]) / np.float32(65535))
    assert read_png(grey16)[0, 2, 0] == np.float32(1 / 255) and read_png(grey16)[0, 4, 0] == 1.0
    grey1 = write_png(tmp_path / "g1.png", np.array([[1, 0, 1]]), depth=1)
    np.testing.assert_array_equal(read_png(grey1)[..., 0], [[1.0, 0.0, 1.0]])
    grey2 = write_png(tmp_path / "g2.png", np.array([[0, 1, 2, 3]]), depth=2)
    np.testing.assert_array_equal(read_png(grey2)[..., 0], [np.float32([0, 1, 2, 3]) / np.float32(3)])
    pal = write_png(tmp_path / "p.png", np.array([[1, 0]]), color=3, palette=[[255, 0, 0], [0, 51, 255]])
    np.testing.assert_array_equal(read_png(pal), np.float32([[[0, 0.2, 1], [1, 0, 0]]]))
    rgba = write_png(tmp_path / "rgba.png", np.array([[[255, 0, 51, 0]]]))
    np.testing.assert_array_equal(read_png(rgba), np.float32([[[1, 0, 0.2, 0]]]))
    rgb16 = write_png(tmp_path / "rgb16.png", np.array([[[0x3312, 0xFFFF, 0x00FF]]]), depth=16)
    np.testing.assert_array_equal(read_png(rgb16), np.float32([[[0.2, 1, 0]]]))  # the high byte / 255


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "I;16"])
def test_read_png_written_by_pillow(tmp_path, mode):
    """PNGs of another encoder (Pillow's own, adaptive filters) read back exactly."""
    shape = {"LA": (6, 5, 2), "RGB": (6, 5, 3), "RGBA": (6, 5, 4)}.get(mode, (6, 5))
    top = 65535 if mode == "I;16" else 255
    arr = np.random.default_rng(0).integers(0, top + 1, size=shape).astype(np.uint16 if top > 255 else np.uint8)
    im = Image.fromarray(arr)
    (im.convert("P") if mode == "P" else im).save(tmp_path / "a.png")  # P: a grey palette
    with Image.open(tmp_path / "a.png") as saved:
        assert saved.mode == mode
    expected = arr.astype(np.float32) / np.float32(top)
    if mode == "P":
        expected = np.repeat(expected[..., None], 3, -1)  # palette -> RGB
    x = read_png(tmp_path / "a.png")
    np.testing.assert_array_equal(x, expected.reshape(x.shape))


def test_png_errors(tmp_path):
    """Bad files: one ValueError naming the file (not a Pillow traceback)."""
    good = png_bytes(np.zeros((4, 4), np.uint8))
    cases = {"not a PNG": b"GIF89a" + good[6:], "(?i)truncated": good[:-20]}
    bad = bytearray(good)
    bad[20] ^= 1  # inside IHDR: CRC mismatch
    cases["corrupt or unsupported PNG file .*checksum"] = bytes(bad)
    # IHDR says interlaced (CRC fixed), the data is not: too little image data
    ihdr = bytearray(good[12:29])
    ihdr[-1] = 1
    cases["corrupt or unsupported PNG file"] = good[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + good[33:]
    for i, (match, content) in enumerate(cases.items()):
        path = tmp_path / f"{i}.png"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=match) as e:
            read_png(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------- USPS, LIBSVM files


def libsvm_line(label, values, sparse=False) -> str:
    feats = [f"{i}:{v:g}" for i, v in enumerate(values, start=1) if not (sparse and v == 0)]
    return f"{label} " + " ".join(feats) + "\n"


def write_libsvm(path: Path, lines: list[str], compress: bool) -> Path:
    text = "".join(lines).encode()
    if compress:
        path = path.with_name(path.name + ".bz2")
        text = bz2.compress(text)
    path.write_bytes(text)
    return path


def usps_pattern() -> np.ndarray:
    """Values in [-1, 1] of an asymmetric 16x16 image: top-right pixel 1, pixel (1, 0) 0, rest -1."""
    img = -np.ones((16, 16))
    img[0, 15] = 1.0
    img[1, 0] = 0.0
    img[15, 3] = 0.5
    return img


@pytest.mark.parametrize("compress", [False, True])
def test_usps_libsvm(tmp_path, compress):
    img = usps_pattern().reshape(-1)
    train = [libsvm_line(7, img), libsvm_line(1, img, sparse=True), libsvm_line(10, -img)]
    test = [libsvm_line(3, img, sparse=True), "\n", libsvm_line(10, img)]
    write_libsvm(tmp_path / "usps", train, compress)
    write_libsvm(tmp_path / "usps.t", test, not compress)

    x, y = load_dataset("usps", tmp_path)
    assert x.shape == (5, 16, 16, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(y, [6, 0, 9, 2, 9])  # LIBSVM label k = digit k-1
    expected = (usps_pattern() + 1) / 2  # [-1, 1] -> [0, 1]; row-major 16x16
    for i in (0, 1, 3, 4):  # sparse lines: missing features are 0, i.e. 0.5
        np.testing.assert_allclose(x[i, :, :, 0], expected, atol=1e-7)
    assert x[0, 0, 15, 0] == 1.0 and x[0, 1, 0, 0] == 0.5 and x[0, 15, 3, 0] == 0.75 and x[0, 15, 0, 0] == 0.0
    np.testing.assert_allclose(x[2, :, :, 0], 1 - expected, atol=1e-7)

    xt, yt = load_dataset("usps", tmp_path, subset="test")
    np.testing.assert_array_equal(yt, [2, 9])
    np.testing.assert_array_equal(xt, x[3:])
    xtr, _ = load_dataset("usps", tmp_path / ("usps.t" if compress else "usps.t.bz2"), subset="train")
    np.testing.assert_array_equal(xtr, x[:3])  # the path of a LIBSVM file: its folder is read


def test_usps_libsvm_matches_embedded(tmp_path):
    """The LIBSVM encoding (2x - 1) of embedded images reads back as the same images."""
    x_ref, y_ref = load_dataset("usps", subset="test")
    lines = [libsvm_line(int(lbl) + 1, 2.0 * img.reshape(-1) - 1.0) for img, lbl in zip(x_ref[:4], y_ref[:4])]
    write_libsvm(tmp_path / "usps.t", lines, compress=True)
    x, y = load_dataset("usps", tmp_path, subset="test")
    np.testing.assert_allclose(x, x_ref[:4], atol=1e-6)
    np.testing.assert_array_equal(y, y_ref[:4])


def test_usps_h5_preferred_over_libsvm(tmp_path):
    with h5py.File(tmp_path / "USPS.h5", "w") as f:
        for split in ("train", "test"):
            g = f.create_group(split)
            g.create_dataset("data", data=np.full((2, 256), 0.25, np.float32))
            g.create_dataset("target", data=np.array([4, 5], np.int32))
    write_libsvm(tmp_path / "usps", [libsvm_line(1, np.ones(256))], compress=False)
    x, y = load_dataset("usps", tmp_path, subset="train")
    assert np.all(x == 0.25) and y.tolist() == [4, 5]


def test_usps_libsvm_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("usps", tmp_path)
    msg = str(e.value)
    assert "USPS.h5" in msg and "usps.t" in msg and str(tmp_path) in msg and "libsvmtools" in msg
    write_libsvm(tmp_path / "usps", [libsvm_line(2, np.zeros(256))], compress=True)
    x, y = load_dataset("usps", tmp_path, subset="train")
    assert np.all(x == 0.5) and y.tolist() == [1]
    with pytest.raises(FileNotFoundError, match=r"usps\.t\.bz2") as e:
        load_dataset("usps", tmp_path)  # "all" also needs usps.t
    assert str(tmp_path) in str(e.value)
    for line, match in [
        (libsvm_line(11, np.zeros(256)), "line 2: label 11"),
        ("3 1:0.5 257:1\n", "indices"),
        ("3 1:0.5 2:1.5\n", r"\[-1, 1\]"),
        ("3 1 2\n", "index:value"),
    ]:
        write_libsvm(tmp_path / "usps.t", [libsvm_line(1, np.zeros(256)), line], compress=False)
        with pytest.raises(ValueError, match=match) as e:
            load_dataset("usps", tmp_path, subset="test")
        assert "usps.t" in str(e.value)
    (tmp_path / "usps.t").write_bytes(b"BZh91AY&SY" + b"\x00" * 20)
    with pytest.raises(ValueError, match="bzip2"):
        load_dataset("usps", tmp_path, subset="test")


# ---------------------------------------------------------------------------- COIL-20


def coil_image(size: int, level: int) -> np.ndarray:
    """uint8 image: background `level`, bright (255) top-right quarter block, dark bottom-left."""
    img = np.full((size, size), level, np.uint8)
    img[: size // 4, -size // 4:] = 255
    img[-size // 4:, : size // 4] = 0
    return img


def assert_coil_orientation(x: np.ndarray) -> None:
    assert np.all(x[:, :6, -6:, 0] > 0.99)  # top right stays top right
    assert np.all(x[:, -6:, :6, 0] < 0.01)
    assert np.all(np.abs(x[:, 12:16, 12:16, 0] - x[:, 14:15, 14:15, 0]) < 1e-6)


@pytest.mark.parametrize("nested", [False, True])
def test_coil20_png_folder(tmp_path, nested):
    folder = tmp_path / "coil-20-proc" if nested else tmp_path
    written = {}
    for k, view in [(10, 3), (2, 71), (2, 0), (1, 5), (20, 0)]:  # written in no particular order
        img = coil_image(128, level=3 * k + view)
        write_png(folder / f"obj{k}__{view}.png", img)
        written[(k, view)] = img
    (folder / "readme.png").write_bytes(b"not a COIL image, ignored")
    x, y = load_dataset("coil20", tmp_path)
    order = sorted(written)  # (object, view), numerically
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(y, [k - 1 for k, _ in order])
    assert y.tolist() == [0, 1, 1, 9, 19]
    expected = resize_images(np.stack([written[o] for o in order])[..., None] / 255.0, (28, 28), "bilinear")
    np.testing.assert_allclose(x, expected, atol=1e-6)
    np.testing.assert_allclose(x[:, 14, 14, 0], [(3 * k + v) / 255 for k, v in order], atol=1e-6)
    assert_coil_orientation(x)
    if nested:
        x2, _ = load_dataset("coil20", folder)  # the coil-20-proc folder itself
        np.testing.assert_array_equal(x2, x)


def test_coil20_png_rgb_and_bad_object(tmp_path):
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 1] = 200
    write_png(tmp_path / "obj3__1.png", rgb)
    x, y = load_dataset("coil20", tmp_path)
    np.testing.assert_allclose(x, 0.587 * 200 / 255, atol=1e-5)  # luma of pure green
    assert y.tolist() == [2]
    write_png(tmp_path / "obj21__0.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"object numbers \[21\]"):
        load_dataset("coil20", tmp_path)


def write_coil_mat(path: Path, labels, scale=255.0, **kw):
    imgs = np.stack([coil_image(32, level=2 * k) for k in labels]).astype(np.float64) / 255.0
    fea = np.stack([img.reshape(-1, order="F") for img in imgs]) * scale  # MATLAB column-major rows
    scipy.io.savemat(path, {"fea": fea, "gnd": np.asarray(labels, np.float64)[:, None], **kw})
    return imgs


def test_coil20_mat(tmp_path):
    labels = [20, 1, 5, 1]
    imgs = write_coil_mat(tmp_path / "COIL20.mat", labels)
    x, y = load_dataset("coil20", tmp_path)
    assert x.shape == (4, 28, 28, 1)
    assert y.tolist() == [0, 0, 4, 19]  # gnd 1..20 -> 0..19, ordered by object (stable)
    order = np.argsort(labels, kind="stable")
    expected = resize_images(imgs[order][..., None] / imgs.max(), (28, 28), "bilinear")
    np.testing.assert_allclose(x, expected, atol=1e-6)
    assert_coil_orientation(x)
    # values already in [0, 1]; data_dir = the file; another name
    (tmp_path / "other").mkdir()
    write_coil_mat(tmp_path / "other" / "coil.mat", labels, scale=1.0)
    x1, y1 = load_dataset("coil20", tmp_path / "other" / "coil.mat")
    np.testing.assert_allclose(x1, x, atol=1e-6)
    np.testing.assert_array_equal(y1, y)
    x2, _ = load_dataset("coil20", tmp_path / "other")  # the single .mat of the folder
    np.testing.assert_array_equal(x2, x1)
    write_coil_mat(tmp_path / "other" / "coil2.mat", labels)
    with pytest.raises(ValueError, match="several .mat files"):
        load_dataset("coil20", tmp_path / "other")


def test_coil20_mat_v73(tmp_path):
    """A MATLAB v7.3 file (HDF5, arrays transposed) is read with h5py."""
    labels = [2, 1]
    imgs = np.stack([coil_image(32, level=2 * k) for k in labels]).astype(np.float64)
    fea = np.stack([img.reshape(-1, order="F") for img in imgs])
    path = tmp_path / "COIL20.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["fea"] = fea.T
        f["gnd"] = np.asarray(labels, np.float64)[None, :]
    header = b"MATLAB 7.3 MAT-file, written by a test".ljust(116) + b"\x00" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as fh:
        fh.write(header)
    x, y = load_dataset("coil20", path)
    assert y.tolist() == [0, 1]
    np.testing.assert_allclose(x, resize_images(imgs[::-1, ..., None] / 255, (28, 28)), atol=1e-6)
    assert_coil_orientation(x)


def test_coil20_dekm_h5(tmp_path):
    labels = np.array([3, 1, 2])
    imgs = np.stack([coil_image(32, level=10 * k) for k in labels]).astype(np.float32)
    with h5py.File(tmp_path / "COIL20.h5", "w") as f:
        f["data"] = np.swapaxes(imgs, 1, 2)[:, None]  # (N, 1, W, H), as DEKM reads it
        f["labels"] = labels.astype(np.float64)
    x, y = load_dataset("coil20", tmp_path)
    assert y.tolist() == [0, 1, 2]
    np.testing.assert_allclose(x, resize_images(imgs[[1, 2, 0], ..., None] / 255, (28, 28)), atol=1e-6)
    assert_coil_orientation(x)


def test_coil20_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("coil20", tmp_path)
    msg = str(e.value)
    assert "obj<k>__<view>.png" in msg and "COIL20.mat" in msg and str(tmp_path) in msg
    assert "cs.columbia.edu/CAVE" in msg
    with pytest.raises(FileNotFoundError, match="missing file") as e:
        load_dataset("coil20", tmp_path / "COIL20.mat")
    assert str(tmp_path) in str(e.value)
    scipy.io.savemat(tmp_path / "COIL20.mat", {"fea": np.zeros((2, 1024))})
    with pytest.raises(ValueError, match="missing variable"):
        load_dataset("coil20", tmp_path)
    scipy.io.savemat(tmp_path / "COIL20.mat", {"fea": np.zeros((2, 1000)), "gnd": np.ones((2, 1))})
    with pytest.raises(ValueError, match=r"fea \(N, 1024\)"):
        load_dataset("coil20", tmp_path)
    (tmp_path / "COIL20.mat").write_bytes(b"garbage" * 30)
    with pytest.raises(ValueError, match="MATLAB"):
        load_dataset("coil20", tmp_path)
    (tmp_path / "COIL20.mat").unlink()
    (tmp_path / "coil-20-proc").mkdir()
    (tmp_path / "coil-20-proc" / "obj1__0.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a PNG") as e:
        load_dataset("coil20", tmp_path)
    assert "coil-20-proc" in str(e.value)


# ---------------------------------------------------------------------------- FRGC


def frgc_images(n: int, size: int = 32) -> np.ndarray:
    """uint8 NHWC: red top-left pixel, green top-right pixel, blue background of level 10 * i."""
    x = np.zeros((n, size, size, 3), np.uint8)
    x[..., 2] = (10 * np.arange(n))[:, None, None]
    x[:, 0, 0] = (255, 0, 0)
    x[:, 0, -1] = (0, 255, 0)
    return x


@pytest.mark.parametrize("layout", ["nhwc-uint8", "dekm-float255", "nhwc-float01"])
def test_frgc_h5(tmp_path, layout):
    imgs = frgc_images(4)
    labels = np.array([42, 5, 17, 5])
    data_arr = {
        "nhwc-uint8": imgs,
        "dekm-float255": np.swapaxes(imgs, 1, 3).astype(np.float32),  # DEKM: (N, 3, W, H)
        "nhwc-float01": imgs / 255.0,
    }[layout]
    with h5py.File(tmp_path / "FRGC.h5", "w") as f:
        f["data"] = data_arr
        f["labels"] = labels
    for where in (tmp_path, tmp_path / "FRGC.h5"):
        x, y = load_dataset("frgc", where)
        assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
        np.testing.assert_allclose(x, imgs / 255.0, atol=1e-6)
        np.testing.assert_array_equal(x[:, 0, 0], np.tile([1.0, 0, 0], (4, 1)))  # red, top-left
        np.testing.assert_array_equal(x[:, 0, 31], np.tile([0, 1.0, 0], (4, 1)))  # green, top-right
        assert y.tolist() == [2, 0, 1, 0]  # sorted unique values -> 0..K-1


def test_frgc_h5_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("frgc", tmp_path)
    msg = str(e.value)
    assert "FRGC.h5" in msg and str(tmp_path) in msg and "spdj2271/DEKM" in msg
    with h5py.File(tmp_path / "FRGC.h5", "w") as f:
        f["data"] = np.zeros((2, 32, 32), np.uint8)
        f["labels"] = np.zeros(2)
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        load_dataset("frgc", tmp_path)
    with h5py.File(tmp_path / "FRGC.h5", "w") as f:
        f["data"] = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="data and labels"):
        load_dataset("frgc", tmp_path)


def test_frgc_folders(tmp_path):
    red = np.zeros((64, 48, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((20, 20), 128, np.uint8)
    marked = frgc_images(1, size=32)[0]
    write_png(tmp_path / "s10" / "b.png", red)  # shrunk (area)
    write_png(tmp_path / "s02" / "z.png", marked)
    write_png(tmp_path / "s02" / "a.png", grey)  # enlarged, grey -> RGB
    (tmp_path / "s02" / "notes.txt").write_text("ignored")
    (tmp_path / ".cache").mkdir()
    write_png(tmp_path / ".cache" / "x.png", red)  # hidden folder: ignored
    (tmp_path / "empty").mkdir()  # no images: not a class
    x, y = load_dataset("frgc", tmp_path)
    assert x.shape == (3, 32, 32, 3)
    assert y.tolist() == [0, 0, 1]  # classes by folder name (s02, s10), files by name (a, z)
    np.testing.assert_allclose(x[0], 128 / 255, atol=1e-6)
    np.testing.assert_allclose(x[1], marked / 255, atol=1e-6)
    np.testing.assert_allclose(x[2], np.broadcast_to([1.0, 0, 0], (32, 32, 3)), atol=1e-6)  # red stays red


def test_frgc_other_formats(tmp_path):
    """JPEG, BMP, ... through Pillow: the decoded pixels / 255, grey as RGB; a bad file is one clear error."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    (tmp_path / "s1").mkdir()
    Image.fromarray(rgb).save(tmp_path / "s1" / "a.bmp")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "s1" / "b.jpg", quality=90)
    x, y = load_dataset("frgc", tmp_path)
    assert y.tolist() == [0, 0]
    np.testing.assert_array_equal(x[0], rgb / np.float32(255))
    with Image.open(tmp_path / "s1" / "b.jpg") as im:
        grey = np.asarray(im, np.float32) / np.float32(255)
    np.testing.assert_array_equal(x[1], np.repeat(grey[..., None], 3, -1))
    (tmp_path / "s1" / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(ValueError, match="c.jpg") as e:
        load_dataset("frgc", tmp_path)
    assert "frgc" in str(e.value) and "\n" not in str(e.value)


def test_frgc_too_many_classes(tmp_path):
    for i in range(21):
        write_png(tmp_path / f"s{i:02d}" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="21 class folders"):
        load_dataset("frgc", tmp_path)


# ---------------------------------------------------------------------------- seismic


def seismic_arrays(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 16, 48)).astype(np.float32)
    x[:, 0, 0] = 1.0  # asymmetric marker
    y = np.array([7, 3] * (n // 2))
    return x, y


@pytest.mark.parametrize("channel", [False, True])
def test_seismic_npy(tmp_path, channel):
    x0, y0 = seismic_arrays()
    np.save(tmp_path / "x.npy", x0[..., None] if channel else x0)
    np.save(tmp_path / "y.npy", y0)
    x, y = load_dataset("seismic", tmp_path)
    assert x.shape == (6, 16, 48, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(x[..., 0], x0)  # values in [0, 1]: unchanged
    assert y.tolist() == [1, 0] * 3


def test_seismic_npz_and_scaling(tmp_path):
    x0, y0 = seismic_arrays()
    amp = (x0 * 10 - 5).astype(np.float64)  # amplitudes in [-5, 5]
    np.savez(tmp_path / "any_name.npz", x=amp, y=y0)
    for where in (tmp_path, tmp_path / "any_name.npz"):
        x, y = load_dataset("seismic", where)
        expected = (amp - amp.min()) / (amp.max() - amp.min())  # min-max over the whole array
        np.testing.assert_allclose(x[..., 0], expected, atol=1e-6)
        assert x.min() == 0.0 and x.max() == 1.0
        assert y.tolist() == [1, 0] * 3
    np.savez(tmp_path / "any_name.npz", X=np.round(x0 * 200).astype(np.int16)[..., None], Y=y0 - 3)
    x, y = load_dataset("seismic", tmp_path)  # integers: min-max scaled too; keys X/Y accepted
    assert x.min() == 0.0 and x.max() == 1.0 and y.tolist() == [1, 0] * 3
    np.savez(tmp_path / "any_name.npz", x=np.full((2, 16, 48), 7.0), y=[0, 1])
    x, _ = load_dataset("seismic", tmp_path)  # constant outside [0, 1]: zeros
    assert np.all(x == 0)


def test_seismic_smaller_sample_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("seismic", tmp_path)
    msg = str(e.value)
    assert "x.npy" in msg and "y.npy" in msg and ".npz" in msg and str(tmp_path) in msg
    assert "paper's authors" in msg
    x0, y0 = seismic_arrays(n=4)
    np.save(tmp_path / "x.npy", x0)
    with pytest.raises(FileNotFoundError, match="y.npy"):
        load_dataset("seismic", tmp_path)
    np.save(tmp_path / "y.npy", y0)
    x, _ = load_dataset("seismic", tmp_path)  # 4 samples instead of the paper's 9,200: fine
    assert x.shape == (4, 16, 48, 1)
    np.save(tmp_path / "x.npy", x0.transpose(0, 2, 1))
    with pytest.raises(ValueError, match=r"\(N, 16, 48\)"):
        load_dataset("seismic", tmp_path)
    np.save(tmp_path / "x.npy", x0)
    np.save(tmp_path / "y.npy", [0, 1, 2, 1])
    with pytest.raises(ValueError, match="more than two classes"):
        load_dataset("seismic", tmp_path)
    np.save(tmp_path / "y.npy", y0[:3])
    with pytest.raises(ValueError, match="y"):
        load_dataset("seismic", tmp_path)
    x_nan = x0.copy()
    x_nan[0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x_nan)
    np.save(tmp_path / "y.npy", y0)
    with pytest.raises(ValueError, match="NaN"):
        load_dataset("seismic", tmp_path)

    npz_dir = tmp_path / "npz"
    npz_dir.mkdir()
    np.savez(npz_dir / "a.npz", images=x0, y=y0)
    with pytest.raises(ValueError, match="expected x and y"):
        load_dataset("seismic", npz_dir)
    np.savez(npz_dir / "b.npz", x=x0, y=y0)
    with pytest.raises(ValueError, match="several .npz files"):
        load_dataset("seismic", npz_dir)
    x, _ = load_dataset("seismic", npz_dir / "b.npz")
    assert len(x) == 4
    with pytest.raises(FileNotFoundError, match="c.npz"):
        load_dataset("seismic", npz_dir / "c.npz")
