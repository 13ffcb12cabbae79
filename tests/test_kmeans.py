"""Tests of the JAX K-means against scikit-learn and of its invariants."""
from __future__ import annotations

import importlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from sdekc_jax.kmeans import assign, kmeans

km = importlib.import_module("sdekc_jax.kmeans")  # the module (the package exports a function of that name)

USPS = Path(__file__).parents[1].parent / "shared/data/usps/USPS.h5"
K = 6


@pytest.fixture(scope="module")
def blobs():
    x, _ = make_blobs(n_samples=2000, n_features=5, centers=K, cluster_std=1.5, random_state=0)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def sk_blobs(blobs):
    return KMeans(n_clusters=K, n_init=10, random_state=0).fit(blobs)


@pytest.fixture(scope="module")
def ours_blobs(blobs):
    return kmeans(jax.random.PRNGKey(0), blobs, K, n_init=10)


def _np_inertia(x, labels, centers):
    x, centers = np.asarray(x, np.float64), np.asarray(centers, np.float64)
    return float(np.sum((x - centers[np.asarray(labels)]) ** 2))


def test_blobs_match_sklearn(blobs, sk_blobs, ours_blobs):
    res = ours_blobs
    ratio = float(res.inertia) / sk_blobs.inertia_
    print(f"blobs inertia ratio ours/sklearn = {ratio:.6f}")
    assert ratio <= 1.01
    assert adjusted_rand_score(sk_blobs.labels_, np.asarray(res.labels)) > 0.99
    assert res.labels.shape == (2000,) and res.labels.dtype == jnp.int32
    assert res.centers.shape == (K, 5) and res.centers.dtype == jnp.float32
    assert res.inertia.shape == () and res.n_iter.dtype == jnp.int32
    assert bool(res.converged) and 1 <= int(res.n_iter) < 300


def test_invariants(blobs, ours_blobs):
    res = ours_blobs
    np.testing.assert_allclose(float(res.inertia), _np_inertia(blobs, res.labels, res.centers), rtol=1e-4)
    c = np.asarray(res.centers, np.float64)
    d = ((blobs[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.asarray(res.labels), d.argmin(1))
    labels, min_sq = assign(jnp.asarray(blobs), res.centers)
    np.testing.assert_array_equal(np.asarray(labels), np.asarray(res.labels))
    np.testing.assert_allclose(np.asarray(min_sq), d.min(1), rtol=1e-4, atol=1e-4)


def test_warm_start_from_sklearn(blobs, sk_blobs):
    init = sk_blobs.cluster_centers_.astype(np.float32)
    res = kmeans(jax.random.PRNGKey(1), blobs, K, n_init=1, init=init)
    assert int(res.n_iter) <= 2 and bool(res.converged)
    np.testing.assert_allclose(float(res.inertia), sk_blobs.inertia_, rtol=1e-4)
    assert adjusted_rand_score(sk_blobs.labels_, np.asarray(res.labels)) > 0.999


@pytest.mark.slow
@pytest.mark.skipif(not USPS.exists(), reason=f"USPS data not found at {USPS}")
def test_usps_pca_matches_sklearn():
    h5py = pytest.importorskip("h5py")
    from sklearn.decomposition import PCA

    with h5py.File(USPS, "r") as f:
        x = np.asarray(f["train"]["data"][:3000], np.float32)
    z = PCA(n_components=10, random_state=0).fit_transform(x).astype(np.float32)
    sk = KMeans(n_clusters=10, n_init=10, random_state=0).fit(z)
    res = kmeans(jax.random.PRNGKey(0), z, 10, n_init=10)
    ratio = float(res.inertia) / sk.inertia_
    print(f"USPS-PCA10 inertia ratio ours/sklearn = {ratio:.6f}")
    assert ratio <= 1.01
    np.testing.assert_allclose(float(res.inertia), _np_inertia(z, res.labels, res.centers), rtol=1e-4)


def test_empty_clusters_are_reseeded():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(8, 1, (100, 2))]).astype(np.float32)
    # Two centres far from all points: both would stay empty without re-seeding.
    init = np.array([[0, 0], [8, 8], [1e3, 1e3], [-1e3, 1e3]], np.float32)
    res = kmeans(jax.random.PRNGKey(0), x, 4, n_init=1, init=init)
    counts = np.bincount(np.asarray(res.labels), minlength=4)
    assert (counts > 0).all(), counts
    assert np.abs(np.asarray(res.centers)).max() < 50
    np.testing.assert_allclose(float(res.inertia), _np_inertia(x, res.labels, res.centers), rtol=1e-4)


def test_determinism_jit_and_vmap(blobs):
    x = jnp.asarray(blobs[:500])
    key = jax.random.PRNGKey(3)
    a = kmeans(key, x, 4, n_init=2)
    b = kmeans(key, x, 4, n_init=2)
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))

    @jax.jit
    def outer(key, x):
        return kmeans(key, x, 4, n_init=2).inertia

    np.testing.assert_allclose(float(outer(key, x)), float(a.inertia), rtol=1e-6)

    keys = jax.random.split(key, 3)
    inertias = jax.vmap(lambda k: kmeans(k, x, 4, n_init=2).inertia)(keys)
    assert inertias.shape == (3,)
    for k, v in zip(keys, np.asarray(inertias)):
        np.testing.assert_allclose(v, float(kmeans(k, x, 4, n_init=2).inertia), rtol=1e-5)


def test_inside_while_loop(blobs):
    x = jnp.asarray(blobs[:300])

    def body(carry):
        i, key, _ = carry
        key, sub = jax.random.split(key)
        return i + 1, key, kmeans(sub, x, 3, n_init=1).inertia

    _, _, inertia = jax.jit(lambda k: jax.lax.while_loop(lambda c: c[0] < 2, body, (0, k, jnp.float32(0))))(
        jax.random.PRNGKey(0))
    assert np.isfinite(float(inertia)) and float(inertia) > 0


def test_input_validation():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="2-D"):
        kmeans(key, jnp.zeros(10), 2)
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans(key, jnp.zeros((3, 2)), 5)
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans(key, jnp.zeros((3, 2)), 0)
    with pytest.raises(ValueError, match="n_init"):
        kmeans(key, jnp.zeros((3, 2)), 2, n_init=0)
    with pytest.raises(ValueError, match="init"):
        kmeans(key, jnp.zeros((3, 2)), 2, init=jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_clusters"):  # shape checks also fire at trace time
        jax.jit(lambda x: kmeans(key, x, 5).inertia)(jnp.zeros((3, 2)))


def _int_data(n=600, d=4, k=5, seed=0):
    """Integer-valued points: every squared norm and dot product is exact in float32, so results
    cannot depend on summation order (e.g. on how many restarts a matmul batches)."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(-20, 21, (k, d))
    return (centres[rng.integers(0, k, n)] + rng.integers(-4, 5, (n, d))).astype(np.float32)


def test_batched_seeding_equals_one_at_a_time():
    from jax import lax

    x = jnp.asarray(_int_data())
    n = x.shape[0]
    k, r = 5, 6
    bits = jax.random.bits(jax.random.PRNGKey(0), (r, 1 + (k - 1) * km._n_trials(k)), jnp.uint32)
    nb, m = km._block_shape(n)
    xtp = jnp.pad(x.T, ((0, 0), (0, nb * m - n)))
    xtp_sq = jnp.sum(xtp * xtp, axis=0)
    one = jax.jit(lambda b: km._kmeans_plusplus(b, x, xtp, xtp_sq, k))
    alone = np.stack([np.asarray(one(b)) for b in bits])
    for group in (2, 3, 6):
        batched = jax.jit(lambda bits, g=group: lax.map(lambda b: km._kmeans_plusplus(b, x, xtp, xtp_sq, k), bits,
                                                        batch_size=g))(bits)
        np.testing.assert_array_equal(np.asarray(batched), alone)
    # Seeds are data points, pairwise distinct (k-means++ never re-picks a chosen point).
    xs = {tuple(p) for p in np.asarray(x)}
    for c in alone:
        assert all(tuple(p) in xs for p in c) and len({tuple(p) for p in c}) == k


def test_restarts_equal_best_single_run():
    """n_init restarts = the best of the same seeds run one at a time as warm starts."""
    x = jnp.asarray(_int_data(seed=1))
    n = x.shape[0]
    k, r = 5, 4
    key = jax.random.PRNGKey(7)
    res = kmeans(key, x, k, n_init=r)
    # The seeds kmeans draws internally (one batch of random bits for all restarts).
    bits = jax.random.bits(key, (r, 1 + (k - 1) * km._n_trials(k)), jnp.uint32)
    nb, m = km._block_shape(n)
    xtp = jnp.pad(x.T, ((0, 0), (0, nb * m - n)))
    seed = jax.jit(lambda b: km._kmeans_plusplus(b, x, xtp, jnp.sum(xtp * xtp, axis=0), k))
    singles = [kmeans(key, x, k, n_init=1, init=seed(b)) for b in bits]
    best = singles[int(np.argmin([float(s.inertia) for s in singles]))]
    np.testing.assert_array_equal(np.asarray(res.labels), np.asarray(best.labels))
    np.testing.assert_array_equal(np.asarray(res.centers), np.asarray(best.centers))
    assert float(res.inertia) == float(best.inertia) and int(res.n_iter) == int(best.n_iter)


def test_a_varying_number_of_restarts():
    """n_active runs the first restarts of the cap: all of them = the static restarts; fewer = the
    best of those first seeds run one at a time; one compiled program for every count."""
    x = jnp.asarray(_int_data(seed=1))
    n, k, cap = x.shape[0], 5, 6
    key = jax.random.PRNGKey(3)
    full = kmeans(key, x, k, n_init=cap)
    dyn = jax.jit(lambda a: kmeans(key, x, k, n_init=cap, n_active=a))
    for a in (cap, cap + 5):  # clipped to the cap
        r = dyn(jnp.int32(a))
        np.testing.assert_array_equal(np.asarray(r.labels), np.asarray(full.labels))
        np.testing.assert_array_equal(np.asarray(r.centers), np.asarray(full.centers))
        assert int(r.n_iter) == int(full.n_iter)
    bits = jax.random.bits(key, (cap, 1 + (k - 1) * km._n_trials(k)), jnp.uint32)
    nb, m = km._block_shape(n)
    xtp = jnp.pad(x.T, ((0, 0), (0, nb * m - n)))
    seed = jax.jit(lambda b: km._kmeans_plusplus(b, x, xtp, jnp.sum(xtp * xtp, axis=0), k))
    singles = [kmeans(key, x, k, n_init=1, init=seed(b)) for b in bits]
    for a in (0, 1, 2, 4):
        best = singles[int(np.argmin([float(s.inertia) for s in singles[:max(a, 1)]]))]
        r = dyn(jnp.int32(a))
        np.testing.assert_array_equal(np.asarray(r.labels), np.asarray(best.labels))
        assert float(r.inertia) == float(best.inertia)
    batched = jax.vmap(dyn)(jnp.array([1, 4], jnp.int32))  # per-run counts under vmap
    np.testing.assert_array_equal(np.asarray(batched.labels[1]), np.asarray(dyn(jnp.int32(4)).labels))
    with pytest.raises(ValueError, match="n_active"):
        kmeans(key, x, k, n_init=cap, n_active=2, init=full.centers)


def test_assignment_paths_agree():
    """Fused (k*d small) and matmul assignment, incremental scatter and one-hot cluster sums agree."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(500, 6)).astype(np.float32))
    c = jnp.asarray(rng.normal(size=(7, 6)).astype(np.float32))
    d64 = ((np.asarray(x, np.float64)[:, None] - np.asarray(c, np.float64)[None]) ** 2).sum(-1)
    fused = jax.jit(km._labels)(x.T, c)
    old = km._FUSED_MAX
    try:
        km._FUSED_MAX = 0
        matmul = jax.jit(km._labels)(x.T, c)
        labels_mm, min_mm = jax.jit(km._assign)(x, x.T, c)
    finally:
        km._FUSED_MAX = old
    labels, min_sq = assign(x, c)
    labels_acc, min_acc = assign(x, c, scoring="matmul")  # the accelerators' form, forced on CPU
    for lab in (fused, matmul, labels, labels_mm, labels_acc, jax.jit(km._labels_matmul)(x.T, c)):
        np.testing.assert_array_equal(np.asarray(lab), d64.argmin(1))
    for m in (min_sq, min_mm, min_acc):
        np.testing.assert_allclose(np.asarray(m), d64.min(1), rtol=1e-5, atol=1e-5)

    # Cluster sums: the CPU's incremental scatter and the one-hot matmul, over a few label changes.
    xw = jnp.concatenate([x, jnp.ones((500, 1))], axis=1)
    upd_s, upd_o = jax.jit(km._update_scatter, static_argnums=4), jax.jit(km._update_onehot, static_argnums=4)
    old = jnp.full((500,), 7, jnp.int32)  # "no cluster yet"
    sc_s = sc_o = jnp.zeros((7, 7))
    for new in (labels, labels.at[:40].set(3), labels.at[:40].set(3), labels):
        (sc_s, same_s), (sc_o, same_o) = upd_s(xw, new, old, sc_s, 7), upd_o(xw, new, old, sc_o, 7)
        expected = np.stack([np.asarray(xw)[np.asarray(new) == j].sum(0) for j in range(7)])
        np.testing.assert_allclose(np.asarray(sc_s), expected, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(np.asarray(sc_o), expected, rtol=1e-5, atol=1e-4)
        assert bool(same_s) == bool(same_o) == bool(np.array_equal(np.asarray(new), np.asarray(old)))
        old = new


def test_scorings_give_the_same_clustering(blobs):
    """The CPU (unrolled) and accelerator (matmul) assignment forms, forced on this CPU, give the
    same K-means, with and without a varying number of restarts; "auto" is the CPU form here."""
    key = jax.random.PRNGKey(0)
    res = {s: kmeans(key, blobs, K, n_init=3, scoring=s) for s in ("auto", "unrolled", "matmul")}
    for s in ("unrolled", "matmul"):
        np.testing.assert_array_equal(np.asarray(res[s].labels), np.asarray(res["auto"].labels))
        np.testing.assert_allclose(float(res[s].inertia), float(res["auto"].inertia), rtol=1e-5)
    dyn = {s: kmeans(key, blobs, K, n_init=6, n_active=3, scoring=s) for s in ("unrolled", "matmul")}
    np.testing.assert_array_equal(np.asarray(dyn["unrolled"].labels), np.asarray(dyn["matmul"].labels))
    with pytest.raises(ValueError, match="scoring"):
        kmeans(key, blobs, K, scoring="fast")


def test_large_k_times_d_matches_sklearn():
    """k * d above the fused-assignment limit (matmul path) and a single cluster."""
    x, _ = make_blobs(n_samples=800, n_features=20, centers=15, cluster_std=1.0, random_state=1)
    x = x.astype(np.float32)
    sk = KMeans(n_clusters=15, n_init=3, random_state=0).fit(x)
    res = kmeans(jax.random.PRNGKey(0), x, 15, n_init=3)
    assert float(res.inertia) / sk.inertia_ <= 1.01
    np.testing.assert_allclose(float(res.inertia), _np_inertia(x, res.labels, res.centers), rtol=1e-4)
    one = kmeans(jax.random.PRNGKey(0), x[:50, :3], 1, n_init=2)
    np.testing.assert_allclose(np.asarray(one.centers[0]), x[:50, :3].mean(0), rtol=1e-5, atol=1e-5)
    assert (np.asarray(one.labels) == 0).all() and bool(one.converged)


def test_strict_convergence_is_a_fixed_point(blobs):
    """With tol < 0 only strict convergence (labels unchanged) can stop Lloyd: the result is then
    a fixed point, each centre the mean of its points."""
    res = kmeans(jax.random.PRNGKey(5), blobs, K, n_init=2, tol=-1.0)
    assert bool(res.converged) and int(res.n_iter) < 300
    labels = np.asarray(res.labels)
    means = np.stack([blobs[labels == j].mean(0) for j in range(K)])
    np.testing.assert_allclose(np.asarray(res.centers), means, rtol=1e-5, atol=1e-5)
