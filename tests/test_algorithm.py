"""Algorithm 1 (the clustering phase) on a tiny linear encoder: stop rule, cap, greedy step, determinism."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from sdekc_jax.algorithm import cluster
from sdekc_jax.metrics import cluster_acc
from sdekc_jax.transform import orthogonal_transform, within_cluster_scatter

K = 4


def linear_embed(p, x):
    return x @ p["w"] + p["b"]


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=400, n_features=8, centers=K, cluster_std=1.5, random_state=0)
    x = (x - x.mean(0)) / x.std(0)
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(8, 3)) / np.sqrt(8), jnp.float32), "b": jnp.zeros(3)}
    return jnp.asarray(x, jnp.float32), y, params


def run(blobs, **kw):
    x, _, params = blobs
    kw.setdefault("batch_size", 64)
    kw.setdefault("verbose", False)
    return cluster(linear_embed, params, x, K, jax.random.key(0), **kw)


def test_stops_when_few_labels_change(blobs):
    res = run(blobs, max_iters=50, tol=0.01)
    n = blobs[0].shape[0]
    h = res.history["n_changed"]
    assert res.converged and res.n_iter < 50
    assert len(h) == res.n_iter
    assert h[-1] < 0.01 * n  # the stopping iteration
    assert np.all(h[1:-1] >= 0.01 * n)  # no earlier iteration met the criterion
    assert h[0] == n  # the first iteration has no previous labels
    assert cluster_acc(blobs[1], res.labels) > 0.9


def test_max_iters_caps_the_loop_across_chunks(blobs):
    res = run(blobs, max_iters=5, tol=0.0, chunk_size=2)  # tol=0 never stops early
    assert res.n_iter == 5 and not res.converged
    assert all(len(v) == 5 for v in res.history.values())
    assert np.all(np.isfinite(res.history["loss"][:-1])) and np.isnan(res.history["loss"][-1])


def test_greedy_steps_shrink_the_largest_scatter(blobs):
    """Iteration 1's steps pull each point's last transformed coordinate to its centre's: the K-means
    loss and the largest eigenvalue of S_w fall by iteration 2 (a wrong sign would raise them)."""
    x, _, params = blobs
    res = run(blobs, max_iters=2, tol=0.0, steps_per_iter=20, learning_rate=1e-2)
    inertia = res.history["inertia"]
    assert inertia[1] < 0.8 * inertia[0], inertia
    z0, z1 = linear_embed(params, x), linear_embed(res.params, x)
    means = lambda z: jnp.stack([jnp.mean(z[res.labels == c], axis=0) for c in range(K)])
    top = lambda z: float(orthogonal_transform(within_cluster_scatter(z, res.labels, means(z)))[1][-1])
    # with iteration 2's labels for both: the largest within-cluster variance direction shrank
    assert top(z1) < 0.8 * top(z0)
    assert np.isnan(res.history["loss"][-1])  # the final iteration takes no steps


def test_same_seed_same_result(blobs):
    a = run(blobs, max_iters=4, tol=0.0)
    b = run(blobs, max_iters=4, tol=0.0)
    np.testing.assert_array_equal(a.labels, b.labels)
    for u, w in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(u, w)


def test_recorded_labels_are_each_iterations_labels(blobs):
    """record_labels keeps every refresh's labelling and changes nothing else."""
    from sdekc_jax.metrics import count_changed
    a = run(blobs, max_iters=5, tol=0.0, chunk_size=2)
    b = run(blobs, max_iters=5, tol=0.0, chunk_size=2, record_labels=True)
    lab = b.history["labels"]
    assert lab.shape == (5, blobs[0].shape[0]) and lab.dtype == np.int32
    np.testing.assert_array_equal(lab[-1], b.labels)
    np.testing.assert_array_equal(b.labels, a.labels)
    for u, w in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(u, w)
    # the recorded n_changed is the Hungarian-matched change between consecutive recorded labellings
    assert [count_changed(lab[i - 1], lab[i], K) for i in range(1, 5)] == list(b.history["n_changed"][1:])
    assert "labels" not in a.history
    c = run(blobs, max_iters=5, tol=0.0, chunk_size=2, record_labels="first")  # only iteration 0's
    np.testing.assert_array_equal(c.history["labels"], lab[:1])
    np.testing.assert_array_equal(c.labels, b.labels)
    with pytest.raises(ValueError, match="record_labels"):
        run(blobs, max_iters=2, record_labels="last")


def test_bad_arguments(blobs):
    with pytest.raises(ValueError):
        run(blobs, max_iters=0)
