"""Jitted K-means (greedy k-means++ init, Lloyd iterations, restarts) in pure JAX.

Modelled on ``ott.tools.k_means`` and scikit-learn's ``KMeans`` (same init,
tolerance convention and empty-cluster handling). Memory is O(n*k + n*d): the
pairwise distances are formed as ||x||^2 - 2 x.c^T + ||c||^2, never as an
(n, k, d) tensor.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["KMeansResult", "kmeans", "assign"]

# Full float32 matmuls (avoids TF32 on GPUs, which would perturb assignments).
_PREC = lax.Precision.HIGHEST


class KMeansResult(NamedTuple):
    labels: jax.Array     # (n,) int32
    centers: jax.Array    # (k, d)
    inertia: jax.Array    # () sum of squared distances to the assigned centre
    n_iter: jax.Array     # () int32, Lloyd iterations of the winning restart
    converged: jax.Array  # () bool


def _sq_dists(x: jax.Array, x_sq: jax.Array, c: jax.Array) -> jax.Array:
    """(n, m) squared distances between rows of ``x`` and ``c``, clamped at 0."""
    xc = jnp.dot(x, c.T, precision=_PREC)
    return jnp.maximum(x_sq[:, None] - 2.0 * xc + jnp.sum(c * c, axis=1)[None], 0.0)


def assign(x: jax.Array, centers: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Nearest-centre assignment.

    Returns ``(labels, min_sq_dist)``: (n,) int32 index of the closest centre and
    (n,) squared distance to it (recomputed as ||x - c||^2 for accuracy).
    """
    x_sq = jnp.sum(x * x, axis=1)
    labels = jnp.argmin(_sq_dists(x, x_sq, centers), axis=1).astype(jnp.int32)
    min_sq = jnp.sum((x - centers[labels]) ** 2, axis=1)
    return labels, min_sq


def _kmeans_plusplus(key, x, x_sq, n_clusters: int) -> jax.Array:
    """scikit-learn's greedy k-means++: ``2 + int(log k)`` trials per centre."""
    n = x.shape[0]
    n_trials = 2 + int(math.log(n_clusters))
    key, sub = jax.random.split(key)
    first = x[jax.random.randint(sub, (), 0, n)]
    centers = jnp.zeros((n_clusters, x.shape[1]), x.dtype).at[0].set(first)
    closest = _sq_dists(x, x_sq, first[None])[:, 0]

    def body(i, carry):
        centers, closest, key = carry
        key, sub = jax.random.split(key)
        # Sample candidates with probability proportional to D(x)^2 by inverting the cumulative
        # sum, as scikit-learn does (a Gumbel/categorical draw needs n random numbers per trial,
        # which dominated the whole K-means on CPU). The float32 cumsum perturbs the sampling
        # probabilities by ~1e-7 relative per term: irrelevant for seeding.
        cum = jnp.cumsum(closest)
        u = jax.random.uniform(sub, (n_trials,), closest.dtype) * cum[-1]
        cand = jnp.minimum(jnp.searchsorted(cum, u, side="right"), n - 1)
        d_cand = jnp.minimum(closest[:, None], _sq_dists(x, x_sq, x[cand]))  # (n, trials)
        best = jnp.argmin(jnp.sum(d_cand, axis=0))
        return centers.at[i].set(x[cand[best]]), d_cand[:, best], key

    centers, _, _ = lax.fori_loop(1, n_clusters, body, (centers, closest, key))
    return centers


def _lloyd(x, x_sq, centers, tol_abs, max_iter: int):
    """Lloyd iterations from ``centers``; returns (centers, n_iter, converged)."""
    n, k = x.shape[0], centers.shape[0]

    def cond(state):
        it, _, _, done = state
        return jnp.logical_and(it < max_iter, jnp.logical_not(done))

    def body(state):
        it, centers, labels_old, _ = state
        d = _sq_dists(x, x_sq, centers)
        labels = jnp.argmin(d, axis=1).astype(jnp.int32)
        min_d = jnp.min(d, axis=1)
        onehot = jax.nn.one_hot(labels, k, dtype=x.dtype)  # (n, k)
        sums = jnp.dot(onehot.T, x, precision=_PREC)
        counts = jnp.sum(onehot, axis=0)
        # Empty clusters: move the points farthest from their centre into them
        # (the r-th empty cluster gets the r-th farthest point), as scikit-learn.
        empty = counts == 0
        far = lax.top_k(min_d, k)[1]
        idx = far[jnp.clip(jnp.cumsum(empty) - 1, 0, k - 1)]
        xs, old = x[idx], labels[idx]
        w = empty.astype(x.dtype)
        sums = sums.at[old].add(-xs * w[:, None])
        counts = counts.at[old].add(-w)
        sums = jnp.where(empty[:, None], xs, sums)
        counts = jnp.where(empty, 1.0, counts)
        labels = labels.at[jnp.where(empty, idx, n)].set(jnp.arange(k, dtype=jnp.int32), mode="drop")
        new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centers)
        strict = jnp.all(labels == labels_old)
        shift = jnp.sum((new - centers) ** 2)
        return it + 1, new, labels, jnp.logical_or(strict, shift <= tol_abs)

    init = (jnp.int32(0), centers, jnp.full((n,), -1, jnp.int32), jnp.bool_(False))
    it, centers, _, done = lax.while_loop(cond, body, init)
    return centers, it, done


@functools.partial(jax.jit, static_argnames=("n_clusters", "n_init", "max_iter"))
def _kmeans(key, x, tol, init, *, n_clusters, n_init, max_iter):
    x_sq = jnp.sum(x * x, axis=1)
    tol_abs = tol * jnp.mean(jnp.var(x, axis=0))

    def restart(args):
        i, key = args
        if init is None:
            c0 = _kmeans_plusplus(key, x, x_sq, n_clusters)
        else:  # warm start for restart 0
            c0 = lax.cond(i == 0, lambda: init.astype(x.dtype),
                          lambda: _kmeans_plusplus(key, x, x_sq, n_clusters))
        centers, n_iter, conv = _lloyd(x, x_sq, c0, tol_abs, max_iter)
        return centers, jnp.sum(assign(x, centers)[1]), n_iter, conv

    keys = jax.random.split(key, n_init)
    centers, inertia, n_iter, conv = lax.map(restart, (jnp.arange(n_init), keys))
    best = jnp.argmin(inertia)
    labels, min_sq = assign(x, centers[best])
    return KMeansResult(labels, centers[best], jnp.sum(min_sq), n_iter[best], conv[best])


def kmeans(key: jax.Array, x: jax.Array, n_clusters: int, *, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-4, init: Optional[jax.Array] = None) -> KMeansResult:
    """K-means clustering of the rows of ``x`` (n, d).

    Runs ``n_init`` restarts sequentially with ``lax.map`` (memory O(n*k) per
    restart; on accelerators one could ``vmap`` them instead) and returns the
    one with the lowest inertia as a :class:`KMeansResult` (labels, centers,
    inertia, n_iter, converged). Restarts use greedy k-means++; if ``init``
    (k, d) is given, restart 0 is warm-started from it. Lloyd stops when the
    assignments stop changing, when the total squared centre shift is
    ``<= tol * mean(var(x, axis=0))``, or after ``max_iter`` iterations.
    Jitted (``n_clusters``, ``n_init``, ``max_iter`` static); can be called
    inside ``jit``/``vmap``/``lax.while_loop``.
    """
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n, d), got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    n_clusters, n_init, max_iter = int(n_clusters), int(n_init), int(max_iter)
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}.")
    if x.shape[0] < n_clusters:
        raise ValueError(f"n_samples={x.shape[0]} must be >= n_clusters={n_clusters}.")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}.")
    if init is not None:
        init = jnp.asarray(init)
        if init.shape != (n_clusters, x.shape[1]):
            raise ValueError(f"init must have shape {(n_clusters, x.shape[1])}, got {init.shape}.")
    return _kmeans(key, x, jnp.asarray(tol, x.dtype), init, n_clusters=n_clusters,
                   n_init=n_init, max_iter=max_iter)
