"""Clustering metrics (ACC, NMI, ARI) and label matching between clusterings.

The numpy functions accept numpy or JAX arrays (or lists).  :func:`count_changed_jax` is the
traceable counterpart of :func:`count_changed`, usable inside ``jax.jit`` / ``lax.while_loop``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = [
    "cluster_acc",
    "nmi",
    "ari",
    "evaluate",
    "match_labels",
    "count_changed",
    "count_changed_jax",
    "max_weight_assignment_jax",
]


def _check_pair(a, b, names=("y_true", "y_pred")) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    for arr, name in zip((a, b), names):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"{name} is empty")
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {a.shape[0]} vs {b.shape[0]}")
    return a, b


def _contingency(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """counts[i, j] = #{n : rows[n] == i and cols[n] == j} for integer codes."""
    flat = rows.astype(np.int64) * n_cols + cols.astype(np.int64)
    return np.bincount(flat, minlength=n_rows * n_cols).reshape(n_rows, n_cols)


def cluster_acc(y_true, y_pred) -> float:
    """Unsupervised clustering accuracy (Eq. 17): best one-to-one map of clusters to classes.

    ``max_m (1/n) sum_i 1{y_true_i == m(y_pred_i)}``, with ``m`` found by the Hungarian algorithm
    on the contingency matrix.  Labels may be arbitrary values; the numbers of clusters and classes
    may differ (unmatched clusters count as errors).
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    classes, t = np.unique(y_true, return_inverse=True)
    clusters, p = np.unique(y_pred, return_inverse=True)
    counts = _contingency(p, t, len(clusters), len(classes))
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / y_true.size)


def nmi(y_true, y_pred) -> float:
    """Normalized mutual information, arithmetic-mean normalization (as in the papers)."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(normalized_mutual_info_score(y_true, y_pred, average_method="arithmetic"))


def ari(y_true, y_pred) -> float:
    """Adjusted Rand index."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(adjusted_rand_score(y_true, y_pred))


def evaluate(y_true, y_pred) -> dict[str, float]:
    """``{"acc": ..., "nmi": ..., "ari": ...}`` as Python floats."""
    return {"acc": cluster_acc(y_true, y_pred), "nmi": nmi(y_true, y_pred), "ari": ari(y_true, y_pred)}


def run_flags(labels, n_clusters: int, converged: bool, clustering: bool = True) -> dict:
    """What makes a run's result suspect, for results files and tables: ``clusters_used`` (the
    distinct final labels) and ``flags``, a list of one-line reasons, empty for a normal run:
    fewer than ``n_clusters`` clusters used (a collapsed clustering), or the clustering loop
    stopped at ``max_iters`` without converging (``clustering=False``: no loop to converge)."""
    used = int(np.unique(np.asarray(labels)).size)
    flags = []
    if used < n_clusters:
        flags.append(f"degenerate: {used} of {n_clusters} clusters used")
    if clustering and not converged:
        flags.append("stopped at max_iters without converging")
    return {"clusters_used": used, "flags": flags}


def _check_labels(a, b, n_clusters: int, names) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check_pair(a, b, names)
    if int(n_clusters) != n_clusters or n_clusters < 1:
        raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
    out = []
    for arr, name in zip((a, b), names):
        as_int = arr.astype(np.int64)
        if not np.array_equal(as_int, arr) or as_int.min() < 0 or as_int.max() >= n_clusters:
            raise ValueError(f"{name} must hold integer labels in 0..{n_clusters - 1}")
        out.append(as_int)
    return out[0], out[1]


def _assignment(counts: np.ndarray) -> np.ndarray:
    """perm[i] = the reference label matched to label i (k x k counts, maximize agreement)."""
    rows, cols = linear_sum_assignment(counts, maximize=True)
    perm = np.empty(counts.shape[0], dtype=np.int32)
    perm[rows] = cols
    return perm


def match_labels(reference, labels, n_clusters: int) -> np.ndarray:
    """Relabel ``labels`` (values 0..n_clusters-1) to agree best with ``reference`` (Hungarian).

    Returns int32 labels ``perm[labels]`` where ``perm`` is the permutation of 0..n_clusters-1
    maximizing the number of points with ``perm[labels] == reference``.
    """
    reference, labels = _check_labels(reference, labels, n_clusters, ("reference", "labels"))
    perm = _assignment(_contingency(labels, reference, n_clusters, n_clusters))
    return perm[labels]


def count_changed(prev, new, n_clusters: int) -> int:
    """Number of points whose label changed from ``prev`` to ``new`` after Hungarian matching."""
    prev, new = _check_labels(prev, new, n_clusters, ("prev", "new"))
    perm = _assignment(_contingency(new, prev, n_clusters, n_clusters))
    return int(np.count_nonzero(perm[new] != prev))


def max_weight_assignment_jax(weights: jax.Array) -> jax.Array:
    """``perm`` (k,) int32 with ``perm[i]`` the column matched to row ``i``, maximizing
    ``sum_i weights[i, perm[i]]`` over permutations: :func:`scipy.optimize.linear_sum_assignment`
    (``maximize=True``) in JAX, traceable (jit / vmap / ``lax`` loops, no host callback).

    The Hungarian algorithm with shortest augmenting paths, O(k^3), one row added per step, with
    potentials in the weights' dtype: for integer weights (contingency counts) every step is exact
    integer arithmetic, so the optimum is exactly scipy's. Where several permutations reach it,
    the one returned may be another than scipy's (their total weight is the same).
    """
    w = jnp.asarray(weights)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"weights must be a non-empty square matrix, got shape {w.shape}")
    k = w.shape[0]
    dtype = w.dtype if jnp.issubdtype(w.dtype, jnp.integer) else jnp.result_type(w.dtype, jnp.float32)
    inf = jnp.asarray(jnp.iinfo(dtype).max // 2 if jnp.issubdtype(dtype, jnp.integer) else jnp.inf, dtype)
    cost = (jnp.max(w) - w).astype(dtype)  # minimise a non-negative cost
    # 1-based rows and columns; row 0 / column 0 are the algorithm's dummies (p[j]: row of column j)
    a = jnp.zeros((k + 1, k + 1), dtype).at[1:, 1:].set(cost)
    cols = jnp.arange(k + 1)

    def add_row(i, carry):
        u, v, p, way = carry
        p = p.at[0].set(i)

        def search(s):  # grow the alternating tree until it reaches a free column
            j0, used, minv, way, u, v = s
            used = used.at[j0].set(True)
            i0 = p[j0]
            cur = a[i0] - u[i0] - v
            better = ~used & (cur < minv)
            minv, way = jnp.where(better, cur, minv), jnp.where(better, j0, way)
            masked = jnp.where(used, inf, minv)
            j1 = jnp.argmin(masked)
            delta = masked[j1]
            u = u.at[p].add(jnp.where(used, delta, 0).astype(dtype))  # rows of used columns (distinct)
            v = jnp.where(used, v - delta, v)
            minv = jnp.where(used, minv, minv - delta)
            return j1, used, minv, way, u, v

        s = search((jnp.int32(0), jnp.zeros(k + 1, bool), jnp.full(k + 1, inf), way, u, v))
        j0, _, _, way, u, v = jax.lax.while_loop(lambda s: p[s[0]] != 0, search, s)

        def augment(s):
            j0, p = s
            j1 = way[j0]
            return j1, p.at[j0].set(p[j1])

        _, p = jax.lax.while_loop(lambda s: s[0] != 0, augment, (j0, p))
        return u, v, p, way

    init = (jnp.zeros(k + 1, dtype), jnp.zeros(k + 1, dtype), jnp.zeros(k + 1, jnp.int32), jnp.zeros(k + 1, jnp.int32))
    _, _, p, _ = jax.lax.fori_loop(1, k + 1, add_row, init)
    # p[j] = row of column j (1-based, j >= 1): invert to the column of each row
    return jnp.zeros(k, jnp.int32).at[p[1:] - 1].set(cols[1:].astype(jnp.int32) - 1)


def count_changed_jax(prev: jax.Array, new: jax.Array, n_clusters: int) -> jax.Array:
    """Traceable :func:`count_changed` (jit / vmap / ``lax.while_loop``); int32 scalar.

    The k x k contingency matrix is built in JAX (bincount, O(n + k^2) memory) and the matching
    solved in JAX too (:func:`max_weight_assignment_jax`, exact on the integer counts), so a
    program using it has no host callback: it stays on the device and XLA's persistent
    compilation cache can keep it. ``n_clusters`` must be static. Labels are assumed to be in
    0..n_clusters-1 (not checked: values are traced).
    """
    prev, new = jnp.asarray(prev), jnp.asarray(new)
    if prev.ndim != 1 or new.ndim != 1 or prev.shape != new.shape or prev.shape[0] == 0:
        raise ValueError(f"prev and new must be non-empty 1-D of equal length, got {prev.shape}, {new.shape}")
    k = int(n_clusters)
    prev, new = prev.astype(jnp.int32), new.astype(jnp.int32)
    counts = jnp.bincount(new * k + prev, length=k * k).reshape(k, k).astype(jnp.int32)
    perm = max_weight_assignment_jax(counts)
    return jnp.sum(perm[new] != prev, dtype=jnp.int32)
