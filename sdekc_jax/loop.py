"""The one clustering-phase training loop that every method shares.

Deep clustering methods that fine-tune an encoder alternate two things: *refresh* (look at all the
data with the current parameters, assign labels and fix per-point targets) and *train* (take
mini-batch optimiser steps towards those targets). They differ only in what the refresh computes
and in the loss:

========  ===========================================  ===========================================
method    refresh                                      loss of a mini-batch
========  ===========================================  ===========================================
DEKM /    embed all, K-means, S_w, eigh -> V, greedy   ``||V enc(x) - y'||^2`` (Algorithm 1,
SDEKC     targets y' (:mod:`sdekc_jax.algorithm`)       :mod:`sdekc_jax.algorithm`)
DEC /     embed all, Student-t q, target p = q^2/f     ``KL(p || q)`` (+ reconstruction for IDEC),
IDEC      (:mod:`sdekc_jax.dec`)                        :mod:`sdekc_jax.dec`
========  ===========================================  ===========================================

so this module holds the loop once: ``iteration = refresh, stop test, steps_per_iter steps``; the
stop test is "fewer than ``tol * n`` labels changed since the previous refresh" (never on the
first refresh), and the final iteration (converged or at ``max_iters``) takes no steps, so the
returned labels always belong to the returned parameters.

The loop is pure: :func:`make_advance` gives ``advance(state, x, skip_weights, limit)``, a
``lax.while_loop`` over iterations until the stop rule or ``limit`` iterations; the state (a dict:
parameters, optimiser state, labels, counters, PRNG key, mini-batch plan and a fixed-size
history of ``max_iters`` entries) carries everything. ``make_run`` calls it once with
``limit = max_iters``; the host driver :func:`drive_loop` calls the same function with limits
``chunk_size`` apart, reporting progress and saving checkpoints in between.

A refresh is ``refresh(params, x, aux, prev_labels, first, key, skip_weights) -> Refresh`` and a
loss is ``loss(params, x_batch, targets_batch, mask_batch, consts, skip_weights) -> scalar``;
``targets`` is a pytree
of per-point arrays (leading axis n) that the steps index by mini-batch, ``consts`` is anything
fixed for the iteration (e.g. the transform V), ``aux`` is carried from refresh to refresh
(e.g. the last K-means centres, for a warm start).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .parallel import place_rows, place_runs, program_for, shard_batch, to_host
from .pretrain import batch_plan, cached_jit
from .progress import progress


class Refresh(NamedTuple):
    labels: jax.Array      # (n,) int32 labels after this refresh
    n_changed: jax.Array   # () int32 labels changed since the previous refresh (ignored on the first)
    targets: Any           # pytree of (n, ...) per-point targets for this iteration's steps
    consts: Any            # pytree fixed for this iteration's steps
    aux: Any               # carried to the next refresh
    record: dict           # per-iteration scalars to report (e.g. the K-means loss)


def init_loop_state(params: Any, tx: optax.GradientTransformation, labels: jax.Array, aux: Any, key: jax.Array, *,
                    n: int, batch_size: int, max_iters: int, record_names: tuple[str, ...] = (),
                    record_labels: bool = False, shuffle: bool = True) -> dict:
    """The state before the first iteration. ``key`` draws the fixed mini-batch order (with
    ``shuffle=False``: the stored order) and every refresh's randomness (``fold_in(key,
    iteration)``). The history has ``max_iters`` entries: ``n_changed`` (-1 where no iteration
    ran), ``loss`` and each of ``record_names`` (NaN where none ran; the final iteration takes no
    steps, so its loss is NaN) and, with ``record_labels``, every refresh's labels
    (``(max_iters, n)``, -1 where none ran)."""
    plan_key, loop_key = jax.random.split(key)
    idx, mask = batch_plan(plan_key, n, batch_size, shuffle)
    nan = jnp.full((max_iters,), jnp.nan, jnp.float32)
    history = {"n_changed": jnp.full((max_iters,), -1, jnp.int32), "loss": nan, **{k: nan for k in record_names}}
    if record_labels:
        history["labels"] = jnp.full((max_iters, n), -1, jnp.int32)
    labels = jnp.asarray(labels, jnp.int32)
    return {"params": params, "opt_state": tx.init(params), "labels": labels, "first_labels": labels, "aux": aux,
            "iteration": jnp.zeros((), jnp.int32), "step": jnp.zeros((), jnp.int32), "done": jnp.zeros((), bool),
            "key": loop_key, "plan": (idx, mask), "history": history}


def make_advance(refresh: Callable, loss: Callable, tx: optax.GradientTransformation, *, steps_per_iter: int,
                 tol: float) -> Callable:
    """``advance(state, x, skip_weights, limit) -> state``: iterations (refresh, stop test,
    ``steps_per_iter`` steps) while the run has not stopped and fewer than ``limit`` have run.
    Pure: jit it, vmap it over runs, or call it inside a bigger program. ``limit`` may be traced;
    it must not exceed the history's length (``max_iters``)."""

    def iteration(state, x, skip_weights):
        idx, mask = state["plan"]
        n = x.shape[0]
        it = state["iteration"]
        first = it == 0
        r = refresh(state["params"], x, state["aux"], state["labels"], first, jax.random.fold_in(state["key"], it),
                    skip_weights)
        labels = r.labels.astype(jnp.int32)
        n_changed = jnp.where(first, n, r.n_changed).astype(jnp.int32)
        done = jnp.logical_and(~first, n_changed < tol * n)
        max_iters = state["history"]["n_changed"].shape[0]

        def sgd_step(carry, _):
            params, opt_state, step = carry
            b = step % idx.shape[0]
            batch_targets = jax.tree.map(lambda t: t[idx[b]], r.targets)
            xb = shard_batch(x[idx[b]])  # data-parallel over the active mesh, if any (sdekc_jax.parallel)
            value, grads = jax.value_and_grad(loss)(params, xb, batch_targets, mask[b], r.consts, skip_weights)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, step + 1), value

        def train(_):
            carry, losses = jax.lax.scan(sgd_step, (state["params"], state["opt_state"], state["step"]), None,
                                         length=steps_per_iter)
            return carry, jnp.mean(losses) if steps_per_iter else jnp.float32(jnp.nan)

        last = jnp.logical_or(done, it + 1 >= max_iters)  # no steps after the final refresh
        (params, opt_state, step), mean_loss = jax.lax.cond(
            last, lambda _: ((state["params"], state["opt_state"], state["step"]), jnp.float32(jnp.nan)), train, None)
        hist = dict(state["history"])
        for k, v in {"n_changed": n_changed, "loss": mean_loss, **r.record}.items():
            hist[k] = hist[k].at[it].set(jnp.asarray(v, hist[k].dtype))
        if "labels" in hist:
            hist["labels"] = hist["labels"].at[it].set(labels)
        return dict(state, params=params, opt_state=opt_state, step=step, labels=labels, aux=r.aux, iteration=it + 1,
                    done=done, history=hist, first_labels=jnp.where(first, labels, state["first_labels"]))

    def advance(state, x, skip_weights, limit):
        limit = jnp.minimum(limit, state["history"]["n_changed"].shape[0])
        return jax.lax.while_loop(lambda s: jnp.logical_and(~s["done"], s["iteration"] < limit),
                                  lambda s: iteration(s, x, skip_weights), state)

    return advance


def history_of(state: dict, n_iter: int | None = None) -> dict:
    """The host-side history of one run: each entry cut to the iterations that ran."""
    hist = to_host(state["history"])
    n_iter = int(to_host(state["iteration"])) if n_iter is None else n_iter
    return {k: np.asarray(v[:n_iter]) for k, v in hist.items()}


def _check_finite(state: dict, lo: np.ndarray, batched: bool) -> None:
    hist = to_host(state["history"])
    its = np.atleast_1d(to_host(state["iteration"]))
    for r in range(its.shape[0]):
        for k, v in hist.items():
            v = np.asarray(v[r] if batched else v)
            if not np.issubdtype(v.dtype, np.floating):
                continue
            seen = v[int(lo[r]):int(its[r])]
            if k == "loss" and seen.size:
                seen = seen[:-1]  # the last iteration run so far may be the final one: it takes no steps
            if not np.all(np.isfinite(seen)):
                raise FloatingPointError(f"the clustering phase produced a non-finite {k}"
                                         f"{f' (run {r})' if batched else ''}; lower the learning rate")


def drive_loop(advance: Callable, state: dict, x: jax.Array, skip_weights=None, *, max_iters: int,
               chunk_size: int = 10, batched: bool = False, checkpoint=None, verbose: bool = True,
               desc: str = "cluster") -> dict:
    """Run ``advance`` (from :func:`make_advance`) to the end on the host, ``chunk_size``
    iterations per compiled call, with a progress bar and checkpoints.

    ``batched``: the state (and ``skip_weights``, unless None) carry a leading run axis (runs in
    parallel under ``jax.vmap``, each with its own stop test; ``x`` is shared); the chunks run
    until every run has stopped.

    ``checkpoint`` (a :class:`~sdekc_jax.checkpoint.Checkpointer`): when its file exists the loop
    continues from it; the whole state is saved after every ``checkpoint.every`` chunks and at the
    end. Chunks end at multiples of ``chunk_size`` iterations and every random draw is
    ``fold_in(key, iteration)``, so a resumed loop ends exactly where an uninterrupted one does.
    A chunk that produced a non-finite value raises before it is saved.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    rows = place_rows(x)  # on the active mesh, if any: replicated or sharded by rows (sdekc_jax.parallel)
    jitted = cached_jit(program_for(advance, 1, rows),
                        (0, None, None if skip_weights is None else 0, None) if batched else None, (0,))
    x = rows.array
    state = jax.tree.map(jnp.array, state)  # copy: the chunks donate their state
    state, skip_weights = place_runs((state, skip_weights))  # on the active mesh: replicated or split by runs
    n_chunks = 0
    if checkpoint is not None and checkpoint.exists():
        state, meta, _ = checkpoint.load(state)
        state = place_runs(state)
        n_chunks = int(meta["n_chunks"])
    its = lambda: np.atleast_1d(to_host(state["iteration"]))
    running = lambda: ~np.atleast_1d(to_host(state["done"])) & (its() < max_iters)
    bar = progress(total=max_iters, desc=desc, unit="it", disable=not verbose, initial=int(its().max()))
    while running().any():
        before = its()
        limit = min(int(before[running()].max()) // chunk_size * chunk_size + chunk_size, max_iters)
        state = jitted(state, x, skip_weights, jnp.int32(limit))
        _check_finite(state, before, batched)
        n_chunks += 1
        if checkpoint is not None and (checkpoint.due(n_chunks) or not running().any()):
            checkpoint.save(state, {"phase": desc, "n_iter": its().tolist(), "n_chunks": n_chunks})
        bar.update(int(its().max()) - int(before.max()))
        changed = np.asarray(to_host(state["history"]["n_changed"]))
        if batched:
            bar.set_postfix(running=f"{int(running().sum())}/{len(its())}")
        elif its()[0]:
            bar.set_postfix(changed=int(changed[its()[0] - 1]))
    bar.close()
    return state
