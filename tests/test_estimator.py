"""The scikit-learn style estimator: input validation, attributes, determinism, resume."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax.config import RunConfig
from sdekc_jax.estimator import SDEKC, check_images, resolve_skips
from sdekc_jax.run import fit as run_fit


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    protos = rng.uniform(size=(3, 16, 16))
    y = rng.integers(0, 3, 120)
    x = np.clip(protos[y] + 0.1 * rng.normal(size=(120, 16, 16)), 0, 1).astype(np.float32)
    return x, y


def fit(x, **kw):
    kw = {"pretrain_epochs": 2, "max_iters": 3, "batch_size": 32, "steps_per_iter": 4, "verbose": False, **kw}
    return SDEKC(3, **kw).fit(x)


@pytest.mark.slow
def test_fit_attributes_and_determinism(tiny):
    x, _ = tiny
    a = fit(x)
    assert a.labels_.shape == (120,) and a.labels_.dtype.kind == "i"
    assert set(np.unique(a.labels_)) <= {0, 1, 2}
    assert a.cluster_centers_.shape == (3, 3)
    assert 1 <= a.n_iter_ <= 3 and isinstance(a.converged_, bool)
    assert set(a.history_) == {"pretrain_loss", "n_changed", "loss", "inertia"}
    assert all(len(a.history_[k]) == a.n_iter_ for k in ("n_changed", "loss", "inertia"))
    assert len(a.history_["pretrain_loss"]) == 2
    assert set(a.params_) == {"encoder", "decoder"} and set(a.timings_) >= {"pretrain", "cluster"}
    # config_ is the RunConfig that ran, and fit is sdekc_jax.run.fit on it with jax.random.key(seed)
    assert a.config_ == a.config((16, 16, 1)) and isinstance(a.config_, RunConfig)
    assert (a.config_.n_clusters, a.config_.image_shape, a.config_.pretrain_epochs, a.config_.max_iters,
            a.config_.batch_size, a.config_.steps_per_iter) == (3, (16, 16, 1), 2, 3, 32, 4)
    r = run_fit(a.config_, check_images(x), jax.random.key(0), jnp.array([0.001, 0.999]), verbose=False).result
    np.testing.assert_array_equal(r.labels, a.labels_)
    with pytest.raises(ValueError, match="the model was fitted on \\(16, 16, 1\\)"):
        a.transform(x[:, :8, :8])
    z = a.transform(x)
    assert z.shape == (120, 3)
    # labels are the nearest centres of the returned embedding
    np.testing.assert_array_equal(a.predict(x), a.labels_)
    b = fit(x)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(z, b.transform(x))
    c = fit(x, seed=1)
    assert not np.array_equal(a.transform(x), c.transform(x))


def test_decoder_untouched_by_clustering(tiny):
    x, _ = tiny
    a = fit(x)  # the settings of the other tests here: their compiled programs
    b = fit(x, max_iters=1, steps_per_iter=0)  # same pretraining, no clustering steps
    assert a.n_iter_ >= 2
    assert set(a.params_) == {"encoder", "decoder"}
    for u, v in zip(jax.tree.leaves(a.params_["decoder"]), jax.tree.leaves(b.params_["decoder"])):
        np.testing.assert_array_equal(u, v)
    for layer in a.params_["encoder"]:  # every encoder layer was trained
        assert not np.array_equal(a.params_["encoder"][layer]["kernel"], b.params_["encoder"][layer]["kernel"]), layer
    np.testing.assert_array_equal(b.history_["pretrain_loss"], a.history_["pretrain_loss"])


def test_a_second_fit_of_the_same_shapes_compiles_nothing(tiny):
    """Fits of the same settings and image shape reuse the compiled programs (another seed, other
    data, flat rows with image_shape= included)."""
    x, _ = tiny
    fit(x)  # the settings of the other tests here: compiled once for all of them
    compiles = []
    listener = lambda event, duration, **kw: compiles.append(event) if "backend_compile" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        flat = fit(x[::-1].reshape(120, 256).copy(), seed=5, image_shape=(16, 16, 1))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == [] and flat.labels_.shape == (120,)
    with pytest.raises(ValueError, match="image_shape"):
        SDEKC(3).fit(x.reshape(120, 256))


def test_channel_axis_and_uint8(tiny):
    x, _ = tiny
    assert check_images(x).shape == (120, 16, 16, 1)
    u8 = (x * 255).astype(np.uint8)
    np.testing.assert_allclose(check_images(u8)[..., 0], (x * 255).astype(np.uint8) / 255.0, atol=1e-6)
    assert check_images(x.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("bad,match", [
    (np.full((10, 16, 16), np.nan, np.float32), "NaN or inf"),
    (np.zeros((10, 256), np.float32), "shape"),
    (np.zeros((2, 10, 16, 16, 1), np.float32), "shape"),
    (np.zeros((10, 16, 16), np.int64), "dtype"),
])
def test_bad_images(bad, match):
    with pytest.raises(ValueError, match=match):
        check_images(bad)


def test_bad_parameters(tiny):
    x, _ = tiny
    with pytest.raises(ValueError, match="n_clusters"):
        SDEKC(1).fit(x)
    with pytest.raises(ValueError, match="n_clusters"):
        SDEKC(500).fit(x)
    with pytest.raises(ValueError, match="not supported"):
        SDEKC(3).fit(np.random.default_rng(0).random((10, 18, 18), np.float32))
    with pytest.raises(RuntimeError, match="not fitted"):
        SDEKC(3).transform(x)
    with pytest.raises(ValueError, match="tol"):
        SDEKC(3, tol=2.0, verbose=False).fit(x)
    with pytest.raises(ValueError, match="unknown skip preset"):
        SDEKC(3, skip_weights="both", verbose=False).fit(x)


def test_skip_presets():
    assert resolve_skips("swapped") == (0.001, 0.999)
    assert resolve_skips("paper-text") == (0.999, 0.001)
    assert resolve_skips("none") is None and resolve_skips(None) is None
    assert resolve_skips([0.2, 0.8]) == (0.2, 0.8)
    with pytest.raises(ValueError, match="unknown skip preset"):
        resolve_skips("both")
    with pytest.raises(ValueError, match="finite"):
        resolve_skips((float("nan"), 1.0))


def test_methods_share_the_estimators_input_checks():
    """run_method validates images like SDEKC.fit: NaN refused up front, (N, H, W) and uint8 accepted."""
    from sdekc_jax.methods import run
    x = np.random.default_rng(0).random((40, 16, 16, 1)).astype(np.float32)
    bad = x.copy()
    bad[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        run("sdekc", bad, 3, verbose=False)
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, H, W, C\)"):
        run("sdekc", x.reshape(40, -1), 3, verbose=False)
    with pytest.raises(ValueError, match="dtype int64"):
        run("kmeans", (x * 255).astype(np.int64), 3, verbose=False)
    a = run("kmeans", (x * 255).astype(np.uint8)[..., 0], 3, verbose=False)
    b = run("kmeans", ((x * 255).astype(np.uint8) / np.float32(255)).astype(np.float32), 3, verbose=False)
    np.testing.assert_array_equal(a.labels, b.labels)
    with pytest.raises(ValueError, match="two finite numbers"):
        resolve_skips(("a", 1.0))
    with pytest.raises(ValueError, match="two finite numbers"):
        resolve_skips((np.inf, 1.0))


def test_fit_resumes_from_its_checkpoints(tiny, tmp_path, run_with_crashes):
    """A fit stopped right after its first pretraining checkpoint and again after its first
    clustering checkpoint, then fitted again, ends with the uninterrupted fit's labels; the
    checkpoints of other settings are refused."""
    from sdekc_jax.checkpoint import CheckpointMismatch
    x, _ = tiny
    kw = dict(checkpoint_dir=str(tmp_path / "ck"))  # fit's settings: the other tests' compiled programs
    ref = fit(x)
    res, saved = run_with_crashes(lambda: fit(x, **kw))
    # epoch 1 | epoch 2 (resumed), then the clustering's one chunk | nothing left to do
    assert saved == ["pretrain", "pretrain", "cluster"]
    np.testing.assert_array_equal(res.labels_, ref.labels_)
    np.testing.assert_array_equal(res.history_["n_changed"], ref.history_["n_changed"])
    np.testing.assert_array_equal(res.history_["pretrain_loss"], ref.history_["pretrain_loss"])
    with pytest.raises(CheckpointMismatch):
        fit(x, **{**kw, "seed": 1})
    assert SDEKC(3, checkpoint_dir="d").get_params()["checkpoint_dir"] == "d"
