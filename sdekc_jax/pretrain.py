"""Reconstruction pretraining (Eq. 5): MSE, Adam, one jitted ``lax.scan`` per epoch.

The train state is a plain dict ``{"params", "opt_state", "step"}``. Each epoch shuffles
with ``fold_in(key, epoch)``; the ragged last batch is kept and masked, so every sample is
seen once per epoch (as Keras' ``fit`` does in the DEKM reference code).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .progress import progress


def batch_plan(key: jax.Array, n: int, batch_size: int, shuffle: bool = True) -> tuple[jax.Array, jax.Array]:
    """Indices ``(n_batches, batch_size)`` covering ``0..n-1`` once, and a 0/1 mask for padding."""
    n_batches = -(-n // batch_size)
    order = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
    pad = n_batches * batch_size - n
    idx = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(n_batches, batch_size)
    mask = (jnp.arange(n_batches * batch_size) < n).astype(jnp.float32).reshape(n_batches, batch_size)
    return idx, mask


def masked_mean(per_sample: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(per_sample * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def reconstruction_loss(model, params, x, mask):
    """Mean squared reconstruction error over the unmasked samples of a batch."""
    x_hat, _ = model.apply({"params": params}, x)
    per_sample = jnp.mean(jnp.square(x_hat - x).reshape(x.shape[0], -1), axis=1)
    return masked_mean(per_sample, mask)


def init_state(params: Any, tx: optax.GradientTransformation) -> dict:
    return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}


def make_epoch_fn(model, tx: optax.GradientTransformation, batch_size: int) -> Callable:
    """``epoch(state, x, key, epoch) -> (state, mean_loss)``: one pass over ``x``, jitted."""

    @functools.partial(jax.jit, donate_argnums=(0,))
    def epoch_fn(state, x, key, epoch):
        idx, mask = batch_plan(jax.random.fold_in(key, epoch), x.shape[0], batch_size)

        def step(state, batch):
            b_idx, b_mask = batch
            loss, grads = jax.value_and_grad(lambda p: reconstruction_loss(model, p, x[b_idx], b_mask))(state["params"])
            updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
            params = optax.apply_updates(state["params"], updates)
            return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, loss * jnp.sum(b_mask)

        state, losses = jax.lax.scan(step, state, (idx, mask))
        return state, jnp.sum(losses) / x.shape[0]

    return epoch_fn


def pretrain(
    model,
    params: Any,
    x: jax.Array,
    key: jax.Array,
    *,
    epochs: int = 200,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    verbose: bool = True,
    callback: Callable[[int, dict, float], None] | None = None,
    checkpoint=None,
) -> tuple[Any, np.ndarray]:
    """Pretrain ``model`` on reconstruction MSE with Adam (lr, b1=0.9, b2=0.999), or ``optimizer``.

    Returns the trained parameters and the per-epoch mean loss. ``callback(epoch, state, loss)``
    runs on the host after each epoch.

    ``checkpoint`` (a :class:`~sdekc_jax.checkpoint.Checkpointer`): when its file exists the run
    continues from the saved epoch; the state is saved every ``checkpoint.every`` epochs and after
    the last. Epoch ``e`` shuffles with ``fold_in(key, e)``, so a resumed run computes exactly what
    an uninterrupted one does. A non-finite loss raises before anything is saved: the last good
    checkpoint stays.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tx = optimizer if optimizer is not None else optax.adam(learning_rate, b1=0.9, b2=0.999)
    state = init_state(jax.tree.map(jnp.array, params), tx)  # copy: the epoch donates its state
    epoch_fn = make_epoch_fn(model, tx, batch_size)
    x = jnp.asarray(x, jnp.float32)
    losses, start = [], 0
    if checkpoint is not None and checkpoint.exists():
        state, meta, extra = checkpoint.load(state)
        losses, start = [float(v) for v in extra["losses"]], int(meta["epoch"]) + 1
        if start > epochs:
            raise ValueError(f"checkpoint {checkpoint.path} is at epoch {start}, past this run's {epochs} epochs")
    bar = progress(range(start, epochs), desc="pretrain", unit="epoch", disable=not verbose,
                   initial=start, total=epochs)
    for epoch in bar:
        state, loss = epoch_fn(state, x, key, epoch)
        loss = float(loss)
        if not np.isfinite(loss):
            raise FloatingPointError(f"pretraining loss became {loss} at epoch {epoch}; lower the learning rate")
        losses.append(loss)
        bar.set_postfix(mse=f"{loss:.5f}")
        if callback is not None:
            callback(epoch, state, loss)
        if checkpoint is not None and (checkpoint.due(epoch + 1) or epoch + 1 == epochs):
            checkpoint.save(state, {"phase": "pretrain", "epoch": epoch, "epochs": epochs},
                            {"losses": np.asarray(losses)})
    return state["params"], np.asarray(losses)
