"""Small pieces that make a vmapped run bit-identical to running its seeds one by one.

``jax.vmap`` over seeds (``run_vmapped``, ``--vmap-seeds``) computes the same function as the
seed-by-seed runs, but XLA compiles the batched program differently, and on XLA:CPU a few
spots round differently in the last bit. Training is chaotic: after a few hundred steps
such differences grow, K-means++ picks another centre, and the labels differ. Each piece below
computes the usual value, written so that the batched and the unbatched programs round alike:

* :func:`add_bias`: the bias gradient of the dense layers (``layers.Dense``) as a product with a
  ones vector. The usual sum over the batch axis becomes a reduction over an inner axis of a
  bigger array under ``vmap``, and XLA:CPU orders that reduction differently for the embedding
  layer's few outputs.
* :func:`add_channel_bias`: the bias of the convolutions (every function of ``layers``). Its
  gradient, a sum over batch and space, was summed in another order by the batched program
  (from 4 runs on for the paper's CAE, from 2 on for small channel counts), and so it was when
  the plain sum ran one run at a time (``lax.map``: the sum is fused into other kernels). It is
  a product with a ones vector, as in :func:`add_bias` (one output channel padded to two, or XLA
  turns it back into a fused sum). That product agreed batched on every shape tried; it is still
  computed one run at a time under ``vmap`` (:func:`one_run_at_a_time`), so that each run calls
  the matrix-vector product of the unbatched shapes. On CPU that costs nothing measurable (a
  vmapped pretraining epoch of 5 runs on USPS: 3.62 s, with the plain sum 3.57 s); on
  accelerators it adds a small loop of R products per layer and step (not measured).
* :func:`adam`: ``optax.adam``'s update with the bias corrections multiplied in as reciprocals
  (optax divides by ``1 - b**t``, a scalar broadcast in one program and a per-seed vector
  broadcast in the other, and the two divisions compile differently). The gradient also passes
  an ``optimization_barrier``, so that the update is not fused into the gradient's last kernels
  (the fusion differs between the programs too).
* :func:`per_run`: data shared by all seeds (the whole data set, when every seed embeds it) is
  broadcast to one copy per seed before it meets per-seed parameters. A product of shared data
  with stacked weights is otherwise one wider matrix product, blocked differently from the
  per-seed ones; with a copy per seed it is a batched product of the per-seed shapes.
* :func:`one_run_at_a_time`: the refresh of Algorithm 1 (K-means, S_w, eigh, targets), whose
  sums the batched program rounds differently from 4 runs on.

These are findings about XLA:CPU (jaxlib 0.10), not guarantees of XLA.
``tests/test_vmap_exact.py`` checks each piece on shapes where the textbook form differs, and
``tests/test_vmap_seeds.py`` checks whole runs for exact equality; on USPS (all 9,298 images,
5 seeds) a vmapped run's labels, embedding, parameters and histories are bit-identical to the
seed-by-seed runs (README, "Seeds in parallel"). GPU and TPU are not verified.

Values differ from the textbook forms (``y + b``, ``optax.adam``) by float rounding only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


@jax.custom_vjp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """``y + bias`` along the last axis; the bias gradient is ``ones @ g`` (see the module doc)."""
    return y + bias


def _add_bias_fwd(y, bias):
    return y + bias, None


def _add_bias_bwd(_, g):
    rows = g.reshape(-1, g.shape[-1])
    return g, jnp.dot(jnp.ones((rows.shape[0],), g.dtype), rows)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam's rescaling of the gradient (no learning rate), as ``optax.scale_by_adam`` (eps
    outside the square root, no eps_root), batch-invariant (see the module doc)."""

    def init_fn(params):
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=jax.tree.map(jnp.zeros_like, params),
                                      nu=jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        del params
        updates = jax.lax.optimization_barrier(updates)
        mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = jax.tree.map(lambda g, v: (1 - b2) * (g * g) + b2 * v, updates, state.nu)
        count = optax.safe_increment(state.count)
        inv_c1 = 1.0 / (1.0 - b1 ** count.astype(jnp.float32))
        inv_c2 = 1.0 / (1.0 - b2 ** count.astype(jnp.float32))
        out = jax.tree.map(lambda m, v: (m * inv_c1) / (jnp.sqrt(v * inv_c2) + eps), mu, nu)
        return out, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


def adam(learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam, a drop-in for ``optax.adam(learning_rate, b1, b2, eps)`` with the same state
    structure (``(ScaleByAdamState, EmptyState)``), batch-invariant (see the module doc)."""
    return optax.chain(scale_by_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))


@jax.custom_batching.custom_vmap
def per_run(x: jax.Array, like: jax.Array) -> jax.Array:
    """``x`` itself; under a ``vmap`` in which ``like`` is batched and ``x`` is not (data shared
    by all seeds, ``like`` a per-seed parameter), ``x`` broadcast to one copy per seed."""
    return x


@per_run.def_vmap
def _per_run_vmap(axis_size, in_batched, x, like):
    x_batched, _ = in_batched
    return (x if x_batched else jnp.broadcast_to(x, (axis_size,) + x.shape)), True


def one_run_at_a_time(f):
    """``f`` unchanged; under ``jax.vmap`` the runs of the batch are computed one after another
    (``lax.map``), each by ``f``'s unbatched program, instead of by one batched program.

    For the cheap, rounding-sensitive part of a refresh (K-means, S_w, eigh, targets): with 4 or
    more vmapped runs XLA:CPU computes S_w's ``r.T @ r`` and K-means' inertia sums in the batched
    program with other rounding than unbatched (2 and 3 runs agree), and training amplifies it.
    ``f`` takes and returns pytrees of arrays; unbatched arguments are shared by all runs.
    """
    g = jax.custom_batching.custom_vmap(f)

    @g.def_vmap
    def _rule(axis_size, in_batched, *args):
        flat, tree = jax.tree.flatten(args)
        flags = jax.tree.leaves(in_batched)
        batched = [a for a, b in zip(flat, flags) if b]

        def one(bs):
            it = iter(bs)
            return f(*jax.tree.unflatten(tree, [next(it) if b else a for a, b in zip(flat, flags)]))

        out = jax.lax.map(one, batched)
        return out, jax.tree.map(lambda _: True, out)

    return g


def _channel_sum(g: jax.Array) -> jax.Array:
    """The sum of ``g`` over all axes but the last, as a product ``ones @ g`` (one matrix-vector
    product, whose summation order depends on its shapes only). One channel is padded to two:
    XLA turns a product with a single output column into a reduction, fused with ``g``'s producer."""
    c = g.shape[-1]
    rows = g.reshape(-1, c)
    if c == 1:
        rows = jnp.concatenate([rows, jnp.zeros_like(rows)], axis=1)
    return jnp.dot(jnp.ones((rows.shape[0],), g.dtype), rows)[:c]


_channel_sum_per_run = one_run_at_a_time(_channel_sum)


@jax.custom_vjp
def add_channel_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """``y + bias`` along the last (channel) axis; the bias gradient (the sum of the output
    gradient over all other axes) is a matrix-vector product with a ones vector, computed one run
    at a time under ``vmap`` (see the module doc)."""
    return y + bias


def _add_channel_bias_fwd(y, bias):
    return y + bias, None


def _add_channel_bias_bwd(_, g):
    return g, _channel_sum_per_run(g)


add_channel_bias.defvjp(_add_channel_bias_fwd, _add_channel_bias_bwd)
