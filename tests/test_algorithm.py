"""Algorithm 1 (the clustering phase) on a tiny linear encoder: stop rule, cap, greedy step, determinism.

The encoder is the dense autoencoder with no hidden layers (``arch="dense", hidden=()``: one
linear map ``x @ W + b``) and no pretraining, so these tests run the real composition of
:func:`sdekc_jax.run.make_steps` (``dekm_refresh`` + ``dekm_loss`` in the shared loop) through
the host driver :func:`sdekc_jax.run.fit`, on blobs where the right answer is known."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from sdekc_jax.config import RunConfig
from sdekc_jax.metrics import cluster_acc, count_changed
from sdekc_jax.models import encode, init_params
from sdekc_jax.run import fit, split_key
from sdekc_jax.transform import orthogonal_transform, within_cluster_scatter

K = 4
LINEAR = dict(n_clusters=K, image_shape=(1, 8, 1), arch="dense", hidden=(), embedding_dim=3, pretrain_epochs=0,
              batch_size=64)


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=400, n_features=8, centers=K, cluster_std=1.5, random_state=0)
    x = (x - x.mean(0)) / x.std(0)
    return np.asarray(x, np.float32).reshape(400, 1, 8, 1), y


def config(**kw) -> RunConfig:
    return RunConfig(**{**LINEAR, **kw})


def run(blobs, chunk_size=10, **kw):
    cfg = config(**kw)
    return cfg, fit(cfg, blobs[0], jax.random.key(0), None, chunk_size=chunk_size, verbose=False).result


def test_the_encoder_is_linear(blobs):
    cfg = config()
    p = init_params(split_key(jax.random.key(0))[0], cfg)["encoder"]
    assert set(p) == {"embed"}
    x = blobs[0]
    np.testing.assert_allclose(encode(p, x)[0], x.reshape(400, 8) @ p["embed"]["kernel"] + p["embed"]["bias"],
                               rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def stopped(blobs):
    """A run that stops by the tolerance (every refresh's labels recorded)."""
    return run(blobs, max_iters=50, tol=0.01, record_labels=True)[1]


@pytest.fixture(scope="module")
def capped(blobs):
    """A run that never stops early (tol 0), capped at 5 iterations, in chunks of 2."""
    return run(blobs, max_iters=5, tol=0.0, chunk_size=2)[1]


def test_stops_when_few_labels_change(blobs, stopped):
    res, n = stopped, blobs[0].shape[0]
    it = int(res.n_iter)
    assert bool(res.converged) and it < 50
    h = res.history["n_changed"]
    assert h.shape == (50,) and np.all(h[it:] == -1)  # fixed-size history: -1 where no iteration ran
    h = h[:it]
    assert h[-1] < 0.01 * n  # the stopping iteration
    assert np.all(h[1:-1] >= 0.01 * n)  # no earlier iteration met the criterion
    assert h[0] == n  # the first iteration has no previous labels
    assert cluster_acc(blobs[1], res.labels) > 0.9
    assert np.all(np.isnan(res.history["inertia"][it:])) and np.all(np.isfinite(res.history["inertia"][:it]))


def test_recorded_labels_of_a_run_stopped_early_are_blank_after_the_stop(stopped):
    res = stopped
    it = int(res.n_iter)
    lab = res.history["labels"]
    assert lab.shape == (50, 400) and np.all(lab[it:] == -1) and np.all(lab[:it] >= 0)
    np.testing.assert_array_equal(lab[it - 1], res.labels)
    np.testing.assert_array_equal(lab[0], res.first_labels)


def test_max_iters_caps_the_loop_across_chunks(capped):
    res = capped
    assert int(res.n_iter) == 5 and not bool(res.converged)
    assert all(v.shape[0] == 5 for v in res.history.values())
    assert np.all(res.history["n_changed"] >= 0)
    assert np.all(np.isfinite(res.history["loss"][:-1])) and np.isnan(res.history["loss"][-1])


def test_greedy_steps_shrink_the_largest_scatter(blobs):
    """Iteration 1's steps pull each point's last transformed coordinate to its centre's: the K-means
    loss and the largest eigenvalue of S_w fall by iteration 2 (a wrong sign would raise them)."""
    x = blobs[0]
    cfg, res = run(blobs, max_iters=2, tol=0.0, steps_per_iter=20, cluster_learning_rate=1e-2)
    inertia = res.history["inertia"]
    assert inertia[1] < 0.8 * inertia[0], inertia
    z0 = encode(init_params(split_key(jax.random.key(0))[0], cfg)["encoder"], x)[0]  # no pretraining: the start
    z1 = jnp.asarray(res.embedding)
    np.testing.assert_allclose(z1, encode(res.params["encoder"], x)[0], rtol=1e-5, atol=1e-5)
    labels = np.asarray(res.labels)
    means = lambda z: jnp.stack([jnp.mean(z[labels == c], axis=0) for c in range(K)])
    top = lambda z: float(orthogonal_transform(within_cluster_scatter(z, labels, means(z)))[1][-1])
    # with iteration 2's labels for both: the largest within-cluster variance direction shrank
    assert top(z1) < 0.8 * top(z0)
    assert np.isnan(res.history["loss"][-1])  # the final iteration takes no steps


def test_same_seed_same_result_whatever_the_chunks(blobs, capped):
    """Chunks end at multiples of chunk_size and every draw is fold_in(key, iteration): a run in
    one chunk is the run in chunks of 2, bit for bit."""
    _, b = run(blobs, max_iters=5, tol=0.0, chunk_size=10)
    np.testing.assert_array_equal(capped.labels, b.labels)
    for k in b.history:
        np.testing.assert_array_equal(capped.history[k], b.history[k])
    for u, w in zip(jax.tree.leaves(capped.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(u, w)


def test_recorded_labels_are_each_iterations_labels(blobs, capped):
    """record_labels keeps every refresh's labelling and changes nothing else."""
    a = capped
    _, b = run(blobs, max_iters=5, tol=0.0, chunk_size=2, record_labels=True)
    lab = b.history["labels"]
    assert lab.shape == (5, blobs[0].shape[0]) and lab.dtype == np.int32
    np.testing.assert_array_equal(lab[-1], b.labels)
    np.testing.assert_array_equal(b.labels, a.labels)
    for u, w in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(u, w)
    # the recorded n_changed is the Hungarian-matched change between consecutive recorded labellings
    assert [count_changed(lab[i - 1], lab[i], K) for i in range(1, 5)] == list(b.history["n_changed"][1:])
    assert "labels" not in a.history
    # the first refresh's labels are in the result with or without the record
    np.testing.assert_array_equal(a.first_labels, lab[0])
    np.testing.assert_array_equal(b.first_labels, lab[0])


def test_bad_arguments(blobs):
    with pytest.raises(ValueError, match="max_iters"):
        config(max_iters=0)
    with pytest.raises(ValueError, match="tol"):
        config(tol=1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        run(blobs, max_iters=2, chunk_size=0)


def test_dekm_reference_step_settings(blobs):
    """DEKM.py's step as settings: the stored batch order walks 0..n-1, and the loss summed over
    the batch under Adam is the batch mean under Adam with epsilon divided by the batch size
    (Adam's update is invariant to a constant loss factor up to epsilon; 400 = 5 full batches)."""
    from sdekc_jax.algorithm import dekm_loss
    from sdekc_jax.loop import init_loop_state
    from sdekc_jax.pretrain import adam

    idx, mask = init_loop_state({}, adam(1e-3), jnp.zeros(10, jnp.int32), {}, jax.random.key(0), n=10,
                                batch_size=4, max_iters=2, shuffle=False)["plan"]
    np.testing.assert_array_equal(np.asarray(idx).ravel()[:10], np.arange(10))
    np.testing.assert_array_equal(np.asarray(mask).ravel(), [1] * 10 + [0] * 2)
    # the two reductions, by hand, on a batch with one masked row
    enc = lambda p, xb: xb @ p
    p, xb, t = jnp.eye(2), jnp.array([[1.0, 2.0], [3.0, 5.0], [7.0, 7.0]]), jnp.zeros((3, 2))
    m = jnp.array([1.0, 1.0, 0.0])
    assert float(dekm_loss(enc, "sum")(p, xb, t, m, jnp.eye(2))) == pytest.approx(2.5 + 17.0)
    assert float(dekm_loss(enc, "mean")(p, xb, t, m, jnp.eye(2))) == pytest.approx((2.5 + 17.0) / 2)

    kw = dict(max_iters=3, tol=0.0, batch_size=80, cluster_learning_rate=1e-2)
    _, a = run(blobs, cluster_loss="sum", adam_eps=1e-6, cluster_batch_order="stored", **kw)
    _, b = run(blobs, cluster_loss="mean", adam_eps=1e-6 / 80, cluster_batch_order="stored", **kw)
    np.testing.assert_array_equal(a.labels, b.labels)
    for u, w in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(u, w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.history["loss"][:2], 80 * b.history["loss"][:2], rtol=1e-4)
    with pytest.raises(ValueError, match="cluster_loss"):
        config(cluster_loss="sum", clustering="dec")
    with pytest.raises(ValueError, match="cluster_batch_order"):
        config(cluster_batch_order="sorted")
    with pytest.raises(ValueError, match="adam_eps"):
        config(adam_eps=0.0)
