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
the refresh and loss below; the sources are XifengGuo/DEC-keras (DEC.py), XifengGuo/IDEC
(IDEC.py) and XifengGuo/DCEC (DCEC.py).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .algorithm import embed_all
from .kmeans import kmeans
from .loop import Refresh, run_loop
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


def dec_refresh(embed: Callable, alpha: float) -> Callable:
    """Q on all the data -> labels (argmax) and the per-point targets P."""

    def refresh(params, x, aux, prev_labels, first, key):
        q = soft_assignment(embed_all(embed, params, x), params["centers"], alpha)
        p = target_distribution(q)
        labels = jnp.argmax(q, axis=1).astype(jnp.int32)
        return Refresh(labels, jnp.sum(labels != prev_labels), p, None, aux, {"kl": jnp.mean(kl_divergence(p, q))})

    return refresh


def dec_loss(embed: Callable, alpha: float, gamma: float, reconstruct: Callable | None) -> Callable:
    """``gamma * KL(P||Q)`` (+ reconstruction MSE when ``reconstruct`` is given), mean over the batch."""

    def loss(params, xb, pb, mask, _):
        if reconstruct is None:
            z = embed(params, xb)
            rec = 0.0
        else:
            x_hat, z = reconstruct(params, xb)
            rec = masked_mean(jnp.mean(jnp.square(x_hat - xb).reshape(xb.shape[0], -1), axis=1), mask)
        kl = masked_mean(kl_divergence(pb, soft_assignment(z, params["centers"], alpha)), mask)
        return rec + gamma * kl

    return loss


class DECResult(NamedTuple):
    params: Any            # {"model": network parameters, "centers": (k, d)} after training
    labels: np.ndarray     # (n,) argmax of Q at the final refresh
    centers: np.ndarray    # (k, d) trained centres
    n_iter: int            # refreshes of P run
    converged: bool        # stopped by the tolerance, not by max_iters
    history: dict          # per refresh: n_changed, kl (mean KL(P||Q) on all data), loss (mean over its steps)
    init_labels: np.ndarray  # K-means labels the centres were initialised from


def cluster_dec(
    model_embed: Callable,
    model_params: Any,
    x: jax.Array,
    n_clusters: int,
    key: jax.Array,
    *,
    reconstruct: Callable | None = None,
    gamma: float = 1.0,
    alpha: float = 1.0,
    optimizer: optax.GradientTransformation | None = None,
    update_interval: int = 140,
    max_iters: int = 143,
    batch_size: int = 256,
    tol: float = 0.001,
    kmeans_n_init: int = 20,
    chunk_size: int = 10,
    verbose: bool = True,
    record_labels: bool | str = False,
    checkpoint=None,
    vmapped: bool = False,
) -> DECResult:
    """DEC-style clustering from pretrained parameters.

    Args:
      model_embed: ``(model_params, x_batch) -> z_batch``.
      model_params: the trained part of the network (the encoder for DEC/DCEC, the whole
        autoencoder for IDEC/IDCEC).
      reconstruct: ``(model_params, x_batch) -> (x_hat, z)``; given -> the loss adds the
        reconstruction MSE (IDEC), absent -> the loss is ``gamma * KL`` only (DEC).
      optimizer: defaults to DEC-keras' SGD(lr 0.01, momentum 0.9).
      update_interval: steps between refreshes of P; ``max_iters`` counts refreshes, so DEC's
        ``maxiter`` steps correspond to ``ceil(maxiter / update_interval)``.
      record_labels: keep every refresh's labels in ``history["labels"]`` (n_iter, n);
        ``"first"``: only the first refresh's (1, n).
      checkpoint: a :class:`~sdekc_jax.checkpoint.Checkpointer` for the loop (see
        :func:`sdekc_jax.loop.run_loop`); the initial K-means is recomputed on resume (same key).
      vmapped: S runs in one compiled program (``model_params`` stacked, ``key`` an array of S
        keys; the result's fields have the leading axis S, ``history`` is a list; see
        :func:`sdekc_jax.algorithm.cluster`).
    """
    if not (np.isfinite(gamma) and gamma > 0) or not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"gamma and alpha must be positive numbers, got gamma={gamma!r}, alpha={alpha!r}")
    x = jnp.asarray(x, jnp.float32)
    init = lambda k, p: (jax.random.split(k)[1], kmeans(jax.random.split(k)[0], embed_all(model_embed, p, x), n_clusters,
                                                        n_init=kmeans_n_init))
    loop_key, km = (jax.vmap(init) if vmapped else init)(key, model_params)
    params = {"model": model_params, "centers": km.centers}
    embed = lambda p, xb: model_embed(p["model"], xb)
    rec = None if reconstruct is None else (lambda p, xb: reconstruct(p["model"], xb))
    tx = optimizer if optimizer is not None else optax.sgd(0.01, momentum=0.9)
    r = run_loop(dec_refresh(embed, alpha), dec_loss(embed, alpha, gamma, rec), params, x, loop_key, tx=tx,
                 init_labels=km.labels, init_aux=None, max_iters=max_iters, steps_per_iter=update_interval,
                 batch_size=batch_size, tol=tol, chunk_size=chunk_size, desc="dec", verbose=verbose,
                 record_labels=record_labels, checkpoint=checkpoint, vmapped=vmapped)
    return DECResult(r.params, r.labels, np.asarray(r.params["centers"]), r.n_iter, r.converged, r.history,
                     np.asarray(km.labels))
