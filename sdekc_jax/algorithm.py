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

The whole iteration is one compiled function; iterations run in compiled chunks of
``chunk_size`` (a ``lax.scan``), with progress reported between chunks only.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .kmeans import kmeans
from .metrics import count_changed_jax
from .pretrain import batch_plan, masked_mean
from .progress import progress
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
    """The embedding of every row of ``x``, computed in batches (memory bounded by the batch)."""
    return jax.lax.map(lambda xi: embed_fn(params, xi[None])[0], x, batch_size=min(batch_size, x.shape[0]))


def init_cluster_state(params: Any, x: jax.Array, n_clusters: int, key: jax.Array, tx: optax.GradientTransformation,
                       embed_dim: int) -> dict:
    n = x.shape[0]
    return {
        "params": params,
        "opt_state": tx.init(params),
        "labels": jnp.zeros((n,), jnp.int32),
        "centers": jnp.zeros((n_clusters, embed_dim), jnp.float32),
        "iteration": jnp.zeros((), jnp.int32),
        "step": jnp.zeros((), jnp.int32),
        "done": jnp.zeros((), bool),
        "key": key,
    }


def make_chunk_fn(embed_fn: EmbedFn, tx: optax.GradientTransformation, *, n_clusters: int, steps_per_iter: int,
                  tol: float, kmeans_n_init: int, chunk_size: int) -> Callable:
    """``chunk(state, x, plan, max_iters) -> (state, records)``: up to ``chunk_size`` clustering
    iterations, jitted. ``plan`` is the mini-batch plan ``(indices, mask)`` of :func:`batch_plan`.

    Iterations after convergence or past ``max_iters`` are skipped (the state is unchanged and
    their record has ``ran=False``), so the iterations that ran come first in ``records``.
    """

    def greedy_loss(params, xb, target_b, mask, v):
        y = apply_transform(v, embed_fn(params, xb))
        return masked_mean(jnp.mean(jnp.square(y - target_b), axis=1), mask)

    def iteration(state, x, plan, max_iters):
        idx, mask = plan
        n = x.shape[0]
        key = jax.random.fold_in(state["key"], state["iteration"])
        z = embed_all(embed_fn, state["params"], x)
        first = state["iteration"] == 0
        warm = jnp.where(first, z[:n_clusters], state["centers"])
        km = kmeans(key, z, n_clusters, n_init=kmeans_n_init, init=warm)
        n_changed = jnp.where(first, n, count_changed_jax(state["labels"], km.labels, n_clusters))
        done = jnp.logical_and(~first, n_changed < tol * n)

        v, _ = orthogonal_transform(within_cluster_scatter(z, km.labels, km.centers))
        target = greedy_target(apply_transform(v, z), km.labels, apply_transform(v, km.centers))

        def sgd_step(carry, _):
            params, opt_state, step = carry
            b = step % idx.shape[0]
            loss, grads = jax.value_and_grad(greedy_loss)(params, x[idx[b]], target[idx[b]], mask[b], v)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, step + 1), loss

        def train(_):
            carry, losses = jax.lax.scan(sgd_step, (state["params"], state["opt_state"], state["step"]), None,
                                         length=steps_per_iter)
            return carry, jnp.mean(losses)

        last = jnp.logical_or(done, state["iteration"] + 1 >= max_iters)  # no steps after the final K-means
        (params, opt_state, step), loss = jax.lax.cond(
            last, lambda _: ((state["params"], state["opt_state"], state["step"]), jnp.float32(jnp.nan)), train, None)
        new_state = dict(state, params=params, opt_state=opt_state, step=step, labels=km.labels, centers=km.centers,
                         iteration=state["iteration"] + 1, done=done)
        record = {"n_changed": n_changed, "inertia": km.inertia, "loss": loss, "ran": jnp.ones((), bool)}
        return new_state, record

    @functools.partial(jax.jit, donate_argnums=(0,))
    def chunk_fn(state, x, plan, max_iters):
        def body(state, _):
            skip = lambda s: (s, {"n_changed": jnp.zeros((), jnp.int32), "inertia": jnp.float32(jnp.nan),
                                  "loss": jnp.float32(jnp.nan), "ran": jnp.zeros((), bool)})
            stop = jnp.logical_or(state["done"], state["iteration"] >= max_iters)
            return jax.lax.cond(stop, skip, lambda s: iteration(s, x, plan, max_iters), state)

        return jax.lax.scan(body, state, None, length=chunk_size)

    return chunk_fn


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
) -> ClusterResult:
    """Run the clustering phase (Algorithm 1) from pretrained encoder parameters.

    Args:
      embed_fn: ``(encoder_params, x_batch) -> z_batch``, e.g. ``lambda p, x: model.apply(
        {"params": p}, x, method=CAE.embed)``. Only ``params`` are trained.
      params: the encoder parameters (a pytree).
      x: all data (n, ...), kept on the device.
      tol: stop when fewer than ``tol * n`` points change cluster between iterations.
    """
    if max_iters < 1 or steps_per_iter < 0 or batch_size < 1 or chunk_size < 1:
        raise ValueError("max_iters, batch_size and chunk_size must be >= 1 and steps_per_iter >= 0")
    x = jnp.asarray(x, jnp.float32)
    tx = optax.adam(learning_rate, b1=0.9, b2=0.999)
    plan_key, loop_key = jax.random.split(key)
    plan = batch_plan(plan_key, x.shape[0], batch_size)
    embed_dim = jax.eval_shape(embed_fn, params, x[:1]).shape[-1]
    state = init_cluster_state(jax.tree.map(jnp.array, params), x, n_clusters, loop_key, tx, embed_dim)
    chunk_fn = make_chunk_fn(embed_fn, tx, n_clusters=n_clusters, steps_per_iter=steps_per_iter, tol=tol,
                             kmeans_n_init=kmeans_n_init, chunk_size=chunk_size)
    records = []
    bar = progress(total=max_iters, desc="cluster", unit="it", disable=not verbose)
    n_iter = 0
    while n_iter < max_iters and not bool(state["done"]):
        state, rec = chunk_fn(state, x, plan, jnp.int32(max_iters))
        rec = jax.device_get(rec)
        ran = int(rec["ran"].sum())  # iterations run in this chunk (they come first)
        records.append({k: v[:ran] for k, v in rec.items() if k != "ran"})
        n_iter += ran
        bar.update(ran)
        bar.set_postfix(changed=int(rec["n_changed"][ran - 1]), inertia=f"{float(rec['inertia'][ran - 1]):.4g}")
    bar.close()
    history = {k: np.concatenate([r[k] for r in records]) for k in ("n_changed", "inertia", "loss")}
    if np.any(~np.isfinite(history["inertia"])):
        raise FloatingPointError("the clustering phase produced a non-finite K-means loss; lower the learning rate")
    return ClusterResult(state["params"], np.asarray(state["labels"]), np.asarray(state["centers"]), n_iter,
                         bool(state["done"]), history)
