"""DEC's pieces against hand-computed values, the gradient of KL(P||Q), and the DEC loop on blobs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from sdekc_jax.dec import cluster_dec, dec_loss, kl_divergence, soft_assignment, target_distribution
from sdekc_jax.metrics import cluster_acc

Z = jnp.array([[0.0, 0.0], [1.0, 0.0]])
MU = jnp.array([[0.0, 0.0], [2.0, 0.0]])


def test_student_t_by_hand():
    # squared distances: point 0 -> (0, 4), point 1 -> (1, 1)
    np.testing.assert_allclose(soft_assignment(Z, MU), [[5 / 6, 1 / 6], [0.5, 0.5]], rtol=1e-6)
    # alpha = 2: (1 + d2 / 2) ** -1.5, normalised
    a = np.array([1.0, 3.0 ** -1.5])
    np.testing.assert_allclose(soft_assignment(Z, MU, alpha=2.0), [a / a.sum(), [0.5, 0.5]], rtol=1e-6)


def test_target_distribution_by_hand():
    q = soft_assignment(Z, MU)
    # f = column sums (4/3, 2/3); rows of q^2 / f renormalised
    np.testing.assert_allclose(target_distribution(q), [[25 / 27, 2 / 27], [1 / 3, 2 / 3]], rtol=1e-6)
    np.testing.assert_allclose(jnp.sum(target_distribution(q), axis=1), 1.0, rtol=1e-6)


def test_kl_by_hand():
    p = jnp.array([[0.5, 0.5], [1.0, 0.0]])
    q = jnp.array([[0.25, 0.75], [0.5, 0.5]])
    expected = [0.5 * np.log(2) + 0.5 * np.log(2 / 3), np.log(2) + 1e-7 * np.log(1e-7 / 0.5)]  # Keras clips p at 1e-7
    np.testing.assert_allclose(kl_divergence(p, q), expected, rtol=1e-5)


def test_kl_gradient_is_decs_and_pulls_points_to_their_soft_centres():
    rng = np.random.default_rng(0)
    mu = jnp.asarray(rng.normal(size=(4, 3)) * 3, jnp.float32)
    z = jnp.asarray(np.asarray(mu)[rng.integers(0, 4, 60)] + rng.normal(size=(60, 3)), jnp.float32)
    p = target_distribution(soft_assignment(z, mu))
    grad = jax.grad(lambda z: jnp.sum(kl_divergence(p, soft_assignment(z, mu))))(z)
    # DEC's Eq. 4 (alpha = 1): dL/dz_i = 2 sum_j (1 + ||z_i - mu_j||^2)^-1 (p_ij - q_ij)(z_i - mu_j)
    q = soft_assignment(z, mu)
    d2 = jnp.sum((z[:, None] - mu[None]) ** 2, -1)
    expected = 2 * jnp.sum(((p - q) / (1 + d2))[..., None] * (z[:, None] - mu[None]), axis=1)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    # with clusters present, a small descent step moves points toward the centre P weights most
    z1 = z - 0.05 * grad
    own = jnp.argmax(p, axis=1)
    dist = lambda z: jnp.linalg.norm(z - mu[own], axis=1)
    closer = np.asarray(dist(z1) < dist(z))
    assert closer.mean() > 0.9 and float(jnp.mean(dist(z1))) < float(jnp.mean(dist(z)))


def test_loss_combines_reconstruction_and_weighted_kl():
    params = {"model": {"w": jnp.eye(2)}, "centers": MU}
    embed = lambda p, x: x @ p["model"]["w"]
    recon = lambda p, x: (x * 0.5, embed(p, x))
    pb = jnp.array([[0.9, 0.1], [0.2, 0.8]])
    mask = jnp.array([1.0, 1.0])
    kl = jnp.mean(kl_divergence(pb, soft_assignment(Z, MU)))
    mse = jnp.mean((Z * 0.5 - Z) ** 2)
    np.testing.assert_allclose(dec_loss(embed, 1.0, 1.0, None)(params, Z, pb, mask, None), kl, rtol=1e-6)
    np.testing.assert_allclose(dec_loss(embed, 1.0, 0.1, recon)(params, Z, pb, mask, None), mse + 0.1 * kl, rtol=1e-6)


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=300, n_features=6, centers=3, cluster_std=1.0, random_state=1)
    x = (x - x.mean(0)) / x.std(0)
    w = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)) / np.sqrt(6), jnp.float32)
    return jnp.asarray(x, jnp.float32), y, {"w": w}


def test_dec_loop_on_blobs(blobs):
    x, y, params = blobs
    embed = lambda p, xb: xb @ p["w"]
    res = cluster_dec(embed, params, x, 3, jax.random.key(0), update_interval=10, max_iters=30, batch_size=64,
                      tol=0.001, verbose=False)
    assert res.labels.shape == (300,) and res.centers.shape == (3, 3)
    assert cluster_acc(y, res.labels) > 0.95
    h = res.history
    assert len(h["n_changed"]) == res.n_iter and h["n_changed"][0] == 300
    if res.converged:
        assert h["n_changed"][-1] < 0.001 * 300 and np.isnan(h["loss"][-1])
    # the centres were trained: they moved from the K-means initialisation
    assert not np.allclose(res.centers, np.asarray([np.asarray(embed(params, x))[res.init_labels == c].mean(0)
                                                    for c in range(3)]), atol=1e-4)


def test_dec_bad_arguments(blobs):
    x, _, params = blobs
    with pytest.raises(ValueError, match="gamma"):
        cluster_dec(lambda p, xb: xb @ p["w"], params, x, 3, jax.random.key(0), gamma=0.0, verbose=False)
