"""Streamed pretraining (data fed in chunks, memory bounded by a chunk) and the scale runner."""
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from sdekc_jax.config import RunConfig
from sdekc_jax.models import init_params
from sdekc_jax.pretrain import SyntheticImages, pretrain

CFG = RunConfig(n_clusters=3, image_shape=(4, 4, 1), arch="dense", hidden=(16,))


class Recording:
    """An array-like that records which slices were read."""

    def __init__(self, x):
        self.x, self.reads = x, []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, item):
        self.reads.append((item.start, item.stop))
        return self.x[item]


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).uniform(size=(250, 4, 4, 1)).astype(np.float32)


def fit(x, **kw):
    return pretrain(init_params(jax.random.key(0), CFG), x, jax.random.key(1), epochs=3, batch_size=32, verbose=False,
                    **kw)


def test_streamed_epochs_read_every_image_once_a_chunk_at_a_time(data):
    rec = Recording(data)
    params, losses = fit(rec, chunk_size=100)
    assert all(hi - lo <= 100 for lo, hi in rec.reads)
    assert len(rec.reads) == 9  # 3 epochs x 3 chunks (100, 100, 50)
    for e in range(3):
        seen = np.zeros(len(data), int)
        for lo, hi in rec.reads[3 * e:3 * e + 3]:
            seen[lo:hi] += 1
        assert np.all(seen == 1)
    orders = [tuple(lo for lo, _ in rec.reads[3 * e:3 * e + 3]) for e in range(3)]
    assert len(set(orders)) > 1, "the chunk order should change between epochs"
    assert losses.shape == (3,) and losses[-1] < losses[0]


def test_streaming_is_deterministic_and_independent_of_the_container(data, tmp_path):
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=data.shape)
    mm[:] = data
    mm.flush()
    a, la = fit(data, chunk_size=100)
    b, lb = fit(np.load(tmp_path / "x.npy", mmap_mode="r"), chunk_size=100)
    np.testing.assert_array_equal(la, lb)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(u, v)


def test_a_chunk_as_large_as_the_data_is_the_in_memory_run(data):
    a, la = fit(data)
    b, lb = fit(data, chunk_size=len(data))
    np.testing.assert_array_equal(la, lb)
    with pytest.raises(ValueError, match="chunk_size"):
        fit(data, chunk_size=0)


def test_synthetic_images_are_deterministic_slices_in_range():
    s = SyntheticImages(1000, (8, 8, 1), n_classes=4, seed=3)
    a = s[100:164]
    assert a.shape == (64, 8, 8, 1) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, SyntheticImages(1000, (8, 8, 1), n_classes=4, seed=3)[100:164])
    assert len(s) == 1000 and s.shape == (1000, 8, 8, 1) and list(s.labels(0, 6)) == [0, 1, 2, 3, 0, 1]
    with pytest.raises(TypeError):
        s[np.arange(3)]


def test_scale_runner_writes_time_and_peak_memory(tmp_path):
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(root / "experiments" / "scale.py"), "--parts", "cluster", "pretrain", "--n", "600",
                    "--max-iters", "4", "--chunk-size", "300", "--out", str(tmp_path)], check=True, capture_output=True,
                   text=True)
    res = json.loads((tmp_path / "scale.json").read_text())
    cl, pre = res["rows"]
    assert cl["part"] == "cluster" and cl["n"] == 600 and 1 <= cl["n_iter"] <= 4
    assert cl["seconds"] > 0 and cl["peak_rss_mb"] > 0 and cl["acc_vs_blobs"] > 0.5
    assert pre["part"] == "pretrain" and pre["n"] == 600 and pre["chunk_size"] == 300 and pre["epochs"] == 1
    assert len(pre["losses"]) == 1 and np.isfinite(pre["losses"]).all() and pre["images_per_second"] > 0
    md = (tmp_path / "scale.md").read_text()
    assert "\n| 600 | tol 0.001 | " in md and "Streamed pretraining" in md and "\n| 600 | 1 | 300 | " in md
