"""Reconstruction pretraining (Eq. 5): MSE, Adam, one ``lax.scan`` over the mini-batches per epoch.

The pure piece is :func:`make_epoch`: ``epoch(state, x, key, epoch, skip_weights) -> (state,
mean_loss)``, with the train state a plain dict ``{"params", "opt_state", "step"}``. Epoch ``e``
shuffles with ``fold_in(key, e)``; the ragged last batch is kept and masked, so every sample is
seen once per epoch (as Keras' ``fit`` does in the DEKM reference code). ``make_run`` scans it
over the epochs; :func:`drive_epochs` runs the same function one jitted epoch at a time with a
progress bar, checkpoints and, for data sets larger than memory, streaming.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .models import reconstruct
from .parallel import place_rows, place_runs, program_for, replicate, shard_batch, to_host
from .progress import progress


def batch_plan(key: jax.Array, n: int, batch_size: int, shuffle: bool = True) -> tuple[jax.Array, jax.Array]:
    """Indices ``(n_batches, batch_size)`` covering ``0..n-1`` once, and a 0/1 mask for padding."""
    n_batches = -(-n // batch_size)
    order = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
    pad = n_batches * batch_size - n
    idx = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(n_batches, batch_size)
    mask = (jnp.arange(n_batches * batch_size) < n).astype(jnp.float32).reshape(n_batches, batch_size)
    return idx, mask


class SyntheticImages:
    """A deterministic stream of ``n`` synthetic images (H, W, C) in [0, 1], generated on demand.

    Image ``i`` is a sum of a few Gaussian blobs placed by its class ``i % n_classes`` plus a
    little noise, so the data have cluster structure; slicing ``[lo:hi]`` makes only that slice
    (float32), so a million images cost no memory until asked for. Images are generated in blocks
    of 4096 from the block's position, so a slice is reproducible given its bounds. For the scale experiments
    (``experiments/scale.py``) and streamed-pretraining tests.
    """

    def __init__(self, n: int, image_shape: tuple[int, int, int] = (16, 16, 1), n_classes: int = 10, seed: int = 0):
        self.n, self.image_shape, self.n_classes, self.seed = int(n), tuple(image_shape), int(n_classes), int(seed)
        rng = np.random.default_rng(seed)
        h, w, _ = self.image_shape
        self._centres = rng.uniform(0.2, 0.8, size=(n_classes, 3, 2)) * np.array([h, w])
        self.shape = (self.n,) + self.image_shape
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.n

    def labels(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        return np.arange(lo, self.n if hi is None else hi) % self.n_classes

    def __getitem__(self, item) -> np.ndarray:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("SyntheticImages supports contiguous slices only")
        lo, hi, _ = item.indices(self.n)
        hi = max(hi, lo)
        h, w, c = self.image_shape
        out = np.empty((hi - lo, h, w, c), np.float32)
        yy, xx = (v.astype(np.float32) for v in np.mgrid[0:h, 0:w])
        for s in range(lo, hi, 4096):  # blocks: the generator's temporaries stay small
            e = min(s + 4096, hi)
            rng = np.random.default_rng([self.seed, s])  # a block's images depend on its position only
            idx = np.arange(s, e)
            centres = (self._centres[idx % self.n_classes] + rng.normal(0, 0.6, size=(e - s, 3, 2))).astype(np.float32)
            d2 = (yy - centres[..., 0, None, None]) ** 2 + (xx - centres[..., 1, None, None]) ** 2
            img = np.exp(-d2 / np.float32(2 * (0.12 * h) ** 2)).sum(axis=1)
            img += rng.normal(0, 0.05, size=img.shape).astype(np.float32)
            out[s - lo:e - lo] = np.clip(img / 1.5, 0, 1)[..., None]
        return out


@functools.lru_cache(maxsize=256)
def cached_jit(f: Callable, in_axes=None, donate: tuple = (), run_once: bool = False) -> Callable:
    """``jax.jit(f)``, or of ``jax.vmap(f, in_axes)`` when ``in_axes`` is given; one wrapper per
    (function, axes), so the host driver's programs (whose step functions are memoized per
    config, ``run.make_steps``) are compiled once per config and process.

    ``run_once``: a program that runs once per fit and does little work (the parameters'
    initialisation: a few threefry draws) is compiled at XLA's backend optimisation level 1 on
    CPU, where optimising the unrolled threefry hash fully costs seconds. Its results are
    bit-identical to the fully optimised program's (a test checks; level 0 is not: it rounds
    ``uniform(minval, maxval)``'s scaling differently)."""
    opts = {"xla_backend_optimization_level": 1} if run_once and jax.default_backend() == "cpu" else None
    return jax.jit(f if in_axes is None else jax.vmap(f, in_axes=in_axes), donate_argnums=donate,
                   compiler_options=opts)


def masked_mean(per_sample: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(per_sample * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def reconstruction_loss(params: dict, x: jax.Array, mask: jax.Array, skip_weights=None, **model_opts):
    """Mean squared reconstruction error over the unmasked samples of a batch (``model_opts``:
    ``activation``, ``conv``, ``precision`` of :func:`~sdekc_jax.models.encode`)."""
    x_hat, _ = reconstruct(params, x, skip_weights, **model_opts)
    per_sample = jnp.mean(jnp.square(x_hat - x).reshape(x.shape[0], -1), axis=1)
    return masked_mean(per_sample, mask)


def adam(learning_rate: float, eps: float = 1e-8) -> optax.GradientTransformation:
    """The paper's optimiser: ``optax.adam(learning_rate, b1=0.9, b2=0.999, eps=eps)``."""
    return optax.adam(learning_rate, b1=0.9, b2=0.999, eps=eps)


def init_state(params: Any, tx: optax.GradientTransformation) -> dict:
    return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}


def make_epoch(tx: optax.GradientTransformation, batch_size: int, **model_opts) -> Callable:
    """``epoch(state, x, key, epoch, skip_weights) -> (state, mean_loss)``: one pass over ``x``
    in shuffled mini-batches (pure; jit or vmap it as you like). ``model_opts``: ``activation``,
    ``conv``, ``precision`` of :func:`~sdekc_jax.models.encode`."""

    def epoch_fn(state, x, key, epoch, skip_weights=None):
        idx, mask = batch_plan(jax.random.fold_in(key, epoch), x.shape[0], batch_size)

        def step(state, batch):
            b_idx, b_mask = batch
            xb = shard_batch(x[b_idx])  # data-parallel over the active mesh, if any (sdekc_jax.parallel)
            loss_fn = lambda p: reconstruction_loss(p, xb, b_mask, skip_weights, **model_opts)
            loss, grads = jax.value_and_grad(loss_fn)(state["params"])
            updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
            params = optax.apply_updates(state["params"], updates)
            return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, loss * jnp.sum(b_mask)

        state, losses = jax.lax.scan(step, state, (idx, mask))
        return state, jnp.sum(losses) / x.shape[0]

    return epoch_fn


def stack_trees(trees: list) -> Any:
    """One pytree whose leaves have a new leading axis (``trees[i]`` is entry ``i``)."""
    return jax.tree.map(lambda *v: jnp.stack(v), *trees)


def unstack_tree(tree: Any, i: int) -> Any:
    """Entry ``i`` of a pytree with a leading axis (see :func:`stack_trees`)."""
    return jax.tree.map(lambda v: v[i], tree)


def drive_epochs(epoch_fn: Callable, state: dict, x, key: jax.Array, skip_weights=None, *, epochs: int,
                 batched: bool = False, chunk_size: int | None = None, checkpoint=None, verbose: bool = True,
                 callback: Callable[[int, dict, Any], None] | None = None) -> tuple[dict, np.ndarray]:
    """Run ``epoch_fn`` (from :func:`make_epoch`) for ``epochs`` epochs on the host: one jitted
    epoch at a time, with a progress bar, ``callback(epoch, state, loss)`` and checkpoints.

    ``batched``: ``state``, ``key`` and ``skip_weights`` carry a leading run axis (runs in
    parallel under ``jax.vmap``; ``x`` is shared); the losses are then (runs, epochs).

    ``checkpoint`` (a :class:`~sdekc_jax.checkpoint.Checkpointer`): when its file exists the
    epochs continue from it; the state is saved every ``checkpoint.every`` epochs and after the
    last. Epoch ``e`` shuffles with ``fold_in(key, e)``, so a resumed run computes exactly what an
    uninterrupted one does. A non-finite loss raises before anything is saved.

    ``chunk_size``: stream the data instead of holding it on the device. ``x`` may then be any
    array-like with ``len`` and slicing (``np.memmap``, an ``h5py`` data set,
    :class:`SyntheticImages`); each epoch visits its chunks of ``chunk_size`` images in an order
    drawn from ``fold_in(key, epoch)`` and shuffles the mini-batches within a chunk, so memory is
    bounded by a chunk. ``chunk_size >= len(x)`` is the in-memory run.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    axes = (0, None, 0, None, None if skip_weights is None else 0) if batched else None
    n = len(x)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    state = jax.tree.map(jnp.array, state)  # copy: the epochs donate their state
    # on the active mesh (sdekc_jax.parallel): replicated, or split by runs
    state, key, skip_weights = place_runs((state, key, skip_weights))
    if chunk_size is None or chunk_size >= n:
        rows = place_rows(x)  # replicated or sharded by rows on the active mesh (sdekc_jax.parallel)
        jitted = cached_jit(program_for(epoch_fn, 1, rows), axes, (0,))
        run_epoch = lambda state, epoch: jitted(state, rows.array, key, epoch, skip_weights)
    else:
        jitted = cached_jit(epoch_fn, axes, (0,))
        bounds = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
        first_key = key[0] if batched else key

        def run_epoch(state, epoch):
            total, pending = 0.0, None
            for c in np.asarray(jax.random.permutation(jax.random.fold_in(first_key, epoch), len(bounds))):
                lo, hi = bounds[c]
                xc = replicate(jnp.asarray(np.asarray(x[lo:hi]), jnp.float32))  # read while the last chunk trains
                if pending is not None:  # back-pressure: at most two chunks alive (dispatch is asynchronous)
                    pending.block_until_ready()
                state, loss = jitted(state, xc, key, epoch * len(bounds) + int(c), skip_weights)
                total, pending = total + loss * (hi - lo), loss
            return state, total / n
    losses, start = [], 0
    if checkpoint is not None and checkpoint.exists():
        state, meta, extra = checkpoint.load(state)
        state = place_runs(state)
        losses, start = list(np.asarray(extra["losses"], np.float64)), int(meta["epoch"]) + 1
        if start > epochs:
            raise ValueError(f"checkpoint {checkpoint.path} is at epoch {start}, past this run's {epochs} epochs")
    bar = progress(range(start, epochs), desc="pretrain", unit="epoch", disable=not verbose, initial=start, total=epochs)
    for epoch in bar:
        state, loss = run_epoch(state, epoch)
        loss = np.asarray(to_host(loss), np.float64)
        if not np.all(np.isfinite(loss)):
            which = f" (run {int(np.flatnonzero(~np.isfinite(loss))[0])})" if batched else ""
            raise FloatingPointError(f"pretraining loss became {loss.ravel()[~np.isfinite(loss.ravel())][0]} at epoch "
                                     f"{epoch}{which}; lower the learning rate")
        losses.append(loss)
        bar.set_postfix(mse=f"{float(np.max(loss)):.5f}")
        if callback is not None:
            callback(epoch, state, loss)
        if checkpoint is not None and (checkpoint.due(epoch + 1) or epoch + 1 == epochs):
            checkpoint.save(state, {"phase": "pretrain", "epoch": epoch, "epochs": epochs}, {"losses": np.asarray(losses)})
    losses = np.asarray(losses, np.float64)
    if batched:
        losses = losses.reshape(len(losses), -1).T  # (runs, epochs)
    return state, losses


def pretrain(params: dict, x, key: jax.Array, *, skip_weights=None, activation: str = "relu", conv: str = "auto",
             precision: str = "float32", epochs: int = 200, batch_size: int = 256, learning_rate: float = 1e-3,
             verbose: bool = True, checkpoint=None, chunk_size: int | None = None,
             callback: Callable | None = None) -> tuple[dict, np.ndarray]:
    """Pretrain ``params`` (``{"encoder", "decoder"}``, see :func:`~sdekc_jax.models.init_params`)
    on reconstruction MSE with Adam; returns the trained parameters and the per-epoch mean loss.
    ``activation``, ``conv``, ``precision``: as in :func:`~sdekc_jax.models.encode`.
    The host-driven form of the pretraining inside ``make_run`` (see :func:`drive_epochs` for
    ``checkpoint``, ``chunk_size`` and ``callback``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tx = adam(learning_rate)
    epoch = make_epoch(tx, batch_size, activation=activation, conv=conv, precision=precision)
    state, losses = drive_epochs(epoch, init_state(params, tx), x, key,
                                 None if skip_weights is None else jnp.asarray(skip_weights, jnp.float32),
                                 epochs=epochs, chunk_size=chunk_size, checkpoint=checkpoint, verbose=verbose,
                                 callback=callback)
    return state["params"], losses
