"""Orthogonal transform (Eqs. 7-9) and greedy target (Eq. 14) invariants."""
import jax.numpy as jnp
import numpy as np
from sklearn.cluster import KMeans

from sdekc_jax.transform import apply_transform, greedy_target, orthogonal_transform, within_cluster_scatter


def _clustered(n=300, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d)) * rng.uniform(0.2, 3.0, size=d) + rng.normal(size=(k, d))[rng.integers(0, k, n)] * 4
    km = KMeans(k, n_init=4, random_state=0).fit(z)
    return z.astype(np.float32), km.labels_.astype(np.int32), km.cluster_centers_.astype(np.float32), km.inertia_


def test_scatter_matches_hand_computation():
    z, labels, centers, _ = _clustered()
    expected = sum(np.outer(z[i] - centers[labels[i]], z[i] - centers[labels[i]]) for i in range(len(z)))
    np.testing.assert_allclose(within_cluster_scatter(z, labels, centers), expected, rtol=1e-4, atol=1e-3)


def test_v_orthonormal_diagonalises_and_trace_is_kmeans_loss():
    z, labels, centers, inertia = _clustered()
    s = within_cluster_scatter(z, labels, centers)
    v, evals = orthogonal_transform(s)
    d = z.shape[1]
    np.testing.assert_allclose(v @ v.T, np.eye(d), atol=1e-5)
    np.testing.assert_allclose(v.T @ v, np.eye(d), atol=1e-5)
    vsv = np.asarray(v @ s @ v.T)
    np.testing.assert_allclose(vsv, np.diag(evals), atol=1e-3 * float(evals.max()))
    assert np.all(np.diff(np.asarray(evals)) >= 0), "eigenvalues must be ascending"
    np.testing.assert_allclose(np.trace(vsv), inertia, rtol=1e-4)  # Eq. 9: Trace(V S_w V^T) = K-means loss
    # rows of V are eigenvectors: S v_i = lambda_i v_i
    for i in range(d):
        np.testing.assert_allclose(s @ v[i], evals[i] * v[i], atol=1e-3 * float(evals.max()))


def test_transform_matches_dekm_reference_convention():
    """DEKM: H_vt = H @ V_np with V_np's columns the eigenvectors sorted ascending."""
    z, labels, centers, _ = _clustered(seed=1)
    s = np.asarray(within_cluster_scatter(z, labels, centers), np.float64)
    e_vals, e_vecs = np.linalg.eig(s)
    v_np = e_vecs[:, np.argsort(e_vals)]
    v, _ = orthogonal_transform(jnp.asarray(s, jnp.float32))
    y = np.asarray(apply_transform(v, z))
    y_ref = z @ v_np
    signs = np.sign(np.sum(y * y_ref, axis=0))  # eigenvectors are defined up to sign
    np.testing.assert_allclose(y * signs, y_ref, rtol=1e-3, atol=1e-3)


def test_greedy_target_changes_only_last_coordinate():
    z, labels, centers, _ = _clustered()
    v, _ = orthogonal_transform(within_cluster_scatter(z, labels, centers))
    y = apply_transform(v, z)
    cy = apply_transform(v, centers)
    t = np.asarray(greedy_target(y, labels, cy))
    np.testing.assert_array_equal(t[:, :-1], np.asarray(y)[:, :-1])
    np.testing.assert_allclose(t[:, -1], np.asarray(cy)[labels, -1])
    # the largest-scatter direction is the last one
    spread = np.var(np.asarray(y) - np.asarray(cy)[labels], axis=0)
    assert np.argmax(spread) == z.shape[1] - 1


def test_singular_scatter_still_orthonormal():
    """Duplicated points in a 1-D subspace: S_w has rank 1, V must still be orthonormal."""
    base = np.repeat(np.array([[1.0, 2.0, 0.0, 0.0]], np.float32), 50, axis=0)
    z = np.concatenate([base, base * 1.5, base * 3.0, base * 3.5])
    labels = np.repeat([0, 0, 1, 1], 50).astype(np.int32)
    centers = np.stack([z[labels == c].mean(0) for c in range(2)])
    v, evals = orthogonal_transform(within_cluster_scatter(z, labels, centers))
    assert np.all(np.isfinite(np.asarray(v)))
    np.testing.assert_allclose(v @ v.T, np.eye(4), atol=1e-5)
    assert np.sum(np.asarray(evals) > 1e-3) == 1
    last = np.asarray(v)[-1]
    np.testing.assert_allclose(np.abs(last), np.array([1, 2, 0, 0]) / np.sqrt(5), atol=1e-5)
