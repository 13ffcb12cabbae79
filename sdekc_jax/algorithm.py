"""Algorithm 1 of the paper: the clustering phase of SDEKC (and of DEKM, its skip-less form).

    repeat
        Z  <- encoder(X)                                  embed all data
        labels, C <- K-means(Z)                           (restarts: RunConfig.kmeans_schedule)
        S_w <- sum_i (z_i - c_{l_i})(z_i - c_{l_i})^T     Eq. 8
        V  <- eigenvectors of S_w, ascending, as rows     Eq. 9
        Y  <- V Z;  Y' <- Y with last coordinate := the cluster centre's (V C)   Eqs. 13-15
        take `steps_per_iter` Adam steps on mean ||V enc(x) - y'||^2 over mini-batches
    until fewer than `tol * n` points change cluster (Hungarian-matched), or `max_iters`.

As in the DEKM reference code, the targets Y' are fixed for the iteration (computed from the
embedding at its start), the mini-batches cycle through the data in a fixed order (shuffled once per run by default;
``RunConfig.cluster_batch_order="stored"`` walks the stored order as DEKM.py does), the
optimiser is a fresh Adam, and only the encoder is updated. The stop test happens right after
K-means, and the last iteration (converged or at ``max_iters``) takes no steps, so the returned
labels are always the K-means labels of the returned encoder.

This file supplies Algorithm 1's two pieces, the refresh (:func:`dekm_refresh`) and the loss
(:func:`dekm_loss`); the loop around them is :mod:`sdekc_jax.loop`, shared with DEC/IDEC/DCEC,
and :mod:`sdekc_jax.run` composes them with the autoencoder and pretraining.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from .kmeans import kmeans
from .loop import Refresh
from .metrics import count_changed_jax
from .parallel import AXIS, active_mesh, rows_sharded, shard_batch
from .pretrain import masked_mean
from .transform import apply_transform, greedy_target, orthogonal_transform, within_cluster_scatter

EmbedFn = Callable[[Any, jax.Array], jax.Array]  # (encoder_params, x_batch) -> z_batch


def embed_all(embed_fn: EmbedFn, params: Any, x: jax.Array, batch_size: int = 1024) -> jax.Array:
    """The embedding of every row of ``x``, computed in batches (memory bounded by the batch).

    Under :func:`sdekc_jax.parallel.data_parallel` each batch and the result are sharded over
    the mesh's devices; when the data set's rows are sharded (``data="sharded"``) each device
    embeds the rows it holds, in batches of ``batch_size / devices``."""
    if rows_sharded():
        mesh = active_mesh()
        n, m = x.shape[0], mesh.size
        pad = -n % m  # shard_map needs a multiple of the devices (place_rows padded the same way)
        xp = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)) if pad else x
        local = lambda p, xl: _embed_batches(lambda xc: embed_fn(p, xc), xl, max(1, batch_size // m))
        z = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P(AXIS))(params, xp)
        return z[:n] if pad else z
    return shard_batch(_embed_batches(lambda xc: embed_fn(params, shard_batch(xc)), x, batch_size))


def _embed_batches(embed: Callable, x: jax.Array, batch_size: int) -> jax.Array:
    n, b = x.shape[0], min(batch_size, x.shape[0])
    m = n // b
    z = jax.lax.map(embed, x[:m * b].reshape((m, b) + x.shape[1:]))
    z = z.reshape((m * b,) + z.shape[2:])
    if m * b < n:
        z = jnp.concatenate([z, embed(x[m * b:])])
    return z


DEKM_FIRST_N_INIT = 100  # DEKM.py: KMeans(n_init=100) at the first refresh


def dekm_refresh(embed_fn: EmbedFn, n_clusters: int, kmeans_n_init: int, embed_batch_size: int = 1024,
                 kmeans_max_iter: int = 300, schedule: str = "warm", scoring: str = "auto") -> Callable:
    """Algorithm 1's refresh: embed all, K-means, S_w, V, the greedy targets Y'.

    The K-means follows ``schedule`` (``RunConfig.kmeans_schedule``): ``"warm"``,
    ``kmeans_n_init`` restarts with restart 0 warm-started from the last centres (the first
    refresh: from the first ``n_clusters`` embeddings); ``"dekm"``, DEKM.py's
    ``DEKM_FIRST_N_INIT`` fresh k-means++ restarts at the first refresh and then twice the
    previous K-means' Lloyd iterations (at most ``2 * kmeans_max_iter``). The carried ``aux`` is
    ``{"centers", "n_iter"}`` of the last K-means. ``scoring``: K-means' assignment form
    (:func:`sdekc_jax.kmeans.kmeans`)."""
    if schedule not in ("warm", "dekm"):
        raise ValueError(f"schedule must be 'warm' or 'dekm', got {schedule!r}")
    cap = max(DEKM_FIRST_N_INIT, 2 * kmeans_max_iter)

    def refresh(params, x, aux, prev_labels, first, key, skip_weights=None):
        z = embed_all(embed_fn, params, x, embed_batch_size)
        if schedule == "warm":
            warm = jnp.where(first, z[:n_clusters], aux["centers"])
            km = kmeans(key, z, n_clusters, n_init=kmeans_n_init, init=warm, max_iter=kmeans_max_iter, scoring=scoring)
        else:
            n_active = jnp.where(first, DEKM_FIRST_N_INIT, 2 * aux["n_iter"])
            km = kmeans(key, z, n_clusters, n_init=cap, n_active=n_active, max_iter=kmeans_max_iter, scoring=scoring)
        v, _ = orthogonal_transform(within_cluster_scatter(z, km.labels, km.centers))
        target = greedy_target(apply_transform(v, z), km.labels, apply_transform(v, km.centers))
        return Refresh(km.labels, count_changed_jax(prev_labels, km.labels, n_clusters), target, v,
                       {"centers": km.centers, "n_iter": km.n_iter}, {"inertia": km.inertia})

    return refresh


def initial_aux(n_clusters: int, dim: int) -> dict:
    """The ``aux`` before the first refresh (ignored by it)."""
    return {"centers": jnp.zeros((n_clusters, dim), jnp.float32), "n_iter": jnp.zeros((), jnp.int32)}


def dekm_loss(embed_fn: EmbedFn, reduction: str = "mean") -> Callable:
    """Eq. 15: the mean over the batch of ``||V enc(x) - y'||^2 / d``; ``reduction="sum"``: the
    sum over the batch (DEKM.py's step: the gradient of a vector of per-point ``losses.mse``)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")

    def loss(params, xb, target_b, mask, v, skip_weights=None):
        y = apply_transform(v, embed_fn(params, xb))
        per_point = jnp.mean(jnp.square(y - target_b), axis=1)
        return jnp.sum(per_point * mask) if reduction == "sum" else masked_mean(per_point, mask)

    return loss
