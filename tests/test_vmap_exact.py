"""The pieces of sdekc_jax.vmap_exact: the usual values, and bit-identical results under vmap.

The shapes are ones where the textbook form (``y + b``, ``optax.adam``, shared data times
per-seed weights) does round differently under vmap on XLA:CPU (checked when the tests were
written); here only our forms are asserted."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sdekc_jax.algorithm import embed_all
from sdekc_jax.pretrain import unstack_tree
from sdekc_jax.vmap_exact import add_bias, add_channel_bias, adam, per_run

S = 3


def per_seed_and_vmapped(f, *args):
    """``f`` run on each seed's slice of ``args``, and vmapped over all of them (both jitted)."""
    seq = [jax.jit(f)(*unstack_tree(args, i)) for i in range(S)]
    return seq, jax.jit(jax.vmap(f))(*args)


def test_add_bias_value_gradient_and_vmap():
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.standard_normal((S, 256, 10)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((S, 10)), jnp.float32)
    np.testing.assert_array_equal(add_bias(y[0], b[0]), y[0] + b[0])
    loss = lambda fn: (lambda b, y: jnp.sum(jnp.sin(fn(y, b))))
    gb, gy = jax.grad(loss(add_bias), argnums=(0, 1))(b[0], y[0])
    rb, ry = jax.grad(loss(lambda y, b: y + b), argnums=(0, 1))(b[0], y[0])
    np.testing.assert_allclose(gb, rb, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(gy, ry)
    seq, vm = per_seed_and_vmapped(jax.grad(loss(add_bias)), b, y)
    for i in range(S):
        np.testing.assert_array_equal(vm[i], seq[i])


def test_conv_bias_gradient_of_four_vmapped_runs_equals_each_run_alone():
    """The convolutions' bias gradient (a sum over batch and space) under vmap of 4 runs. On these
    shapes XLA:CPU's batched program sums in another order than the unbatched one for the plain
    ``y + b``, and so it does for the plain sum run one run at a time under lax.map (checked when
    the test was written); the product with ones agrees."""
    R = 4
    cases = [((64, 8, 8, 32), jax.nn.relu),  # an inner layer of the paper's CAE
             ((256, 16, 16, 1), jnp.tanh),  # the one-channel output layer (the product needs its padding)
             ((32, 4, 4, 2), jax.nn.relu)]  # few channels
    for shape, act in cases:
        loss = lambda fn: (lambda b, y: jnp.sum(act(fn(y, b)) ** 2))
        rng = np.random.default_rng(0)
        y = jnp.asarray(rng.standard_normal((R,) + shape), jnp.float32)
        b = jnp.asarray(rng.standard_normal((R, shape[-1])), jnp.float32)
        np.testing.assert_array_equal(add_channel_bias(y[0], b[0]), y[0] + b[0])
        ours = jax.grad(loss(add_channel_bias))  # the bias gradient only: the case of the training step,
        plain = jax.grad(loss(lambda y, b: y + b))  # where the sum is fused into the gradient's kernels
        chex.assert_trees_all_close(jax.jit(ours)(b[0], y[0]), jax.jit(plain)(b[0], y[0]), rtol=1e-5, atol=1e-5)
        batched = jax.jit(jax.vmap(ours))(b, y)
        for i in range(R):
            chex.assert_trees_all_equal(jax.jit(ours)(b[i], y[i]), jax.tree.map(lambda v: v[i], batched))


def _adam_run(tx):
    # the state comes in as an argument, as in the training loops (an initial state built inside
    # the compiled function is constant-folded and does not show the difference)
    def run(p, st, grads):
        def step(carry, g):
            p, st = carry
            u, st = tx.update(g, st, p)
            return (optax.apply_updates(p, u), st), None
        return jax.lax.scan(step, (p, st), grads)[0][0]
    return run


def _adam_problem():
    rng = np.random.default_rng(1)
    shapes = {"kernel": (5, 5, 1, 32), "bias": (32,), "embed": (10,), "dense": (512, 10)}
    params = {k: jnp.asarray(rng.standard_normal((S,) + s) * 0.1, jnp.float32) for k, s in shapes.items()}
    grads = {k: jnp.asarray(rng.standard_normal((S, 4) + s) * 1e-3, jnp.float32) for k, s in shapes.items()}
    return params, grads


def test_adam_follows_optax_adam():
    params, grads = _adam_problem()
    p0, g0 = unstack_tree(params, 0), unstack_tree(grads, 0)
    ours = jax.jit(_adam_run(adam(1e-3)))(p0, adam(1e-3).init(p0), g0)
    ref = jax.jit(_adam_run(optax.adam(1e-3)))(p0, optax.adam(1e-3).init(p0), g0)
    chex.assert_trees_all_close(ours, ref, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_equal_structs(adam(1e-3).init(p0), optax.adam(1e-3).init(p0))
    # four steps of ~lr each: the parameters did move
    assert all(float(jnp.max(jnp.abs(ours[k] - p0[k]))) > 1e-3 for k in p0)


def test_adam_is_bit_identical_under_vmap():
    params, grads = _adam_problem()
    seq, vm = per_seed_and_vmapped(_adam_run(adam(1e-3)), params, jax.vmap(adam(1e-3).init)(params), grads)
    for i in range(S):
        chex.assert_trees_all_equal(unstack_tree(vm, i), seq[i])


def test_per_run_copies_shared_data_per_seed():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.random((4096, 100)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((S, 100, 10)), jnp.float32)
    np.testing.assert_array_equal(per_run(x, w[0]), x)  # unbatched: x itself
    out = jax.vmap(lambda w: per_run(x, w))(w)  # x shared, w per seed: one copy per seed
    assert out.shape == (S,) + x.shape
    np.testing.assert_array_equal(out[2], x)
    both = jax.vmap(per_run)(x[:S], w)  # both batched: unchanged
    np.testing.assert_array_equal(both, x[:S])
    seq, vm = per_seed_and_vmapped(lambda w: per_run(x, w) @ w, w)
    for i in range(S):
        np.testing.assert_array_equal(vm[i], seq[i])


def test_embed_all_of_shared_data_is_bit_identical_under_vmap():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.random((4096, 100)), jnp.float32)
    params = {"w": jnp.asarray(rng.standard_normal((S, 100, 10)), jnp.float32), "b": jnp.zeros((S, 10))}
    embed = lambda p, xb: add_bias(xb @ p["w"], p["b"])
    seq, vm = per_seed_and_vmapped(lambda p: embed_all(embed, p, x), params)
    for i in range(S):
        np.testing.assert_array_equal(vm[i], seq[i])


def test_refresh_of_four_vmapped_runs_equals_each_run_alone():
    """Algorithm 1's refresh (K-means, S_w, eigh, targets) for 4 runs in one vmapped program: with
    the batched program S_w and the inertia round differently from 4 runs on (2 and 3 agree);
    one_run_at_a_time makes every output bit-identical to the run alone."""
    from sdekc_jax.algorithm import dekm_refresh
    R, n = 4, 1100
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(R, n, 10)).astype(np.float32) + rng.integers(0, 5, size=(R, n, 1)))
    keys = jax.random.split(jax.random.key(0), R)
    refresh = dekm_refresh(lambda p, x: x * p, 10, 3)
    f = lambda p, x, k: refresh(p, x, jnp.zeros((10, 10)), jnp.zeros(n, jnp.int32), jnp.bool_(True), k)
    batched = jax.jit(jax.vmap(f))(jnp.ones(R), z, keys)
    alone = jax.jit(f)
    for i in range(R):
        chex.assert_trees_all_equal(alone(1.0, z[i], keys[i]), jax.tree.map(lambda v: v[i], batched))


def test_cae_training_step_of_four_vmapped_runs_equals_each_run_alone():
    """All pieces together on the paper's convolutional autoencoder: the gradient of the
    reconstruction loss and Adam's update for 4 runs (the first count at which the conv bias
    gradients needed their fix) in one vmapped program equal each run's alone, bit for bit."""
    from sdekc_jax.models import CAE
    from sdekc_jax.pretrain import reconstruction_loss
    R = 4
    model, tx = CAE((16, 16, 1), n_embed=10), adam(1e-3)
    x = jax.random.uniform(jax.random.key(0), (R, 64, 16, 16, 1))
    rng = np.random.default_rng(1)  # random weights of the model's shapes (model.init compiles slowly)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x[0, :1])["params"])
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(0, 0.1, (R,) + a.shape), jnp.float32), shapes)

    def step(p, xb):
        loss, g = jax.value_and_grad(lambda p: reconstruction_loss(model, p, xb, jnp.ones(xb.shape[0])))(p)
        u, _ = tx.update(g, tx.init(p), p)
        return loss, g, optax.apply_updates(p, u)

    batched = jax.jit(jax.vmap(step))(params, x)
    alone = jax.jit(step)
    for i in range(R):
        chex.assert_trees_all_equal(alone(unstack_tree(params, i), x[i]), unstack_tree(batched, i))
