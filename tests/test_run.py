"""The functional core: a whole run as one pure function of a key (``make_run``), and the host
driver (``fit``) that runs the same step functions with progress and checkpoints.

Tiny shapes (8x8 images, a small CAE) keep compilation short; one slow test runs the issue's
example as written on 1,024 USPS images."""
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sdekc_jax as sk
from sdekc_jax.pretrain import init_state
from sdekc_jax.run import make_steps, split_key

SMALL = dict(n_clusters=4, image_shape=(8, 8, 1), filters=(4, 8, 8), kernels=(3, 3, 3), embedding_dim=3,
             pretrain_epochs=2, batch_size=32, max_iters=4, steps_per_iter=3, kmeans_n_init=2)
W = jnp.array([0.001, 0.999])


def small_images(n=160, seed=0):
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(0.5, 0.2, size=(n, 8, 8, 1)) + (np.arange(n) % 4)[:, None, None, None] * 0.15, 0, 1)
    return x.astype(np.float32)


@pytest.mark.parametrize("clustering", ["dekm", "dekm-schedule", "dec", "kmeans"])
def test_driver_gives_the_labels_of_the_jitted_run(clustering):
    """``fit`` (one jitted epoch / chunk at a time) and ``jax.jit(make_run(cfg))`` (one program)
    end with the same labels, counts and pretraining losses for the same key and config."""
    extra = {"dec": {"dec_reconstruction": True, "dec_gamma": 0.1},
             "dekm-schedule": {"kmeans_schedule": "dekm"}}.get(clustering, {})
    clustering = clustering.split("-")[0]
    cfg = sk.RunConfig(**SMALL, clustering=clustering, tol=0.0, **extra)
    x = small_images()
    r = jax.jit(sk.make_run(cfg))(jax.random.key(3), x, W)
    f = sk.fit(cfg, x, jax.random.key(3), W, verbose=False)
    np.testing.assert_array_equal(f.result.labels, np.asarray(r.labels))
    assert int(f.result.n_iter) == int(r.n_iter) and bool(f.result.converged) == bool(r.converged)
    np.testing.assert_allclose(f.result.pretrain_loss, np.asarray(r.pretrain_loss), rtol=1e-6)
    for k in r.history:
        np.testing.assert_allclose(f.result.history[k], np.asarray(r.history[k]), rtol=1e-5)
    if clustering != "kmeans":
        assert int(r.n_iter) == cfg.max_iters  # tol 0: runs to the cap
        assert np.all(np.asarray(r.history["n_changed"]) >= 0)


def test_run_result_shapes_and_fixed_size_history():
    cfg = sk.RunConfig(**{**SMALL, "max_iters": 6}, tol=0.5)
    x = small_images()
    r = jax.jit(sk.make_run(cfg))(jax.random.key(0), x, None)
    n, k, d = x.shape[0], cfg.n_clusters, cfg.embed_dim
    assert r.labels.shape == (n,) and r.labels.dtype == jnp.int32 and r.first_labels.shape == (n,)
    assert r.centers.shape == (k, d) and r.embedding.shape == (n, d)
    assert r.pretrain_loss.shape == (cfg.pretrain_epochs,)
    assert set(r.params) == {"encoder", "decoder"}
    assert {key: v.shape for key, v in r.history.items()} == {"n_changed": (6,), "loss": (6,), "inertia": (6,)}
    it = int(r.n_iter)
    assert 2 <= it < 6 and bool(r.converged)  # tol 0.5 stops early; the rest of the history is blank
    hist = jax.device_get(r.history)
    assert np.all(hist["n_changed"][it:] == -1) and np.all(np.isnan(hist["inertia"][it:]))
    assert np.isnan(hist["loss"][it - 1])  # the final iteration takes no steps
    assert np.all(np.isfinite(hist["loss"][:it - 1]))
    assert 0 <= int(np.max(r.labels)) < k


def test_run_has_no_host_callbacks():
    cfg = sk.RunConfig(**SMALL)
    jaxpr = str(jax.make_jaxpr(sk.make_run(cfg))(jax.random.key(0), small_images(), W))
    assert "callback" not in jaxpr
    assert "while" in jaxpr and "scan" in jaxpr and "eigh" in jaxpr


def test_pretraining_epoch_and_clustering_chunk_compile_once():
    """chex.assert_max_traces on the driver's two step functions: several epochs and chunks of a
    run, one trace each (and the check bites: a state leaf that changed dtype is a second trace)."""
    cfg = sk.RunConfig(**{**SMALL, "max_iters": 8, "steps_per_iter": 2}, tol=0.0)
    steps = make_steps(cfg)
    x = jnp.asarray(small_images())
    k_init, k_pre, k_cl = split_key(jax.random.key(0))
    chex.clear_trace_counter()
    epoch = jax.jit(chex.assert_max_traces(steps.pretrain_epoch, n=1))
    state = init_state(steps.init(k_init), steps.pretrain_tx)
    for e in range(3):
        state, loss = epoch(state, x, k_pre, e, W)
    advance = jax.jit(chex.assert_max_traces(steps.advance, n=1))
    st = steps.cluster_init(state["params"], x, k_cl, W)
    for limit in (2, 4, 6, 8):
        st = advance(st, x, W, jnp.int32(limit))
        assert int(st["iteration"]) == limit
    with pytest.raises(AssertionError, match="trace"):
        advance(dict(st, step=st["step"].astype(jnp.float32)), x, W, jnp.int32(8))


def test_skip_weights_are_data_and_zero_one_is_no_skips():
    """(0, 1) computes what None computes; other weights give another run of the same program."""
    cfg = sk.RunConfig(**SMALL)
    x = small_images()
    run = jax.jit(sk.make_run(cfg))
    none = run(jax.random.key(1), x, None)
    zero_one = run(jax.random.key(1), x, jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(np.asarray(zero_one.pretrain_loss), np.asarray(none.pretrain_loss), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(zero_one.first_labels), np.asarray(none.first_labels))
    half = run(jax.random.key(1), x, jnp.array([0.5, 0.5]))
    assert not np.allclose(np.asarray(half.pretrain_loss), np.asarray(none.pretrain_loss))


def test_vmapped_skip_sweep_matches_each_setting_run_alone():
    """``jax.vmap(run, in_axes=(None, None, 0))``: each row agrees with its setting run alone to
    float tolerance (same key, same steps; a batched program may round differently)."""
    cfg = sk.RunConfig(**{**SMALL, "pretrain_epochs": 1, "max_iters": 2})
    x = small_images()
    ws = jnp.array([[0.0, 1.0], [0.001, 0.999], [0.5, 0.5]])
    run = sk.make_run(cfg)
    rw = jax.jit(jax.vmap(run, in_axes=(None, None, 0)))(jax.random.key(2), x, ws)
    for i in range(3):
        alone = jax.jit(run)(jax.random.key(2), x, ws[i])
        np.testing.assert_allclose(np.asarray(rw.pretrain_loss[i]), np.asarray(alone.pretrain_loss), rtol=1e-5)
        assert np.mean(np.asarray(rw.first_labels[i]) == np.asarray(alone.first_labels)) > 0.95


def test_config_is_validated_before_any_work():
    with pytest.raises(ValueError, match="tol"):
        sk.RunConfig(tol=1.5)
    with pytest.raises(ValueError, match="max_iters"):
        sk.RunConfig(max_iters=0)
    with pytest.raises(ValueError, match="arch"):
        sk.RunConfig(arch="resnet")
    with pytest.raises(ValueError, match="image_shape"):
        sk.make_run(sk.RunConfig(**SMALL))(jax.random.key(0), np.zeros((20, 16, 16, 1), np.float32), None)
    assert sk.RunConfig().to_dict()["image_shape"] == [28, 28, 1]
    with pytest.raises(ValueError, match="precision"):
        sk.RunConfig(precision="fp16")
    with pytest.raises(ValueError, match="conv_impl"):
        sk.RunConfig(conv_impl="cudnn")
    # the pretraining cache tells kernels and precision apart, and keys made before they existed stay valid
    from sdekc_jax.run import model_spec
    base = model_spec(sk.RunConfig())
    assert "precision" not in base and "conv_impl" not in base
    assert model_spec(sk.RunConfig(precision="bf16"))["precision"] == "bf16"
    assert model_spec(sk.RunConfig(conv_impl="lax")) != base
    assert "adam_eps" not in base and model_spec(sk.RunConfig(adam_eps=1e-7))["adam_eps"] == 1e-7
    assert model_spec(sk.RunConfig(cluster_batch_order="stored", cluster_loss="sum")) == base  # clustering only
    assert sk.config.PAPER_PROTOCOL == {"pretrain_epochs": 200, "batch_size": 256, "learning_rate": 1e-3,
                                        "steps_per_iter": 40, "max_iters": 1000, "tol": 0.001}


USPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "usps"


@pytest.mark.slow
def test_the_issue_example_as_written_on_usps():
    if not USPS.exists():
        pytest.skip("../shared/data/usps is absent")
    x, y = sk.load_dataset("usps", str(USPS))
    x = x[:1024]
    cfg = sk.RunConfig(n_clusters=10, image_shape=(16, 16, 1), pretrain_epochs=2, max_iters=3)
    p = sk.init_params(jax.random.key(0), cfg)
    z, feats = sk.encode(p["encoder"], x[:8])
    x_hat = sk.decode(p["decoder"], z, feats, jnp.array([0.001, 0.999]))
    assert z.shape == (8, 10) and x_hat.shape == (8, 16, 16, 1)
    run = sk.make_run(cfg)
    w = jnp.array([0.001, 0.999])
    # (jax.jit(run) alone is the jitted side of test_driver_gives_the_labels_of_the_jitted_run)
    rs = jax.jit(jax.vmap(run, in_axes=(0, None, None)))(jax.random.split(jax.random.key(0), 3), x, w)
    assert rs.labels.shape == (3, 1024) and rs.n_iter.shape == (3,)
    assert np.all(np.isfinite(np.asarray(rs.pretrain_loss)))
    accs = [sk.evaluate(y[:1024], np.asarray(rs.labels[i]))["acc"] for i in range(3)]
    assert min(accs) > 0.15  # two epochs: far from converged, but clustering, not collapsed
