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


def _assignment_callback(counts) -> np.ndarray:
    return _assignment(np.asarray(counts))


def count_changed_jax(prev: jax.Array, new: jax.Array, n_clusters: int) -> jax.Array:
    """Traceable :func:`count_changed` (jit / vmap / ``lax.while_loop``); int32 scalar.

    The k x k contingency matrix is built in JAX (bincount, O(n + k^2) memory); the assignment is
    solved on the host by scipy through ``jax.pure_callback``.  ``n_clusters`` must be static.
    Labels are assumed to be in 0..n_clusters-1 (not checked: values are traced).
    """
    prev, new = jnp.asarray(prev), jnp.asarray(new)
    if prev.ndim != 1 or new.ndim != 1 or prev.shape != new.shape or prev.shape[0] == 0:
        raise ValueError(f"prev and new must be non-empty 1-D of equal length, got {prev.shape}, {new.shape}")
    k = int(n_clusters)
    prev, new = prev.astype(jnp.int32), new.astype(jnp.int32)
    counts = jnp.bincount(new * k + prev, length=k * k).reshape(k, k).astype(jnp.int32)
    perm = jax.pure_callback(
        _assignment_callback,
        jax.ShapeDtypeStruct((k,), jnp.int32),
        counts,
        vmap_method="sequential",
    )
    return jnp.sum(perm[new] != prev, dtype=jnp.int32)
