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

from .vmap_exact import adam
from .parallel import replicate, shard_batch
from .progress import progress


def batch_plan(key: jax.Array, n: int, batch_size: int, shuffle: bool = True) -> tuple[jax.Array, jax.Array]:
    """Indices ``(n_batches, batch_size)`` covering ``0..n-1`` once, and a 0/1 mask for padding."""
    n_batches = -(-n // batch_size)
    order = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
    pad = n_batches * batch_size - n
    idx = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(n_batches, batch_size)
    mask = (jnp.arange(n_batches * batch_size) < n).astype(jnp.float32).reshape(n_batches, batch_size)
    return idx, mask


def _first(key: jax.Array) -> jax.Array:
    """The key itself, or the first of an array of keys (vmapped runs share the chunk order)."""
    return key if jnp.ndim(key) == 0 else key[0]


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
            xb = shard_batch(x[b_idx])  # data-parallel over the active mesh, if any (sdekc_jax.parallel)
            loss, grads = jax.value_and_grad(lambda p: reconstruction_loss(model, p, xb, b_mask))(state["params"])
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
    chunk_size: int | None = None,
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
    ``i`` follows the same steps as ``pretrain(model, unstack_tree(params, i), x, key[i])``, and
    on XLA:CPU the numbers are bit-identical, given the default optimizer and a model whose biases
    use :func:`~sdekc_jax.vmap_exact.add_bias` (ours do; see :mod:`sdekc_jax.vmap_exact`).

    ``chunk_size``: stream the data instead of holding it on the device. ``x`` may then be any
    array-like with ``len`` and slicing, e.g. a ``np.memmap``, an ``h5py`` data set or
    :class:`SyntheticImages`; each epoch visits its chunks of ``chunk_size`` images in an order
    drawn from ``fold_in(key, epoch)``, copies one chunk at a time to the device and shuffles the
    mini-batches within it (the same jitted epoch function, one compilation per chunk size), so
    device and host memory are bounded by a chunk, not by the data set. The loss of an epoch is
    the mean over all its images. ``chunk_size >= len(x)`` is the in-memory run.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tx = optimizer if optimizer is not None else adam(learning_rate, b1=0.9, b2=0.999)
    params = jax.tree.map(jnp.array, params)  # copy: the epoch donates its state
    state = jax.vmap(lambda p: init_state(p, tx))(params) if vmapped else init_state(params, tx)
    epoch_fn = make_epoch_fn(model, tx, batch_size, vmapped=vmapped)
    n = len(x)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    if chunk_size is None or chunk_size >= n:
        x = jnp.asarray(x, jnp.float32)
        run_epoch = lambda state, epoch: epoch_fn(state, x, key, epoch)
    else:
        bounds = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]

        def run_epoch(state, epoch):
            total = 0.0
            order = np.asarray(jax.random.permutation(jax.random.fold_in(_first(key), epoch), len(bounds)))
            pending = None
            for c in order:
                lo, hi = bounds[c]
                xc = replicate(jnp.asarray(np.asarray(x[lo:hi]), jnp.float32))  # read while the last chunk trains
                if pending is not None:  # back-pressure: at most two chunks alive (dispatch is asynchronous)
                    pending.block_until_ready()
                state, loss = epoch_fn(state, xc, key, epoch * len(bounds) + int(c))
                total, pending = total + loss * (hi - lo), loss
            return state, total / n
    state, key = replicate((state, key))  # on every device of the active mesh (sdekc_jax.parallel)
    if chunk_size is None or chunk_size >= n:
        x = replicate(x)
    losses, start = [], 0
    if checkpoint is not None and checkpoint.exists():
        state, meta, extra = checkpoint.load(state)
        losses, start = list(np.asarray(extra["losses"], np.float64)), int(meta["epoch"]) + 1
        if start > epochs:
            raise ValueError(f"checkpoint {checkpoint.path} is at epoch {start}, past this run's {epochs} epochs")
    bar = progress(range(start, epochs), desc="pretrain", unit="epoch", disable=not verbose,
                   initial=start, total=epochs)
    for epoch in bar:
        state, loss = run_epoch(state, epoch)
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
