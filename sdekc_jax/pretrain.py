"""Reconstruction pretraining (Eq. 5): MSE, Adam, one jitted ``lax.scan`` per epoch.

The train state is a plain dict ``{"params", "opt_state", "step"}``. Each epoch shuffles
with ``fold_in(key, epoch)``; the ragged last batch is kept and masked, so every sample is
seen once per epoch (as Keras' ``fit`` does in the DEKM reference code).
"""
from __future__ import annotations

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


def make_epoch_fn(model, tx: optax.GradientTransformation, batch_size: int, *, vmapped: bool = False) -> Callable:
    """``epoch(state, x, key, epoch) -> (state, mean_loss)``: one pass over ``x``, jitted.

    ``vmapped=True``: ``state`` and ``key`` carry a leading axis (one model per entry, e.g. per
    seed), ``x`` and ``epoch`` are shared, and the loss is one value per model: all models train
    in one compiled program (``jax.vmap``).
    """

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

    if vmapped:
        epoch_fn = jax.vmap(epoch_fn, in_axes=(0, None, 0, None))
    return jax.jit(epoch_fn, donate_argnums=(0,))


def stack_trees(trees: list) -> Any:
    """One pytree whose leaves have a new leading axis (``trees[i]`` is entry ``i``)."""
    return jax.tree.map(lambda *v: jnp.stack(v), *trees)


def unstack_tree(tree: Any, i: int) -> Any:
    """Entry ``i`` of a pytree with a leading axis (see :func:`stack_trees`)."""
    return jax.tree.map(lambda v: v[i], tree)


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
    vmapped: bool = False,
) -> tuple[Any, np.ndarray]:
    """Pretrain ``model`` on reconstruction MSE with Adam (lr, b1=0.9, b2=0.999), or ``optimizer``.

    Returns the trained parameters and the per-epoch mean loss. ``callback(epoch, state, loss)``
    runs on the host after each epoch.

    ``checkpoint`` (a :class:`~sdekc_jax.checkpoint.Checkpointer`): when its file exists the run
    continues from the saved epoch; the state is saved every ``checkpoint.every`` epochs and after
    the last. Epoch ``e`` shuffles with ``fold_in(key, e)``, so a resumed run computes exactly what
    an uninterrupted one does. A non-finite loss raises before anything is saved: the last good
    checkpoint stays.

    ``vmapped=True`` trains several models at once (e.g. one per seed) in one compiled program:
    ``params`` is a stacked pytree (leading axis S, see :func:`stack_trees`) and ``key`` an array
    of S keys; the result is the stacked trained parameters and the losses (S, epochs). Model
    ``i`` follows the same steps as ``pretrain(model, unstack_tree(params, i), x, key[i])``; the
    numbers agree to float rounding (XLA may order a few gradient reductions differently in the
    batched program).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tx = optimizer if optimizer is not None else optax.adam(learning_rate, b1=0.9, b2=0.999)
    params = jax.tree.map(jnp.array, params)  # copy: the epoch donates its state
    state = jax.vmap(lambda p: init_state(p, tx))(params) if vmapped else init_state(params, tx)
    epoch_fn = make_epoch_fn(model, tx, batch_size, vmapped=vmapped)
    x = jnp.asarray(x, jnp.float32)
    losses, start = [], 0
    if checkpoint is not None and checkpoint.exists():
        state, meta, extra = checkpoint.load(state)
        losses, start = list(np.asarray(extra["losses"], np.float64)), int(meta["epoch"]) + 1
        if start > epochs:
            raise ValueError(f"checkpoint {checkpoint.path} is at epoch {start}, past this run's {epochs} epochs")
    bar = progress(range(start, epochs), desc="pretrain", unit="epoch", disable=not verbose,
                   initial=start, total=epochs)
    for epoch in bar:
        state, loss = epoch_fn(state, x, key, epoch)
        loss = np.asarray(jax.device_get(loss), np.float64)
        if not np.all(np.isfinite(loss)):
            which = f" (model {int(np.flatnonzero(~np.isfinite(loss))[0])})" if vmapped else ""
            raise FloatingPointError(f"pretraining loss became {loss.ravel()[~np.isfinite(loss.ravel())][0]} at epoch "
                                     f"{epoch}{which}; lower the learning rate")
        losses.append(loss)
        bar.set_postfix(mse=f"{float(np.max(loss)):.5f}")
        if callback is not None:
            callback(epoch, state, loss if vmapped else float(loss))
        if checkpoint is not None and (checkpoint.due(epoch + 1) or epoch + 1 == epochs):
            checkpoint.save(state, {"phase": "pretrain", "epoch": epoch, "epochs": epochs},
                            {"losses": np.asarray(losses)})
    if vmapped:  # (S, epochs)
        return state["params"], np.asarray(losses, np.float64).reshape(len(losses), np.shape(key)[0]).T
    return state["params"], np.asarray(losses, np.float64)
