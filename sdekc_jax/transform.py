"""The orthogonal transform of DEKM/SDEKC (Eqs. 7-9) and the greedy target (Eqs. 13-15).

Convention: ``V`` holds the eigenvectors of S_w as its **rows**, in ascending order of
eigenvalue, so that ``y = V z`` for a column vector z, i.e. ``Y = Z @ V.T`` for the row-stacked
embeddings ``Z`` (n, d). The last coordinate of y is the direction of largest within-cluster
scatter. ``V @ S_w @ V.T`` is diagonal (the ascending eigenvalues) and its trace is the K-means
loss ``sum_i ||z_i - c_{l_i}||^2`` (Eq. 9), since V is orthonormal.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

_HI = jax.lax.Precision.HIGHEST


def within_cluster_scatter(z: jax.Array, labels: jax.Array, centers: jax.Array) -> jax.Array:
    """S_w = sum_i (z_i - c_{l_i})(z_i - c_{l_i})^T  (Eq. 8), shape (d, d)."""
    r = z - centers[labels]
    return jnp.dot(r.T, r, precision=_HI)


def orthogonal_transform(scatter: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(V, eigenvalues)``: eigenvectors of the symmetric ``scatter`` as rows, ascending."""
    s = 0.5 * (scatter + scatter.T)  # exact symmetry for eigh
    evals, evecs = jnp.linalg.eigh(s)  # ascending; evecs[:, i] is the i-th eigenvector
    return evecs.T, evals


def apply_transform(v: jax.Array, z: jax.Array) -> jax.Array:
    """``y = V z`` for each row of ``z`` (n, d)."""
    return jnp.dot(z, v.T, precision=_HI)


def greedy_target(y: jax.Array, labels: jax.Array, centers_y: jax.Array) -> jax.Array:
    """y' = y with its last coordinate replaced by its cluster centre's last coordinate (Eq. 14)."""
    return y.at[:, -1].set(centers_y[labels, -1])
