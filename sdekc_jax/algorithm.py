"""Algorithm 1 of the paper: the clustering phase of SDEKC (and of DEKM, its skip-less form).

    repeat
        Z  <- encoder(X)                                  embed all data
        labels, C <- K-means(Z)                           (warm-started from the last centres)
        S_w <- sum_i (z_i - c_{l_i})(z_i - c_{l_i})^T     Eq. 8
        V  <- eigenvectors of S_w, ascending, as rows     Eq. 9
        Y  <- V Z;  Y' <- Y with last coordinate := the cluster centre's (V C)   Eqs. 13-15
        take `steps_per_iter` Adam steps on mean ||V enc(x) - y'||^2 over mini-batches
    until fewer than `tol * n` points change cluster (Hungarian-matched), or `max_iters`.

As in the DEKM reference code, the targets Y' are fixed for the iteration (computed from the
embedding at its start), the mini-batches cycle through the data in a fixed shuffled order, the
optimiser is a fresh Adam, and only the encoder is updated. The stop test happens right after
K-means, and the last iteration (converged or at ``max_iters``) takes no steps, so the returned
labels are always the K-means labels of the returned encoder.

This file supplies Algorithm 1's two pieces, the refresh (:func:`dekm_refresh`) and the loss
(:func:`dekm_loss`); the loop around them (one compiled function per iteration, compiled chunks
of ``chunk_size`` iterations in a ``lax.scan``, progress between chunks) is
:func:`sdekc_jax.loop.run_loop`, shared with DEC/IDEC/DCEC.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .vmap_exact import adam, one_run_at_a_time, per_run
from .kmeans import kmeans
from .metrics import count_changed_jax
from .loop import Refresh, init_loop_state, run_loop
from .loop import make_chunk_fn as make_loop_chunk_fn
from .parallel import shard_batch
from .pretrain import masked_mean
from .transform import apply_transform, greedy_target, orthogonal_transform, within_cluster_scatter

EmbedFn = Callable[[Any, jax.Array], jax.Array]  # (encoder_params, x_batch) -> z_batch


class ClusterResult(NamedTuple):
    params: Any            # encoder parameters after the clustering phase
    labels: np.ndarray     # (n,) final K-means labels
    centers: np.ndarray    # (k, d) final K-means centres in the embedding space
    n_iter: int            # number of clustering iterations run (K-means calls)
    converged: bool        # stopped by the tolerance, not by max_iters
    history: dict          # per-iteration arrays: n_changed, inertia, loss


def embed_all(embed_fn: EmbedFn, params: Any, x: jax.Array, batch_size: int = 1024) -> jax.Array:
    """The embedding of every row of ``x``, computed in batches (memory bounded by the batch).

    Under :func:`sdekc_jax.parallel.data_parallel` each batch and the result are sharded over
    the mesh's devices."""
    like = jax.tree.leaves(params)[0]  # vmapped over seeds: each batch is copied per seed (vmap_exact.per_run)
    embed = lambda xc: embed_fn(params, shard_batch(per_run(xc, like)))
    n, b = x.shape[0], min(batch_size, x.shape[0])
    m = n // b
    z = jax.lax.map(embed, x[:m * b].reshape((m, b) + x.shape[1:]))
    z = z.reshape((m * b,) + z.shape[2:])
    if m * b < n:
        z = jnp.concatenate([z, embed(x[m * b:])])
    return shard_batch(z)


def embed_all_compiled(embed_fn: EmbedFn, vmapped: bool = False) -> Callable:
    """:func:`embed_all` as one jitted program ``(params, x) -> z`` (called outside other jitted
    code: one program instead of eager per-layer ops). ``vmapped``: ``params`` carry a leading
    run axis and ``x`` is shared by the runs."""
    f = lambda p, x: embed_all(embed_fn, p, x)
    return jax.jit(jax.vmap(f, in_axes=(0, None)) if vmapped else f)


def dekm_refresh(embed_fn: EmbedFn, n_clusters: int, kmeans_n_init: int) -> Callable:
    """Algorithm 1's refresh: embed all, K-means (warm-started from the last centres), S_w, V, Y'."""

    def kmeans_and_targets(z, centers, first, key):
        warm = jnp.where(first, z[:n_clusters], centers)
        km = kmeans(key, z, n_clusters, n_init=kmeans_n_init, init=warm)
        v, _ = orthogonal_transform(within_cluster_scatter(z, km.labels, km.centers))
        target = greedy_target(apply_transform(v, z), km.labels, apply_transform(v, km.centers))
        return km.labels, km.centers, km.inertia, v, target

    def refresh(params, x, centers, prev_labels, first, key):
        z = embed_all(embed_fn, params, x)
        # vmapped runs (seeds, skip settings) do this part one at a time: the batched program rounds
        # S_w and the inertia differently from 4 runs on (vmap_exact.one_run_at_a_time)
        labels, centers, inertia, v, target = one_run_at_a_time(kmeans_and_targets)(z, centers, first, key)
        return Refresh(labels, count_changed_jax(prev_labels, labels, n_clusters), target, v, centers,
                       {"inertia": inertia})

    return refresh


def dekm_loss(embed_fn: EmbedFn) -> Callable:
    """Eq. 15: the mean over the batch of ``||V enc(x) - y'||^2 / d``."""

    def loss(params, xb, target_b, mask, v):
        y = apply_transform(v, embed_fn(params, xb))
        return masked_mean(jnp.mean(jnp.square(y - target_b), axis=1), mask)

    return loss


def init_cluster_state(params: Any, x: jax.Array, n_clusters: int, key: jax.Array, tx: optax.GradientTransformation,
                       embed_dim: int) -> dict:
    """The loop state before the first iteration (labels all 0, centres 0: the first K-means
    starts from the first ``n_clusters`` embeddings)."""
    return init_loop_state(params, tx, jnp.zeros((x.shape[0],), jnp.int32),
                           jnp.zeros((n_clusters, embed_dim), jnp.float32), key)


def make_chunk_fn(embed_fn: EmbedFn, tx: optax.GradientTransformation, *, n_clusters: int, steps_per_iter: int,
                  tol: float, kmeans_n_init: int, chunk_size: int, vmapped: bool = False,
                  max_traces: int | None = None) -> Callable:
    """``chunk(state, x, plan, max_iters) -> (state, records)``: up to ``chunk_size`` iterations
    of Algorithm 1, jitted (see :func:`sdekc_jax.loop.make_chunk_fn`)."""
    return make_loop_chunk_fn(dekm_refresh(embed_fn, n_clusters, kmeans_n_init), dekm_loss(embed_fn), tx,
                              steps_per_iter=steps_per_iter, tol=tol, chunk_size=chunk_size, vmapped=vmapped,
                              max_traces=max_traces)


def cluster(
    embed_fn: EmbedFn,
    params: Any,
    x: jax.Array,
    n_clusters: int,
    key: jax.Array,
    *,
    max_iters: int = 1000,
    steps_per_iter: int = 40,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    tol: float = 0.001,
    kmeans_n_init: int = 10,
    chunk_size: int = 10,
    verbose: bool = True,
    record_labels: bool | str = False,
    checkpoint=None,
    vmapped: bool = False,
) -> ClusterResult:
    """Run the clustering phase (Algorithm 1) from pretrained encoder parameters.

    Args:
      embed_fn: ``(encoder_params, x_batch) -> z_batch``, e.g. ``lambda p, x: model.apply(
        {"params": p}, x, method=CAE.embed)``. Only ``params`` are trained.
      params: the encoder parameters (a pytree).
      x: all data (n, ...), kept on the device.
      tol: stop when fewer than ``tol * n`` points change cluster between iterations.
      record_labels: keep every iteration's labels in ``history["labels"]`` (n_iter, n);
        ``"first"``: only the first iteration's (1, n).
      checkpoint: a :class:`~sdekc_jax.checkpoint.Checkpointer`; resume from / save to it (see
        :func:`sdekc_jax.loop.run_loop`).
      vmapped: run S clustering phases in one compiled program (e.g. one per seed): ``params``
        stacked (leading axis S, :func:`sdekc_jax.pretrain.stack_trees`), ``key`` an array of S
        keys. Every field of the result then has the leading axis S (``history`` is a list);
        each run stops by its own test (see :func:`sdekc_jax.loop.run_loop`).
    """
    x = jnp.asarray(x, jnp.float32)
    lead = (int(np.shape(key)[0]),) if vmapped else ()
    one = jax.tree.map(lambda v: v[0], params) if vmapped else params
    embed_dim = jax.eval_shape(embed_fn, one, x[:1]).shape[-1]
    tx = adam(learning_rate, b1=0.9, b2=0.999)
    r = run_loop(dekm_refresh(embed_fn, n_clusters, kmeans_n_init), dekm_loss(embed_fn), params, x, key, tx=tx,
                 init_labels=jnp.zeros(lead + (x.shape[0],), jnp.int32),
                 init_aux=jnp.zeros(lead + (n_clusters, embed_dim), jnp.float32), max_iters=max_iters,
                 steps_per_iter=steps_per_iter, batch_size=batch_size, tol=tol, chunk_size=chunk_size,
                 verbose=verbose, record_labels=record_labels, checkpoint=checkpoint, vmapped=vmapped)
    return ClusterResult(r.params, r.labels, np.asarray(r.aux), r.n_iter, r.converged, r.history)
