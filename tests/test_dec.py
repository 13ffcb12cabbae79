"""DEC's pieces against hand-computed values, the gradient of KL(P||Q), and the DEC loop on blobs.

The loop runs the real composition (:func:`sdekc_jax.run.make_steps` with ``clustering="dec"``)
through :func:`sdekc_jax.run.fit`, with a linear encoder (the dense autoencoder without hidden
layers) and no pretraining."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from sdekc_jax.config import RunConfig
from sdekc_jax.dec import dec_loss, dec_refresh, kl_divergence, soft_assignment, target_distribution
from sdekc_jax.metrics import cluster_acc
from sdekc_jax.models import init_params
from sdekc_jax.run import fit, make_steps, split_key

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
    recon = lambda p, x, w: (x * 0.5, embed(p, x))
    pb = jnp.array([[0.9, 0.1], [0.2, 0.8]])
    mask = jnp.array([1.0, 1.0])
    kl = jnp.mean(kl_divergence(pb, soft_assignment(Z, MU)))
    mse = jnp.mean((Z * 0.5 - Z) ** 2)
    np.testing.assert_allclose(dec_loss(embed, 1.0, 1.0, None)(params, Z, pb, mask, None), kl, rtol=1e-6)
    np.testing.assert_allclose(dec_loss(embed, 1.0, 0.1, recon)(params, Z, pb, mask, None), mse + 0.1 * kl, rtol=1e-6)
    np.testing.assert_allclose(dec_loss(embed, 1.0, 0.5, None)(params, Z, pb, mask, None), 0.5 * kl, rtol=1e-6)
    # a masked (padding) row does not count
    z3, pb3 = jnp.concatenate([Z, Z[:1]]), jnp.concatenate([pb, pb[1:]])
    np.testing.assert_allclose(dec_loss(embed, 1.0, 1.0, None)(params, z3, pb3, jnp.array([1.0, 1.0, 0.0]), None),
                               kl, rtol=1e-6)


def test_refresh_by_hand():
    """The refresh: labels argmax Q, targets P, the record mean KL(P||Q), changes counted unmatched."""
    r = dec_refresh(lambda p, x: x, 1.0)({"centers": MU}, Z, None, jnp.array([1, 1]), True, jax.random.key(0))
    q = soft_assignment(Z, MU)
    np.testing.assert_array_equal(r.labels, [0, 0])  # point 1 is a tie: argmax takes the first
    assert int(r.n_changed) == 2
    np.testing.assert_allclose(r.targets, target_distribution(q), rtol=1e-6)
    np.testing.assert_allclose(r.record["kl"], jnp.mean(kl_divergence(target_distribution(q), q)), rtol=1e-6)


DEC = dict(n_clusters=3, image_shape=(1, 6, 1), arch="dense", hidden=(), embedding_dim=3, pretrain_epochs=0,
           clustering="dec", steps_per_iter=10, max_iters=30, batch_size=64, tol=0.001,
           cluster_optimizer="sgd", cluster_learning_rate=0.01, cluster_momentum=0.9)  # DEC-keras' SGD


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=300, n_features=6, centers=3, cluster_std=1.0, random_state=1)
    x = (x - x.mean(0)) / x.std(0)
    return np.asarray(x, np.float32).reshape(300, 1, 6, 1), y


def test_dec_loop_on_blobs(blobs):
    x, y = blobs
    cfg = RunConfig(**DEC)
    res = fit(cfg, x, jax.random.key(0), None, verbose=False).result
    assert res.labels.shape == (300,) and res.centers.shape == (3, 3)
    assert cluster_acc(y, res.labels) > 0.95
    it = int(res.n_iter)
    h = {k: v[:it] for k, v in res.history.items()}
    assert set(h) == {"n_changed", "loss", "kl"}
    assert len(h["n_changed"]) == it and h["n_changed"][0] == 300 and np.all(res.history["n_changed"][it:] == -1)
    assert np.all(np.isfinite(h["kl"]))
    if bool(res.converged):
        assert h["n_changed"][-1] < 0.001 * 300 and np.isnan(h["loss"][-1])
    # the labels are the argmax of Q of the final embedding and centres
    np.testing.assert_array_equal(res.labels, np.argmax(soft_assignment(jnp.asarray(res.embedding),
                                                                        jnp.asarray(res.centers)), axis=1))
    # the centres were trained: they moved from the K-means initialisation
    steps, (k_init, _, k_cl) = make_steps(cfg), split_key(jax.random.key(0))
    st = steps.cluster_init(init_params(k_init, cfg), jnp.asarray(x), k_cl)
    init_centers = np.asarray(st["params"]["centers"])
    z0 = np.asarray(steps.embed(init_params(k_init, cfg)["encoder"], jnp.asarray(x)))
    init_labels = np.asarray(st["labels"])
    np.testing.assert_allclose(init_centers, [z0[init_labels == c].mean(0) for c in range(3)], rtol=1e-4, atol=1e-4)
    assert not np.allclose(res.centers, init_centers, atol=1e-4)
    # DEC discards the decoder: it is not trained (and not carried in the loop)
    assert "decoder" not in st["params"]
    for u, v in zip(jax.tree.leaves(res.params["decoder"]), jax.tree.leaves(init_params(k_init, cfg)["decoder"])):
        np.testing.assert_array_equal(u, v)


def test_dec_bad_arguments():
    for k in ("dec_gamma", "dec_alpha"):
        with pytest.raises(ValueError, match=k):
            RunConfig(**{**DEC, k: 0.0})
    with pytest.raises(ValueError, match="cluster_optimizer"):
        RunConfig(**{**DEC, "cluster_optimizer": "rmsprop"})
    with pytest.raises(ValueError, match="cluster_momentum"):
        RunConfig(**{**DEC, "cluster_momentum": 1.0})
