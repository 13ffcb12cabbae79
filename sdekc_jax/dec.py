"""DEC's clustering phase (Xie et al. 2016) and its relatives IDEC, DCEC, IDCEC and SIDCEC.

    q_ij = (1 + ||z_i - mu_j||^2 / alpha)^(-(alpha+1)/2), normalised over j     Student-t soft assignment
    p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'),  f_j = sum_i q_ij           target distribution
    L_c  = KL(P || Q) = sum_i sum_j p_ij log(p_ij / q_ij)  (mean over the batch)
    L    = L_c                  (DEC, DCEC: the decoder is discarded)
    L    = L_r + gamma * L_c    (IDEC, IDCEC, SIDCEC: reconstruction MSE kept; gamma = 0.1)

The centres mu are initialised by K-means on the pretrained embedding and trained together with
the network. P is refreshed every ``update_interval`` steps from Q on all the data; the run stops
at a refresh where fewer than ``tol * n`` labels (argmax of Q, not matched) changed since the
previous refresh, or after ``max_iters`` refreshes. This is the loop of :mod:`sdekc_jax.loop` with
the refresh and loss below (composed in :mod:`sdekc_jax.run`); the sources are XifengGuo/DEC-keras (DEC.py), XifengGuo/IDEC
(IDEC.py) and XifengGuo/DCEC (DCEC.py).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .algorithm import embed_all
from .loop import Refresh
from .pretrain import masked_mean

_HI = jax.lax.Precision.HIGHEST
_EPS = 1e-7  # Keras' K.epsilon(): 'kld' clips p and q to [eps, 1]


def soft_assignment(z: jax.Array, centers: jax.Array, alpha: float = 1.0) -> jax.Array:
    """Student-t similarity of each embedding to each centre, rows normalised: (n, k)."""
    d2 = (jnp.sum(z * z, axis=1, keepdims=True) - 2.0 * jnp.dot(z, centers.T, precision=_HI)
          + jnp.sum(centers * centers, axis=1)[None, :])
    q = (1.0 + jnp.maximum(d2, 0.0) / alpha) ** (-(alpha + 1.0) / 2.0)
    return q / jnp.sum(q, axis=1, keepdims=True)


def target_distribution(q: jax.Array) -> jax.Array:
    """DEC's auxiliary target: square q, divide by the cluster frequency, renormalise each row."""
    w = q * q / jnp.sum(q, axis=0)
    return w / jnp.sum(w, axis=1, keepdims=True)


def kl_divergence(p: jax.Array, q: jax.Array) -> jax.Array:
    """Per-row KL(p || q) = sum_j p log(p / q), with Keras' clipping of both to [1e-7, 1]: (n,)."""
    p = jnp.clip(p, _EPS, 1.0)
    q = jnp.clip(q, _EPS, 1.0)
    return jnp.sum(p * jnp.log(p / q), axis=1)


def dec_refresh(embed: Callable, alpha: float, embed_batch_size: int = 1024) -> Callable:
    """Q on all the data -> labels (argmax) and the per-point targets P. ``params`` hold the
    trained centres under ``"centers"``; ``embed(params, x_batch)`` embeds."""

    def refresh(params, x, aux, prev_labels, first, key, skip_weights=None):
        q = soft_assignment(embed_all(embed, params, x, embed_batch_size), params["centers"], alpha)
        p = target_distribution(q)
        labels = jnp.argmax(q, axis=1).astype(jnp.int32)
        return Refresh(labels, jnp.sum(labels != prev_labels), p, None, aux, {"kl": jnp.mean(kl_divergence(p, q))})

    return refresh


def dec_loss(embed: Callable, alpha: float, gamma: float, reconstruct: Callable | None) -> Callable:
    """``gamma * KL(P||Q)`` (+ reconstruction MSE when ``reconstruct(params, x_batch, skip_weights)
    -> (x_hat, z)`` is given), mean over the batch."""

    def loss(params, xb, pb, mask, _, skip_weights=None):
        if reconstruct is None:
            z = embed(params, xb)
            rec = 0.0
        else:
            x_hat, z = reconstruct(params, xb, skip_weights)
            rec = masked_mean(jnp.mean(jnp.square(x_hat - xb).reshape(xb.shape[0], -1), axis=1), mask)
        kl = masked_mean(kl_divergence(pb, soft_assignment(z, params["centers"], alpha)), mask)
        return rec + gamma * kl

    return loss
