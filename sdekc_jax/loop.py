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
returned labels always belong to the returned parameters. Iterations run in jitted chunks of
``chunk_size`` (a ``lax.scan`` with the state donated); progress is reported between chunks.

A refresh is ``refresh(params, x, aux, prev_labels, first, key) -> Refresh`` and a loss is
``loss(params, x_batch, targets_batch, mask_batch, consts) -> scalar``; ``targets`` is a pytree
of per-point arrays (leading axis n) that the steps index by mini-batch, ``consts`` is anything
fixed for the iteration (e.g. the transform V), ``aux`` is carried from refresh to refresh
(e.g. the last K-means centres, for a warm start).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .pretrain import batch_plan
from .parallel import replicate, shard_batch
from .progress import progress


class Refresh(NamedTuple):
    labels: jax.Array      # (n,) int32 labels after this refresh
    n_changed: jax.Array   # () int32 labels changed since the previous refresh (ignored on the first)
    targets: Any           # pytree of (n, ...) per-point targets for this iteration's steps
    consts: Any            # pytree fixed for this iteration's steps
    aux: Any               # carried to the next refresh
    record: dict           # per-iteration scalars to report (e.g. the K-means loss)


class LoopResult(NamedTuple):
    params: Any            # trained parameters
    labels: np.ndarray     # (n,) labels of the final refresh
    aux: Any               # the final refresh's aux (e.g. K-means centres)
    n_iter: int            # refreshes run
    converged: bool        # stopped by the tolerance, not by max_iters
    history: dict          # per-iteration arrays: n_changed, loss (mean over the steps) and the records


def init_loop_state(params: Any, tx: optax.GradientTransformation, labels: jax.Array, aux: Any, key: jax.Array) -> dict:
    return {
        "params": params,
        "opt_state": tx.init(params),
        "labels": jnp.asarray(labels, jnp.int32),
        "aux": aux,
        "iteration": jnp.zeros((), jnp.int32),
        "step": jnp.zeros((), jnp.int32),
        "done": jnp.zeros((), bool),
        "key": key,
    }


def make_chunk_fn(refresh: Callable, loss: Callable, tx: optax.GradientTransformation, *, steps_per_iter: int,
                  tol: float, chunk_size: int, record_labels: bool = False, vmapped: bool = False,
                  max_traces: int | None = None) -> Callable:
    """``chunk(state, x, plan, max_iters) -> (state, records)``: up to ``chunk_size`` iterations,
    jitted. ``plan`` is the mini-batch plan ``(indices, mask)`` of :func:`pretrain.batch_plan`;
    the steps cycle through it (the step counter carries over between iterations).

    Iterations after convergence or past ``max_iters`` are skipped (the state is unchanged and
    their record has ``ran=False``), so the iterations that ran come first in ``records``.
    ``record_labels=True`` adds each refresh's labels (n,) to its record (for curves of ACC/NMI
    over the iterations; memory ``chunk_size * n`` per chunk, ``n_iter * n`` in the history).

    ``vmapped=True``: ``state`` and ``plan`` carry a leading axis (one run per entry, e.g. per
    seed; ``x`` and ``max_iters`` are shared) and so do the records. A run that has stopped skips
    its iterations (its state is unchanged) while the others continue.

    ``max_traces``: wrap the chunk in ``chex.assert_max_traces`` (one compilation should serve
    every chunk of a run; a retrace, e.g. a state leaf that changed dtype, then raises instead of
    silently recompiling). chex counts traces per definition site, so this is for tests and
    debugging: each call of this function creates a new chunk function.
    """

    def iteration(state, x, plan, max_iters):
        idx, mask = plan
        n = x.shape[0]
        key = jax.random.fold_in(state["key"], state["iteration"])
        first = state["iteration"] == 0
        r = refresh(state["params"], x, state["aux"], state["labels"], first, key)
        n_changed = jnp.where(first, n, r.n_changed).astype(jnp.int32)
        done = jnp.logical_and(~first, n_changed < tol * n)

        def sgd_step(carry, _):
            params, opt_state, step = carry
            b = step % idx.shape[0]
            batch_targets = jax.tree.map(lambda t: t[idx[b]], r.targets)
            xb = shard_batch(x[idx[b]])  # data-parallel over the active mesh, if any (sdekc_jax.parallel)
            value, grads = jax.value_and_grad(loss)(params, xb, batch_targets, mask[b], r.consts)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, step + 1), value

        def train(_):
            carry, losses = jax.lax.scan(sgd_step, (state["params"], state["opt_state"], state["step"]), None,
                                         length=steps_per_iter)
            return carry, jnp.mean(losses)

        last = jnp.logical_or(done, state["iteration"] + 1 >= max_iters)  # no steps after the final refresh
        (params, opt_state, step), mean_loss = jax.lax.cond(
            last, lambda _: ((state["params"], state["opt_state"], state["step"]), jnp.float32(jnp.nan)), train, None)
        new_state = dict(state, params=params, opt_state=opt_state, step=step, labels=r.labels.astype(jnp.int32),
                         aux=r.aux, iteration=state["iteration"] + 1, done=done)
        record = {"n_changed": n_changed, **r.record, "loss": mean_loss, "ran": jnp.ones((), bool)}
        if record_labels:
            record["labels"] = r.labels.astype(jnp.int32)
        return new_state, record

    def chunk_fn(state, x, plan, max_iters):
        shapes = jax.eval_shape(lambda s: iteration(s, x, plan, max_iters)[1], state)
        # a skipped iteration records zeros for integers, NaN for floats and ran=False
        blank = {k: jnp.full(s.shape, jnp.nan if jnp.issubdtype(s.dtype, jnp.floating) else 0, s.dtype)
                 for k, s in shapes.items()}

        def body(state, _):
            stop = jnp.logical_or(state["done"], state["iteration"] >= max_iters)
            return jax.lax.cond(stop, lambda s: (s, blank), lambda s: iteration(s, x, plan, max_iters), state)

        return jax.lax.scan(body, state, None, length=chunk_size)

    if max_traces is not None:  # guard against recompilation (tests; see the docstring)
        chunk_fn = chex.assert_max_traces(chunk_fn, n=max_traces)
    if vmapped:
        chunk_fn = jax.vmap(chunk_fn, in_axes=(0, None, 0, None))
    return jax.jit(chunk_fn, donate_argnums=(0,))


def _check_finite(record: dict, last: bool) -> None:
    for k, v in record.items():
        finite = v[:-1] if (k == "loss" and last) else v  # the final iteration takes no steps: its loss is NaN
        if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(finite)):
            raise FloatingPointError(f"the clustering phase produced a non-finite {k}; lower the learning rate")


def _concat(records: list[dict]) -> dict:
    return {k: np.concatenate([r[k] for r in records]) for k in records[0]}


def run_loop(refresh: Callable, loss: Callable, params: Any, x: jax.Array, key: jax.Array, *,
             tx: optax.GradientTransformation, init_labels: jax.Array, init_aux: Any, max_iters: int,
             steps_per_iter: int, batch_size: int, tol: float, chunk_size: int = 10, desc: str = "cluster",
             verbose: bool = True, record_labels: bool | str = False, checkpoint=None, vmapped: bool = False) -> LoopResult:
    """Run refresh/train iterations from ``params`` until the stop rule or ``max_iters``.

    The mini-batches are one fixed shuffled order of the data (drawn from ``key``), cycled; the
    last batch of the order is padded and masked, so every point has the same weight.
    ``record_labels=True`` keeps every refresh's labels in ``history["labels"]`` (n_iter, n);
    ``"first"`` keeps only the first refresh's (1, n): the labels of the initial embedding, at a
    host memory cost that does not grow with the iterations.

    ``checkpoint`` (a :class:`~sdekc_jax.checkpoint.Checkpointer`): when its file exists the loop
    continues from it; the whole loop state (parameters, optimiser state, labels, aux, counters,
    PRNG key) and the history so far are saved after every ``checkpoint.every`` chunks and at the
    end. Chunks always start at multiples of ``chunk_size`` iterations and every random draw is
    ``fold_in(key, iteration)``, so a resumed loop ends exactly where an uninterrupted one does.
    A chunk that produced a non-finite value raises before it is saved (the last good checkpoint
    stays).

    ``vmapped=True`` runs S loops at once in one compiled program (e.g. one per seed):
    ``params``, ``init_labels`` (S, n) and ``init_aux`` carry a leading axis S and ``key`` is an
    array of S keys; ``x`` is shared. Each loop keeps its own stop test: one that has stopped
    stops changing while the others continue, and the chunks run until all have stopped. The
    result has the same leading axis (``n_iter`` and ``converged`` are arrays (S,)) and
    ``history`` is a list of S dicts.
    """
    if max_iters < 1 or steps_per_iter < 0 or batch_size < 1 or chunk_size < 1:
        raise ValueError("max_iters, batch_size and chunk_size must be >= 1 and steps_per_iter >= 0")
    if record_labels not in (False, True, "first"):
        raise ValueError(f"record_labels must be False, True or 'first', got {record_labels!r}")
    x = jnp.asarray(x, jnp.float32)
    split = jax.vmap(jax.random.split) if vmapped else jax.random.split
    keys = split(key)
    plan_key, loop_key = (keys[:, 0], keys[:, 1]) if vmapped else (keys[0], keys[1])
    plan = (jax.vmap(lambda k: batch_plan(k, x.shape[0], batch_size)) if vmapped else
            (lambda k: batch_plan(k, x.shape[0], batch_size)))(plan_key)
    # copies: the chunks donate their state, the caller keeps its arrays
    init = lambda p, l, a, k: init_loop_state(p, tx, l, a, k)
    state = (jax.vmap(init) if vmapped else init)(jax.tree.map(jnp.array, params), jnp.array(init_labels),
                                                  jax.tree.map(jnp.array, init_aux), loop_key)
    chunk_fn = make_chunk_fn(refresh, loss, tx, steps_per_iter=steps_per_iter, tol=tol, chunk_size=chunk_size,
                             record_labels=record_labels, vmapped=vmapped)
    state, x, plan = replicate((state, x, plan))  # on every device of the active mesh (sdekc_jax.parallel)
    n_runs = int(np.shape(loop_key)[0]) if vmapped else 1
    records: list[list[dict]] = [[] for _ in range(n_runs)]  # per run, per chunk
    n_iter = np.zeros(n_runs, np.int64)
    n_chunks = 0
    if checkpoint is not None and checkpoint.exists():
        state, meta, extra = checkpoint.load(state)
        n_iter, n_chunks = np.asarray(meta["n_iter"], np.int64).reshape(n_runs), int(meta["n_chunks"])
        for i in range(n_runs):
            hist = {k.split("@")[0]: v for k, v in extra.items() if not vmapped or k.endswith(f"@{i}")}
            if hist:
                records[i].append(hist)
    done = lambda: np.asarray(state["done"]).reshape(n_runs) | (n_iter >= max_iters)
    bar = progress(total=max_iters, desc=desc, unit="it", disable=not verbose, initial=int(n_iter.max()))
    while not done().all():
        before = int(n_iter.max())
        state, rec = chunk_fn(state, x, plan, jnp.int32(max_iters))
        rec = jax.device_get(rec)
        if not vmapped:
            rec = {k: v[None] for k, v in rec.items()}
        stopped = np.asarray(state["done"]).reshape(n_runs)
        for i in range(n_runs):
            ran = int(rec["ran"][i].sum())  # iterations run in this chunk (they come first)
            if ran == 0:
                continue
            records[i].append({k: v[i, :ran] for k, v in rec.items() if k != "ran"})
            if record_labels == "first":  # only iteration 0's (the first chunk's first entry)
                records[i][-1]["labels"] = records[i][-1]["labels"][:max(0, 1 - int(n_iter[i]))]
            _check_finite(records[i][-1], last=bool(stopped[i]) or n_iter[i] + ran >= max_iters)
            n_iter[i] += ran
        n_chunks += 1
        if checkpoint is not None and (checkpoint.due(n_chunks) or done().all()):
            hists = [_concat(r) for r in records]
            extra = ({f"{k}@{i}": v for i, h in enumerate(hists) for k, v in h.items()} if vmapped else hists[0])
            checkpoint.save(state, {"phase": desc, "n_iter": n_iter.tolist() if vmapped else int(n_iter[0]),
                                    "n_chunks": n_chunks}, extra)
        bar.update(int(n_iter.max()) - before)
        last = {k: v[:, :int(rec["ran"][0].sum())] for k, v in rec.items()}
        post = {k: (f"{float(v[0, -1]):.4g}" if np.issubdtype(v.dtype, np.floating) else int(v[0, -1]))
                for k, v in last.items() if k not in ("ran", "loss", "labels") and v.shape[1]}
        if vmapped:
            post = {"running": f"{int((~done()).sum())}/{n_runs}"}
        bar.set_postfix(post)
    bar.close()
    histories = [_concat(r) for r in records]
    if vmapped:
        return LoopResult(state["params"], np.asarray(state["labels"]), jax.device_get(state["aux"]), n_iter,
                          np.asarray(state["done"]), histories)
    return LoopResult(state["params"], np.asarray(state["labels"]), jax.device_get(state["aux"]), int(n_iter[0]),
                      bool(state["done"]), histories[0])
