"""Jitted K-means (greedy k-means++ init, Lloyd iterations, restarts) in pure JAX.

Modelled on ``ott.tools.k_means`` and scikit-learn's ``KMeans`` (same init, tolerance convention,
convergence checks and empty-cluster handling). Memory is O(n*k + n*d) per restart (times the
restarts seeded together): nothing of shape (n, k, d) is ever formed. Laid out for XLA:CPU,
where a pass over the data costs more than its arithmetic and each op has a fixed cost:

* The data are also kept transposed, ``xt`` (d, n), so that per-point quantities are rows of
  length n and nothing is reduced along a short minor axis.
* Assignment in Lloyd (:func:`_labels`) ranks ``||c||^2 - 2 x.c`` (``||x||^2`` is the same for
  all centres of a point, so it is dropped). For ``k * d <= _FUSED_MAX`` the multiply-adds are
  unrolled, so XLA fuses all k scores and a compare-select argmin into one elementwise kernel
  that reads ``x`` once; beyond that a matmul gives the (k, n) scores. Exact ``||x - c||^2`` is
  only formed where it is needed: inertia and final labels (:func:`_assign`, fused the same
  way), empty clusters (only when one is empty, under ``lax.cond``).
* The centre update needs the sums and counts of the points of each cluster (rows of
  ``[x, 1]``). On CPU they are updated incrementally, with one scatter-add of only the points
  that changed cluster (the others are dropped by the scatter, nearly free), which also counts
  them exactly: no separate O(n) check of strict convergence. Elsewhere a one-hot matmul.
* Restarts are seeded in groups (k-means++ has a fixed number of steps, so batching with
  ``vmap`` wastes nothing and saves passes over the data); their Lloyd iterations run one
  restart after another (``lax.scan``): batching those with ``vmap`` was slower on CPU, even
  at equal iteration counts, and every restart would wait for the slowest.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["KMeansResult", "kmeans", "assign"]

# Full float32 matmuls (avoids TF32 on GPUs, which would perturb assignments; free on CPU).
_PREC = lax.Precision.HIGHEST
# Largest k * d for which the assignment scores are unrolled into one fused elementwise kernel
# (faster on CPU up to about 16 x 16, and compile time grows with k * d).
_FUSED_MAX = 256
# Working-set target for seeding restarts together (see _kmeans).
_SEED_GROUP_BYTES = 8 << 20
# Relative inertia difference below which two restarts are tied (see _kmeans).
_TIE_RTOL = 1e-5
# Largest k for which the argmin over the (k, n) scores is unrolled into compare-selects.
_UNROLL_K_MAX = 128


class KMeansResult(NamedTuple):
    labels: jax.Array     # (n,) int32
    centers: jax.Array    # (k, d)
    inertia: jax.Array    # () sum of squared distances to the assigned centre
    n_iter: jax.Array     # () int32, Lloyd iterations of the winning restart
    converged: jax.Array  # () bool


SCORINGS = ("auto", "unrolled", "matmul")


def _labels_matmul(xt: jax.Array, c: jax.Array) -> jax.Array:
    """(n,) nearest centres from the (k, n) score matmul and ``argmin`` (what accelerators do best)."""
    scores = jnp.sum(c * c, axis=1)[:, None] - 2.0 * jnp.dot(c, xt, precision=_PREC)
    return jnp.argmin(scores, axis=0).astype(jnp.int32)


def _labels(xt: jax.Array, c: jax.Array, scoring: str = "auto") -> jax.Array:
    """(n,) int32 index of the nearest centre (first one on ties) for the columns of ``xt`` (d, n):
    the unrolled CPU form below (``"unrolled"``), :func:`_labels_matmul` (``"matmul"``), or per
    backend (``"auto"``: unrolled on CPU, matmul elsewhere)."""
    return _by_scoring(scoring, _labels_unrolled, _labels_matmul, xt, c)


def _by_scoring(scoring: str, unrolled, matmul, *args):
    """``unrolled(*args)`` or ``matmul(*args)`` as ``scoring`` says (``"auto"``: both traced under
    ``lax.platform_dependent``, unrolled on CPU, matmul elsewhere)."""
    if scoring == "auto":
        return lax.platform_dependent(*args, cpu=unrolled, default=matmul)
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {list(SCORINGS)}, got {scoring!r}")
    return (unrolled if scoring == "unrolled" else matmul)(*args)


def _labels_unrolled(xt: jax.Array, c: jax.Array) -> jax.Array:
    """(n,) int32 index of the nearest centre (first one on ties) for the columns of ``xt`` (d, n).

    Ranks ``||c_j||^2 - 2 x.c_j``, which differs from the squared distance by ``||x||^2``.
    """
    k, d = c.shape
    c_sq = jnp.sum(c * c, axis=1)
    if k * d <= _FUSED_MAX:
        cm = -2.0 * c

        def score(j):  # unrolled multiply-adds: XLA fuses all k scores and the argmin below
            s = c_sq[j]
            for l in range(d):
                s = s + cm[j, l] * xt[l]
            return s
    else:
        scores = c_sq[:, None] - 2.0 * jnp.dot(c, xt, precision=_PREC)  # (k, n)
        if k > _UNROLL_K_MAX:
            return jnp.argmin(scores, axis=0).astype(jnp.int32)

        def score(j):
            return scores[j]

    best, labels = score(0), jnp.zeros(xt.shape[1], jnp.int32)
    for j in range(1, k):  # argmin as a chain of compare-selects (XLA:CPU's argmin over axis 0 is slow)
        s = score(j)
        closer = s < best
        best, labels = jnp.where(closer, s, best), jnp.where(closer, jnp.int32(j), labels)
    return labels


def _min_sq(x: jax.Array, c: jax.Array, labels: jax.Array) -> jax.Array:
    """(n,) exact ``||x_i - c_{labels_i}||^2``."""
    return jnp.sum((x - c[labels]) ** 2, axis=1)


def _assign(x: jax.Array, xt: jax.Array, c: jax.Array, scoring: str = "auto") -> Tuple[jax.Array, jax.Array]:
    """(labels, min_sq) for the rows of ``x`` (n, d) / columns of ``xt`` (d, n); ``scoring`` as in
    :func:`_labels` (the unrolled form fuses the exact distances with the argmin; the matmul form
    ranks by matmul and then forms the exact distance to the chosen centre)."""
    return _by_scoring(scoring, _assign_unrolled, _assign_matmul, x, xt, c)


def _assign_matmul(x: jax.Array, xt: jax.Array, c: jax.Array) -> Tuple[jax.Array, jax.Array]:
    labels = _labels_matmul(xt, c)
    return labels, _min_sq(x, c, labels)


def _assign_unrolled(x: jax.Array, xt: jax.Array, c: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """(labels, min_sq) for the rows of ``x`` (n, d) / columns of ``xt`` (d, n).

    Distances are exact ``||x - c||^2`` (no cancellation). For ``k * d <= _FUSED_MAX`` they are
    unrolled into one fused elementwise kernel that also keeps the running argmin.
    """
    k, d = c.shape
    if k * d > _FUSED_MAX:
        labels = _labels_unrolled(xt, c)
        return labels, _min_sq(x, c, labels)
    best = labels = None
    for j in range(k):
        s = (xt[0] - c[j, 0]) ** 2
        for l in range(1, d):
            s = s + (xt[l] - c[j, l]) ** 2
        if best is None:
            best, labels = s, jnp.zeros(xt.shape[1], jnp.int32)
        else:
            closer = s < best
            best, labels = jnp.where(closer, s, best), jnp.where(closer, jnp.int32(j), labels)
    return labels, best


@functools.partial(jax.jit, static_argnames=("scoring",))
def assign(x: jax.Array, centers: jax.Array, scoring: str = "auto") -> Tuple[jax.Array, jax.Array]:
    """Nearest-centre assignment (jitted; ``scoring`` as in :func:`kmeans`).

    Returns ``(labels, min_sq_dist)``: (n,) int32 index of the closest centre (the first one on
    ties) and (n,) squared distance to it, computed as ||x - c||^2 for accuracy.
    """
    x = jnp.asarray(x)
    centers = jnp.asarray(centers).astype(x.dtype)
    return _assign(x, x.T, centers, scoring)


def _sums_moved(xw: jax.Array, labels: jax.Array, labels_old: jax.Array, k: int) -> jax.Array:
    """((k+1) * k, w) sums of the rows of ``xw`` over the points that changed cluster, by
    (old, new) pair (``labels_old == k``: no cluster yet). Unchanged points get an index out of
    range, which the scatter drops: cheap on CPU, where dropped rows cost a fifth of added ones.
    """
    pair = jnp.where(labels == labels_old, (k + 1) * k, labels_old * k + labels)
    return jax.ops.segment_sum(xw, pair, (k + 1) * k)


def _update_scatter(xw, labels, labels_old, sc_old, k):
    """Cluster sums updated by the points that moved (see :func:`_sums_moved`)."""
    moved = _sums_moved(xw, labels, labels_old, k).reshape(k + 1, k, -1)
    sc = sc_old + (jnp.sum(moved, axis=0) - jnp.sum(moved[:k], axis=1))
    return sc, jnp.sum(moved[..., -1]) == 0  # counts are exact: no point moved


def _update_onehot(xw, labels, labels_old, sc_old, k):
    """Cluster sums recomputed with a one-hot matmul."""
    onehot = (labels[None, :] == jnp.arange(k, dtype=labels.dtype)[:, None]).astype(xw.dtype)  # (k, n)
    return jnp.dot(onehot, xw, precision=_PREC), jnp.all(labels == labels_old)


def _cluster_sums(xw, labels, labels_old, sc_old, k: int):
    """Per-cluster sums of the rows of ``xw`` = [x, 0..., 1] (n, w), i.e. point sums and counts,
    (k, w), for ``labels``, given those of ``labels_old``; and whether no label changed.

    On CPU an incremental update: one scatter-add of the points that changed cluster (70,000 x
    10 points: about 0.25 ms per iteration with the pair indices, against 0.36 ms to scatter-add
    all points afresh and over 1 ms for a one-hot matmul). The sums then carry the rounding of
    successive updates, of the order of that of a fresh float32 sum (relative error of the
    centres ~1e-6 either way). Elsewhere a one-hot matmul (what accelerators do best; not
    measured here).
    """
    return lax.platform_dependent(xw, labels, labels_old, sc_old,
                                  cpu=functools.partial(_update_scatter, k=k),
                                  default=functools.partial(_update_onehot, k=k))


def _n_trials(n_clusters: int) -> int:
    return 2 + int(math.log(n_clusters))


def _block_shape(n: int) -> Tuple[int, int]:
    """(blocks, block size) ~ (sqrt(n), sqrt(n)) for the two-level k-means++ sampling."""
    m = max(16, -(-math.isqrt(n) // 16) * 16)
    return -(-n // m), m


def _kmeans_plusplus(bits, x, xtp, xtp_sq, n_clusters: int) -> jax.Array:
    """scikit-learn's greedy k-means++: ``2 + int(log k)`` trials per centre.

    ``bits`` (1 + (k-1) * trials,) uint32 are this restart's random bits (one draw for all
    restarts: each ``jax.random`` call costs compile time): the first centre is ``x[bits[0] %
    n]`` (uniform, as scikit-learn), the rest are uniforms for the trials. ``xtp`` (d, nb*m) is
    ``x.T`` zero-padded to whole blocks of m points, ``xtp_sq`` its squared column norms.
    Candidates are drawn with probability proportional to D(x)^2 by inverting the cumulative sum,
    as scikit-learn does, but in two levels (which block, then which point in the block), so
    that instead of an O(n) cumulative sum per step (slow on CPU) only the (nb,) block sums,
    computed with the candidates' distances, and one block of m ~ sqrt(n) points are scanned.
    Float32 sums perturb the sampling probabilities by ~1e-7 relative: irrelevant for seeding.
    """
    n, d = x.shape
    nb, m = _block_shape(n)
    n_trials = _n_trials(n_clusters)
    first = x[(bits[0] % n).astype(jnp.int32)]
    # Uniforms in [0, 1) on a 2^-24 grid (exact in float32), (k-1, trials).
    u = ((bits[1:] >> 8).astype(jnp.float32) * 2.0 ** -24).astype(x.dtype).reshape(n_clusters - 1, n_trials)
    valid = lax.iota(jnp.int32, nb * m) < n

    def potentials(c, closest):
        """(t, nb*m) min(closest, ||x - c_t||^2), 0 on the padding, and its (t, nb) block sums."""
        dist = xtp_sq[None] + jnp.sum(c * c, axis=1)[:, None] - 2.0 * jnp.dot(c, xtp, precision=_PREC)
        dist = jnp.minimum(closest[None], jnp.maximum(dist, 0.0))
        dist = jnp.where(valid[None], dist, 0.0)
        return dist, jnp.sum(dist.reshape(c.shape[0], nb, m), axis=2)

    closest, block_sums = potentials(first[None], jnp.full((nb * m,), jnp.inf, x.dtype))
    closest, block_sums = closest[0], block_sums[0]

    def body(i, carry):
        centers, closest, block_sums = carry
        cum = jnp.cumsum(block_sums)
        r = u[i - 1] * cum[-1]  # (t,) targets in [0, potential)
        # searchsorted(side="right") by counting (the arrays are short): first block past r.
        b = jnp.minimum(jnp.sum(cum[None, :] <= r[:, None], axis=1), nb - 1)
        r = r - (cum[b] - block_sums[b])
        inner = jnp.cumsum(closest.reshape(nb, m)[b], axis=1)  # (t, m)
        j = jnp.minimum(jnp.sum(inner <= r[:, None], axis=1), m - 1)
        cand = x[jnp.minimum(b * m + j, n - 1)]  # (t, d)
        dist, sums = potentials(cand, closest)
        best = jnp.argmin(jnp.sum(sums, axis=1))
        return centers.at[i].set(cand[best]), dist[best], sums[best]

    centers = jnp.zeros((n_clusters, d), x.dtype).at[0].set(first)
    if n_clusters > 1:
        centers, _, _ = lax.fori_loop(1, n_clusters, body, (centers, closest, block_sums))
    return centers


def _lloyd(x, xtp, xw, centers, tol_abs, max_iter: int, scoring: str = "auto"):
    """Lloyd iterations from ``centers``; returns (centers, n_iter, converged).

    ``xtp`` is ``x.T`` with any number of extra columns (sliced off inside the loop, where XLA
    fuses the slice, rather than outside, where the loop would carry a copy).
    """
    n = x.shape[0]
    k, d = centers.shape

    def relocate(sums, counts, labels, c):
        # Empty clusters: move the points farthest from their centre into them (the r-th empty
        # cluster gets the r-th farthest point), as scikit-learn: only the sums and counts change
        # (the labels stay those of the assignment step, as in scikit-learn).
        empty = counts == 0
        far = lax.top_k(_min_sq(x, c, labels), k)[1]
        idx = far[jnp.clip(jnp.cumsum(empty) - 1, 0, k - 1)]
        xs, old = x[idx], labels[idx]
        w = empty.astype(x.dtype)
        sums = sums.at[old].add(-xs * w[:, None])
        counts = counts.at[old].add(-w)
        return jnp.where(empty[:, None], xs, sums), jnp.where(empty, 1.0, counts)

    def cond(state):
        it, _, _, _, done = state
        return jnp.logical_and(it < max_iter, jnp.logical_not(done))

    def body(state):
        it, c, labels_old, sc_old, _ = state
        labels = _labels(xtp[:, :n], c, scoring)
        sc, strict = _cluster_sums(xw, labels, labels_old, sc_old, k)  # strict: labels unchanged
        sums, counts = lax.cond(jnp.any(sc[:, -1] == 0), relocate, lambda s, n_, *_: (s, n_),
                                sc[:, :d], sc[:, -1], labels, c)  # runs only if a cluster is empty
        new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], c)
        shift = jnp.sum((new - c) ** 2)
        return it + 1, new, labels, sc, jnp.logical_or(strict, shift <= tol_abs)

    # Labels start as k ("no cluster"), with zero sums.
    init = (jnp.int32(0), centers, jnp.full((n,), k, jnp.int32), jnp.zeros((k, xw.shape[1]), xw.dtype),
            jnp.bool_(False))
    it, centers, _, _, done = lax.while_loop(cond, body, init)
    return centers, it, done


def _with_ones(x: jax.Array) -> jax.Array:
    """[x, 0..., 1]: cluster sums and counts in one pass, rows padded to a multiple of 4 floats."""
    n, d = x.shape
    w = -(-(d + 1) // 4) * 4
    return jnp.concatenate([x, jnp.zeros((n, w - d - 1), x.dtype), jnp.ones((n, 1), x.dtype)], axis=1)


def _seed_bits(key, n_seeded: int, n_clusters: int) -> jax.Array:
    return jax.random.bits(key, (n_seeded, 1 + (n_clusters - 1) * _n_trials(n_clusters)), jnp.uint32)


@functools.partial(jax.jit, static_argnames=("n_clusters", "n_init", "max_iter", "scoring"))
def _kmeans_dynamic(key, x, tol, n_active, *, n_clusters, n_init, max_iter, scoring):
    """The first ``n_active`` (traced, clipped to 1..n_init) of ``n_init`` k-means++ restarts, one
    after another in a ``lax.while_loop``: seeding and Lloyd per restart. A later restart
    replaces the best so far only when its inertia is lower by more than the relative tie
    tolerance, so the first of tied restarts wins, as in :func:`_kmeans`."""
    n, d = x.shape
    nb, m = _block_shape(n)
    xtp = jnp.pad(x.T, ((0, 0), (0, nb * m - n)))
    xtp_sq = sum(xtp[l] ** 2 for l in range(d))
    tol_abs = tol * jnp.mean(jnp.var(x, axis=0))
    bits = _seed_bits(key, n_init, n_clusters)
    xw = _with_ones(x)
    n_active = jnp.clip(n_active, 1, n_init)

    def body(carry):
        i, best = carry
        c0 = _kmeans_plusplus(bits[i], x, xtp, xtp_sq, n_clusters)
        centers, n_iter, conv = _lloyd(x, xtp, xw, c0, tol_abs, max_iter, scoring)
        inertia = jnp.sum(_assign(x, xtp[:, :n], centers, scoring)[1])
        better = jnp.logical_or(i == 0, inertia < best[1] * (1 - _TIE_RTOL))
        new = (centers, inertia, n_iter, conv)
        return i + 1, jax.tree.map(lambda a, b: jnp.where(better, a, b), new, best)

    empty = (jnp.zeros((n_clusters, d), x.dtype), jnp.asarray(jnp.inf, x.dtype), jnp.int32(0), jnp.bool_(False))
    _, (centers, _, n_iter, conv) = lax.while_loop(lambda c: c[0] < n_active, body, (jnp.int32(0), empty))
    labels, min_sq = _assign(x, xtp[:, :n], centers, scoring)
    return KMeansResult(labels, centers, jnp.sum(min_sq), n_iter, conv)


@functools.partial(jax.jit, static_argnames=("n_clusters", "n_init", "max_iter", "scoring"))
def _kmeans(key, x, tol, init, *, n_clusters, n_init, max_iter, scoring):
    n, d = x.shape
    # x.T zero-padded to whole blocks for the seeding; Lloyd reads its first n columns.
    nb, m = _block_shape(n)
    xtp = jnp.pad(x.T, ((0, 0), (0, nb * m - n)))
    tol_abs = tol * jnp.mean(jnp.var(x, axis=0))

    # Seeds: k-means++ for every restart (restart 0 is the warm start if given).
    n_seeded = n_init if init is None else n_init - 1
    seeds = []
    if init is not None:
        seeds.append(init.astype(x.dtype)[None])
    if n_seeded > 0:
        xtp_sq = sum(xtp[l] ** 2 for l in range(d))  # XLA:CPU's reduce over axis 0 is slow
        n_trials = _n_trials(n_clusters)
        bits = _seed_bits(key, n_seeded, n_clusters)
        # Seed in equal groups of restarts (vmap inside lax.map), so that a step's (group *
        # trials, n) potentials stay about cache-sized (faster than all at once or one by one)
        # and no larger than two (k, n) arrays (memory O(n*k) like one restart's Lloyd).
        most = min(_SEED_GROUP_BYTES // (n_trials * nb * m * x.dtype.itemsize), 2 * n_clusters // n_trials)
        most = max(1, most)
        group = max(g for g in range(1, min(most, n_seeded) + 1) if n_seeded % g == 0)
        seeds.append(lax.map(lambda b: _kmeans_plusplus(b, x, xtp, xtp_sq, n_clusters), bits, batch_size=group))
    seeds = jnp.concatenate(seeds) if len(seeds) > 1 else seeds[0]

    xw = _with_ones(x)

    def restart(_, c0):
        centers, n_iter, conv = _lloyd(x, xtp, xw, c0, tol_abs, max_iter, scoring)
        inertia = jnp.sum(_assign(x, xtp[:, :n], centers, scoring)[1])
        return None, (centers, inertia, n_iter, conv)

    _, (centers, inertia, n_iter, conv) = lax.scan(restart, None, seeds)
    # Restarts within a relative _TIE_RTOL of the lowest inertia count as ties and the first wins
    # (restart 0 is the warm start when given): restarts that reach the same partition differ
    # only by rounding and by the order of their labels, so a strict argmin would let float
    # reassociation (another device count, a vmapped batch) permute the labels.
    best = jnp.argmax(inertia <= jnp.min(inertia) * (1 + _TIE_RTOL))
    labels, min_sq = _assign(x, xtp[:, :n], centers[best], scoring)
    return KMeansResult(labels, centers[best], jnp.sum(min_sq), n_iter[best], conv[best])


def kmeans(key: jax.Array, x: jax.Array, n_clusters: int, *, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-4, init: Optional[jax.Array] = None, n_active=None,
           scoring: str = "auto") -> KMeansResult:
    """K-means clustering of the rows of ``x`` (n, d).

    Seeds ``n_init`` restarts with scikit-learn's greedy k-means++ (``2 + int(log k)`` trials per
    centre; the random bits of all restarts are one draw from ``key``; restarts are seeded in
    groups batched with ``vmap``), runs their Lloyd iterations one restart after another
    (``lax.scan``) and returns the one with the lowest inertia as a :class:`KMeansResult`
    (restarts within a relative 1e-5 of it are ties, and the first of them wins)
    (labels, centers, inertia, n_iter, converged). If ``init`` (k, d) is given, restart 0 is
    warm-started from it instead of being seeded. Lloyd stops when the assignments stop changing
    (strict convergence), when the total squared centre shift is ``<= tol * mean(var(x,
    axis=0))``, or after ``max_iter`` iterations; a cluster left empty receives the point farthest
    from its centre. The returned labels and inertia are recomputed with exact distances to the
    returned centres. Memory: O(n*k + n*d), plus (group x trials x n) while seeding.
    Jitted (``n_clusters``, ``n_init``, ``max_iter`` static); can be called inside
    ``jit``/``vmap``/``lax.while_loop``/``lax.scan``.

    ``n_active`` (an int or a traced int32 scalar) runs only the first ``n_active`` restarts
    (clipped to ``1..n_init``; ``n_init`` is then a static cap), each seeded and iterated in turn
    in a ``lax.while_loop``: a number of restarts that changes from call to call without
    recompiling (the DEKM reference code's schedule, :mod:`sdekc_jax.algorithm`). Not with ``init``.

    ``scoring``: how points are assigned to centres. ``"unrolled"`` is laid out for XLA:CPU (see
    the module doc), ``"matmul"`` is a (k, n) score matmul and ``argmin`` (native on GPU/TPU),
    ``"auto"`` traces both under ``lax.platform_dependent`` (unrolled on CPU, matmul elsewhere).
    They assign the same nearest centres (ties aside, where distances agree to float rounding).
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
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {list(SCORINGS)}, got {scoring!r}.")
    if n_active is not None:
        if init is not None:
            raise ValueError("n_active (a varying number of k-means++ restarts) cannot be combined with init.")
        return _kmeans_dynamic(key, x, jnp.asarray(tol, x.dtype), jnp.asarray(n_active, jnp.int32),
                               n_clusters=n_clusters, n_init=n_init, max_iter=max_iter, scoring=scoring)
    return _kmeans(key, x, jnp.asarray(tol, x.dtype), init, n_clusters=n_clusters,
                   n_init=n_init, max_iter=max_iter, scoring=scoring)
