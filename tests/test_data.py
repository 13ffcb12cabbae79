import gzip
import importlib.util
import struct
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from sdekc_jax.data import DATASETS, KNOWN_SHA256, common, load_dataset, mnist, read_idx

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
USPS_H5 = SHARED_DATA / "usps" / "USPS.h5"
FASHION_DIR = SHARED_DATA / "fashion-mnist"

# Files the tests write under known names do not have the known checksums; tests that check the
# warning use pytest.warns, which still records it.
pytestmark = pytest.mark.filterwarnings("ignore:.*sha256 of")

IDX_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
IDX_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ---------------------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    arr = np.asarray(arr)
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    raw = idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def write_idx_split(folder: Path, names, n: int, seed: int, gz: bool):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.uint8)
    write_idx(folder / names[0], x, gz)
    write_idx(folder / names[1], y, gz)
    return x, y


def write_usps_h5(path: Path, n_train=7, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    with h5py.File(path, "w") as f:
        for split, n in (("train", n_train), ("test", n_test)):
            x = rng.random((n, 256), dtype=np.float32)
            y = rng.integers(0, 10, size=n).astype(np.int32)
            g = f.create_group(split)
            g.create_dataset("data", data=x)
            g.create_dataset("target", data=y)
            out[split] = (x, y)
    return out


# ---------------------------------------------------------------------------- registry / names


def test_registry():
    assert set(DATASETS) >= {"usps", "mnist", "fashion-mnist"}
    for key, info in DATASETS.items():
        assert info.name == key
        assert len(info.shape) == 3 and info.n_clusters >= 2
        assert info.files and info.source and callable(info.loader)
    assert DATASETS["usps"].shape == (16, 16, 1)
    assert DATASETS["mnist"].shape == DATASETS["fashion-mnist"].shape == (28, 28, 1)


def test_unknown_name_and_bad_subset():
    with pytest.raises(ValueError, match="known: fashion-mnist, mnist, usps"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="subset"):
        load_dataset("usps", subset="validation")


@pytest.mark.parametrize("name", ["USPS", "usps", " Usps "])
def test_name_case_insensitive(name):
    x, _ = load_dataset(name, subset="test")
    assert x.shape == (2007, 16, 16, 1)


# ---------------------------------------------------------------------------- USPS


def test_embedded_usps():
    x, y = load_dataset("usps")
    assert x.shape == (9298, 16, 16, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.dtype == np.int32 and set(np.unique(y)) == set(range(10))
    xtr, ytr = load_dataset("usps", subset="train")
    xte, yte = load_dataset("usps", subset="test")
    assert len(xtr) == 7291 and len(xte) == 2007
    np.testing.assert_array_equal(x, np.concatenate([xtr, xte]))
    np.testing.assert_array_equal(y, np.concatenate([ytr, yte]))
    # 2001 grey levels, like USPS.h5
    assert np.allclose(x * 2000, np.round(x * 2000), atol=1e-3)


@pytest.mark.skipif(not USPS_H5.is_file(), reason=f"real USPS.h5 not found at {USPS_H5}")
def test_embedded_usps_equals_h5():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the real file has the known checksum
        x_h5, y_h5 = load_dataset("usps", USPS_H5.parent)
        x_file, _ = load_dataset("usps", USPS_H5, subset="test")
    x, y = load_dataset("usps")
    assert np.abs(x - x_h5).max() < 1e-6
    np.testing.assert_array_equal(y, y_h5)
    with h5py.File(USPS_H5) as f:
        raw = np.asarray(f["test"]["data"])
    np.testing.assert_array_equal(x_file.reshape(-1, 256), raw)  # row-major 16x16


def test_usps_h5_written_by_test(tmp_path):
    ref = write_usps_h5(tmp_path / "USPS.h5")
    with pytest.warns(UserWarning, match="734f88c5"):  # named like the known file, other content
        x, y = load_dataset("usps", tmp_path)
    assert x.shape == (10, 16, 16, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(x.reshape(10, 256), np.concatenate([ref["train"][0], ref["test"][0]]))
    np.testing.assert_array_equal(y, np.concatenate([ref["train"][1], ref["test"][1]]))
    with pytest.warns(UserWarning):
        xt, yt = load_dataset("usps", str(tmp_path / "USPS.h5"), subset="test")
    np.testing.assert_array_equal(xt.reshape(3, 256), ref["test"][0])


def test_usps_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("usps", tmp_path)
    msg = str(e.value)
    assert "USPS.h5" in msg and str(tmp_path) in msg and "spdj2271/DEKM" in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("usps", tmp_path / "nowhere")
    (tmp_path / "USPS.h5").write_bytes(b"not an hdf5 file")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="USPS.h5"):
        load_dataset("usps", tmp_path)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_group("train")
    with pytest.raises(ValueError, match="groups train/test"):
        load_dataset("usps", tmp_path / "other.h5")


# ---------------------------------------------------------------------------- IDX (MNIST / Fashion-MNIST)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "Fashion_MNIST"])
def test_idx_gz_and_plain(tmp_path, name):
    xtr, ytr = write_idx_split(tmp_path, IDX_TRAIN, 6, seed=0, gz=True)
    xte, yte = write_idx_split(tmp_path, IDX_TEST, 4, seed=1, gz=False)
    x, y = load_dataset(name, tmp_path)
    assert x.shape == (10, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x[..., 0], np.concatenate([xtr, xte]) / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y, np.concatenate([ytr, yte]))
    x, y = load_dataset(name, tmp_path, subset="train")
    np.testing.assert_array_equal(y, ytr)


def test_idx_subset_test_needs_only_t10k(tmp_path):
    _, yte = write_idx_split(tmp_path, IDX_TEST, 4, seed=1, gz=True)
    x, y = load_dataset("mnist", tmp_path, subset="test")
    assert x.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(y, yte)
    for subset in ("train", "all"):
        with pytest.raises(FileNotFoundError) as e:
            load_dataset("mnist", tmp_path, subset=subset)
        msg = str(e.value)
        assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
        assert str(tmp_path) in msg and "yann.lecun.com" in msg
    with pytest.raises(FileNotFoundError, match="zalandoresearch/fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path / "missing")


def test_idx_corrupt_files(tmp_path):
    write_idx_split(tmp_path, IDX_TEST, 4, seed=1, gz=False)
    images = tmp_path / IDX_TEST[0]
    good = images.read_bytes()

    images.write_bytes(b"\x00\x00\x08\x07" + good[4:])  # wrong number of dimensions
    with pytest.raises(ValueError, match="dimensions"):
        load_dataset("mnist", tmp_path, subset="test")
    images.write_bytes(b"\x12\x34\x08\x03" + good[4:])  # bad magic
    with pytest.raises(ValueError, match="magic") as e:
        load_dataset("mnist", tmp_path, subset="test")
    assert "yann.lecun.com" in str(e.value) and str(tmp_path) in str(e.value)
    images.write_bytes(good[:-10])  # truncated
    with pytest.raises(ValueError, match="truncated"):
        load_dataset("mnist", tmp_path, subset="test")
    images.write_bytes(good[:10])  # truncated header
    with pytest.raises(ValueError, match="truncated"):
        load_dataset("mnist", tmp_path, subset="test")
    images.write_bytes(b"")
    with pytest.raises(ValueError, match="magic"):
        load_dataset("mnist", tmp_path, subset="test")
    images.unlink()
    (tmp_path / (IDX_TEST[0] + ".gz")).write_bytes(gzip.compress(good)[:-20])  # truncated gzip
    with pytest.raises(ValueError, match="gzip"):
        load_dataset("mnist", tmp_path, subset="test")
    write_idx(images, np.zeros((5, 28, 28), np.uint8), gz=True)  # 5 images, 4 labels
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        load_dataset("mnist", tmp_path, subset="test")
    write_idx(images, np.zeros((4, 16, 16), np.uint8), gz=True)  # wrong image size
    with pytest.raises(ValueError):
        load_dataset("mnist", tmp_path, subset="test")


def test_read_idx_dtypes(tmp_path):
    a = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    b = np.linspace(0, 1, 5, dtype=np.float32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a", a, gz=False)), a)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "b", b, gz=True), ndim=1), b)


def test_checksum_mismatch_warns_once_hashes_once(tmp_path, monkeypatch):
    write_idx_split(tmp_path, IDX_TEST, 3, seed=0, gz=True)
    expected = KNOWN_SHA256["fashion-mnist"]["t10k-images-idx3-ubyte.gz"]
    with pytest.warns(UserWarning) as record:
        load_dataset("fashion-mnist", tmp_path, subset="test")
    messages = [str(w.message) for w in record]
    assert len(messages) == 2  # images and labels
    images_msg = next(m for m in messages if "t10k-images" in m)
    assert all(h in images_msg for h in expected)
    assert common._sha256(tmp_path / "t10k-images-idx3-ubyte.gz") in images_msg

    calls = []
    real_sha256 = common.hashlib.sha256
    monkeypatch.setattr(common.hashlib, "sha256", lambda *a: calls.append(1) or real_sha256(*a))
    with pytest.warns(UserWarning):
        load_dataset("fashion-mnist", tmp_path, subset="test")
    assert calls == []  # cached

    # plain (un-gzipped) files have no known checksum: no warning
    for name in IDX_TEST:
        gz = tmp_path / f"{name}.gz"
        (tmp_path / name).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("fashion-mnist", tmp_path, subset="test")


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"real Fashion-MNIST not found at {FASHION_DIR}")
def test_real_fashion_mnist():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known checksums
        x, y = load_dataset("fashion-mnist", FASHION_DIR)
    assert x.shape == (70000, 28, 28, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), [7000] * 10)
    xt, yt = load_dataset("fashion_mnist", FASHION_DIR, subset="test")
    np.testing.assert_array_equal(xt, x[60000:])
    np.testing.assert_array_equal(yt, y[60000:])


def test_fashion_mnist_default_uses_debian_folder(tmp_path, monkeypatch):
    _, yte = write_idx_split(tmp_path, IDX_TEST, 4, seed=2, gz=False)
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST_DIR", tmp_path)
    x, y = load_dataset("fashion-mnist", subset="test")
    assert x.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(y, yte)


# ---------------------------------------------------------------------------- TFDS


HAS_TF = importlib.util.find_spec("tensorflow") is not None


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_tfds_mock(name, monkeypatch, tmp_path):
    """TFDS path with mocked data: tfds.load with tensorflow, tfds.data_source without it."""
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "absent")
    with tfds.testing.mock_data(num_examples=5):
        x, y = load_dataset(name)
        xt, yt = load_dataset(name, subset="test")
    assert x.shape == (10, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0
    assert y.dtype == np.int32 and y.min() >= 0 and y.max() <= 9
    assert xt.shape == (5, 28, 28, 1)


@pytest.mark.skipif(HAS_TF, reason="tensorflow is installed: the error only occurs without it")
def test_tfds_without_tensorflow_error_message(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def not_prepared(*args, **kwargs):
        raise AssertionError("Dataset mnist: could not find data in ~/tensorflow_datasets")

    monkeypatch.setattr(tfds, "data_source", not_prepared)
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("mnist")
    msg = str(e.value)
    assert "tensorflow is not installed" in msg and "could not find data" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "yann.lecun.com" in msg and "data_dir" in msg
