"""Skip weights as traced data: several skip settings (and seeds) in one vmapped program
(``sweep.skip_sweep``) give, run by run, what each setting gives alone (``methods.run("sdekc",
skips=w)``) with the same budget. A vmapped program rounds differently from the runs one by one,
so they agree to float tolerance (over a few steps) and in distribution, not bit for bit; a
sweep resumed from its checkpoints runs the same program and ends with the same bits."""
import jax
import numpy as np
import pytest

from sdekc_jax.cache import PretrainCache
from sdekc_jax.config import RunConfig
from sdekc_jax.methods import run
from sdekc_jax.models import BINARY_ARCH
from sdekc_jax.sweep import skip_sweep

SHAPE = (16, 16, 1)
K, D = 3, 3
# the binary preset (tiny: 4-2-1 filters, tanh) with a 3-d embedding; RunConfig fields
ARCH = {k: v for k, v in BINARY_ARCH.items() if k != "embedding_dim"}
BUDGET = dict(pretrain_epochs=2, batch_size=32, max_iters=4, steps_per_iter=3, tol=0.0, kmeans_n_init=2)
RUNS = [(None, 0), ("paper-text", 1)]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    protos = rng.uniform(size=(3,) + SHAPE)
    y = rng.integers(0, 3, 96)
    return np.clip(protos[y] + 0.1 * rng.normal(size=(96,) + SHAPE), 0, 1).astype(np.float32)


def sweep_of(x, runs, **kw):
    return skip_sweep(x, K, runs, embedding_dim=D, verbose=False, **ARCH, **BUDGET, **kw)


def alone(x, w, seed):
    """The setting run alone, through the methods' entry point (no pretraining cache)."""
    return run("sdekc", x, K, seed=seed, skips="none" if w is None else w, arch="binary", embedding_dim=D,
               cache=PretrainCache(None), verbose=False, **BUDGET)


@pytest.fixture(scope="module")
def sweep(images):
    return sweep_of(images, RUNS)


def test_skip_sweep_agrees_with_each_setting_alone(images, sweep):
    """Two runs in one program: no skips (computed as (0, 1)) and the paper text's reading with
    another seed. Each has the shapes of the run alone, finite values, and the same first-epoch
    pretraining loss to float tolerance; the two settings really differ."""
    res = sweep
    R, n = len(RUNS), len(images)
    assert res.runs == [(None, 0), ((0.999, 0.001), 1)]
    assert res.labels.shape == (R, n) and res.pretrain_labels.shape == (R, n) and res.embedding.shape == (R, n, D)
    assert res.n_iter.shape == res.converged.shape == (R,) and len(res.history) == R
    assert np.isfinite(res.embedding).all() and all(np.isfinite(v).all() for v in jax.tree.leaves(res.params))
    assert set(res.params) == {"encoder", "decoder"}
    for i, (w, seed) in enumerate(res.runs):
        a = alone(images, w, seed)
        mine = RunConfig(n_clusters=K, image_shape=SHAPE, embedding_dim=D, **ARCH, **BUDGET)
        assert a.run_config.replace(cluster_learning_rate=None) == mine and a.run_config.cluster_lr == mine.cluster_lr
        h = res.history[i]
        assert h["pretrain_loss"].shape == a.history["pretrain_loss"].shape == (BUDGET["pretrain_epochs"],)
        assert np.isfinite(h["pretrain_loss"]).all()
        np.testing.assert_allclose(h["pretrain_loss"][0], a.history["pretrain_loss"][0], rtol=1e-4)
        assert res.labels[i].dtype == a.labels.dtype and set(np.unique(res.labels[i])) <= set(range(K))
        assert int(res.n_iter[i]) == a.n_iter == BUDGET["max_iters"]  # tol 0: both run every iteration
        for key in ("n_changed", "inertia", "loss"):
            assert h[key].shape == a.history[key].shape, key
        assert np.isfinite(h["inertia"]).all() and np.isfinite(h["loss"][:-1]).all()  # the last iteration takes no steps
        assert jax.tree.map(np.shape, a.params) == jax.tree.map(lambda v: np.shape(v[i]), res.params)
    assert not np.allclose(res.history[0]["pretrain_loss"], res.history[1]["pretrain_loss"])  # the settings differ


def test_skip_sweep_checks_its_input(images):
    with pytest.raises(ValueError, match="distinct"):
        sweep_of(images, [(None, 0), (None, 0)])
    with pytest.raises(ValueError, match="at least one"):
        sweep_of(images, [])
    with pytest.raises(ValueError, match="skip preset"):
        sweep_of(images, [("sideways", 0)])
    with pytest.raises(ValueError, match="n_clusters"):
        skip_sweep(images[:2], K, [(None, 0)], verbose=False)
    with pytest.raises(ValueError, match="not supported"):  # the mirrored decoder cannot give 15x15 back
        skip_sweep(images[:, :15, :15], K, [(None, 0)], verbose=False, **BUDGET)
    with pytest.raises(ValueError, match="clustering"):  # settings are RunConfig fields, validated there
        sweep_of(images, [(None, 0)], clustering="spectral")


def test_skip_sweep_resumes_from_its_checkpoints(images, sweep, tmp_path, run_with_crashes):
    """A sweep stopped right after its first pretraining checkpoint and again after its first
    clustering checkpoint, then started again, ends with the bits of the uninterrupted sweep (the
    same program, resumed); a checkpoint written by other runs is refused."""
    from sdekc_jax.checkpoint import CheckpointMismatch
    kw = {"checkpoint_dir": str(tmp_path / "ck")}
    res, saved = run_with_crashes(lambda: sweep_of(images, RUNS, **kw))
    assert saved == ["pretrain", "pretrain", "cluster"]  # epoch 1 | epoch 2, the loop's one chunk | nothing left
    np.testing.assert_array_equal(res.labels, sweep.labels)
    np.testing.assert_array_equal(res.pretrain_labels, sweep.pretrain_labels)
    np.testing.assert_array_equal(res.embedding, sweep.embedding)
    for u, v in zip(jax.tree.leaves(res.params), jax.tree.leaves(sweep.params)):
        np.testing.assert_array_equal(u, v)
    for a, b in zip(res.history, sweep.history):
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with pytest.raises(CheckpointMismatch, match="other settings"):
        sweep_of(images, [(None, 0), ("paper-text", 2)], **kw)
