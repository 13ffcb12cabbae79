"""The CAE as pure functions (``init_params`` / ``encode`` / ``decode``): shapes for every image
size of the paper, the skip arithmetic against a hand-written lax reference, the parameter layout
and counts, input checks. Every computation is jitted (one compiled program instead of many
op-by-op ones: faster on CPU)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax.config import RunConfig
from sdekc_jax.layers import conv_down_lax, conv_up_lax
from sdekc_jax.models import (check_image_shape, decode, embed, encode, feature_shapes, init_params, param_count,
                              reconstruct, third_conv_padding)

SHAPES = {(16, 16, 1): [(8, 8, 32), (4, 4, 64), (2, 2, 128)],
          (28, 28, 1): [(14, 14, 32), (7, 7, 64), (3, 3, 128)],
          (32, 32, 3): [(16, 16, 32), (8, 8, 64), (4, 4, 128)],
          (16, 48, 1): [(8, 24, 32), (4, 12, 64), (2, 6, 128)]}
# param_count of the CAE with a 10-d embedding (total, encoder): the Linen CAE's counts before the
# functional refactor, pinned (the architecture did not change)
COUNTS = {(16, 16, 1): (262539, 131082), (28, 28, 1): (275979, 137482),
          (32, 32, 3): (297997, 148042), (16, 48, 1): (284043, 141322)}


def _cfg(shape, d=10, **kw):
    return RunConfig(image_shape=shape, embedding_dim=d, **kw)


def _x(shape, n=2, seed=0):
    return jax.random.uniform(jax.random.key(seed), (n,) + tuple(shape))


@jax.jit
def _forward(params, x, w):
    """``(z, feats, x_hat)`` for ``x`` with skip weights ``w`` (None or (2,))."""
    z, feats = encode(params["encoder"], x)
    return z, feats, decode(params["decoder"], z, feats, w)


def _reference(params, x, w, act=jax.nn.relu):
    """The CAE written out with lax's convolutions: decoder layer j (j = 1, 2) takes
    ``w_enc * encoder feature (2 - j) + w_dec * decoder feature`` (post-activation) as input."""
    enc, dec = params["encoder"], params["decoder"]
    pads = ["SAME", "SAME", third_conv_padding(*x.shape[1:3])]
    n, h, feats = x.shape[0], x, []
    for i in range(3):
        h = act(conv_down_lax(h, enc[f"conv{i}"]["kernel"], enc[f"conv{i}"]["bias"], 2, pads[i]))
        feats.append(h)
    z = h.reshape(n, -1) @ enc["embed"]["kernel"] + enc["embed"]["bias"]
    h = act(z @ dec["dense"]["kernel"] + dec["dense"]["bias"]).reshape((n,) + feats[-1].shape[1:])
    for j in range(3):
        h = conv_up_lax(h, dec[f"conv{j}"]["kernel"], dec[f"conv{j}"]["bias"], 2, pads[2 - j])
        if j == 2:
            break  # linear output
        h = act(h)
        if w is not None:
            h = w[0] * feats[1 - j] + w[1] * h
    return h, z


_reference_jit = jax.jit(_reference)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_shapes(shape):
    # (batch 2, 10-d embedding: the programs of test_skip_arithmetic_against_lax_reference, compiled once)
    params = init_params(jax.random.key(1), _cfg(shape))
    x = _x(shape)
    z, feats, x_hat = _forward(params, x, None)
    assert x_hat.shape == x.shape and z.shape == (2, 10)
    assert [f.shape[1:] for f in feats] == SHAPES[shape] == feature_shapes(shape, (32, 64, 128), (5, 5, 3))
    # another embedding size and batch: shapes only
    params7 = jax.eval_shape(lambda: init_params(jax.random.key(1), _cfg(shape, 7)))
    out = jax.eval_shape(_forward, params7, jax.ShapeDtypeStruct((3,) + shape, jnp.float32), jnp.array([0.5, 0.5]))
    assert out[0].shape == (3, 7) and out[2].shape == (3,) + shape


def test_reconstruct_and_embed_are_encode_then_decode():
    shape = (16, 16, 1)
    params = init_params(jax.random.key(1), _cfg(shape))
    x, w = _x(shape), jnp.array([0.001, 0.999])
    z, _, x_hat = _forward(params, x, w)
    x_rec, z_rec = jax.jit(reconstruct)(params, x, w)
    np.testing.assert_array_equal(x_rec, x_hat)
    np.testing.assert_array_equal(z_rec, z)
    # the embedding from the encoder parameters alone
    np.testing.assert_array_equal(jax.jit(embed)(params["encoder"], x), z)


@pytest.mark.parametrize("shape, weights", [((16, 16, 1), None), ((16, 16, 1), (0.001, 0.999)),
                                            ((16, 16, 1), (0.999, 0.001)), ((16, 16, 1), (0.3, -2.0)),
                                            ((28, 28, 1), None), ((28, 28, 1), (0.3, -2.0))])
def test_skip_arithmetic_against_lax_reference(shape, weights):
    """encode / decode compute the hand-written CAE: plain (None) and with the weighted skips
    (decoder layers 1 and 2 take w_enc * encoder feature + w_dec * decoder feature as input);
    28x28 has the VALID third convolution (7 -> 3) and its VALID transposed mirror (3 -> 7)."""
    params = init_params(jax.random.key(1), _cfg(shape))
    x = _x(shape)
    w = None if weights is None else jnp.asarray(weights, jnp.float32)
    z, _, x_hat = _forward(params, x, w)
    ref_x_hat, ref_z = _reference_jit(params, x, w)
    assert x_hat.shape == ref_x_hat.shape == x.shape
    np.testing.assert_allclose(z, ref_z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x_hat, ref_x_hat, rtol=1e-4, atol=1e-5)


def test_skips_change_the_output_and_zero_one_is_no_skips():
    shape = (16, 16, 1)
    params = init_params(jax.random.key(1), _cfg(shape))
    x = _x(shape)
    z, feats, plain, *_ = _forward(params, x, None)
    assert not np.allclose(_forward(params, x, jnp.array([0.5, 0.5]))[2], plain)
    # (w_enc, w_dec) = (0, 1) computes exactly what no skips compute: traced (jit) and eager
    np.testing.assert_array_equal(_forward(params, x, jnp.array([0.0, 1.0]))[2], plain)
    eager_plain = decode(params["decoder"], z, feats, None)
    np.testing.assert_array_equal(decode(params["decoder"], z, feats, jnp.array([0.0, 1.0])), eager_plain)
    np.testing.assert_allclose(eager_plain, plain, rtol=1e-5, atol=1e-6)


def test_init_params_layout():
    params = init_params(jax.random.key(0), _cfg((28, 28, 1)))
    assert sorted(params) == ["decoder", "encoder"]
    assert sorted(params["encoder"]) == ["conv0", "conv1", "conv2", "embed"]
    assert sorted(params["decoder"]) == ["conv0", "conv1", "conv2", "dense"]
    shapes = jax.tree.map(lambda a: a.shape, params)
    enc, dec = shapes["encoder"], shapes["decoder"]
    assert all(sorted(layer) == ["bias", "kernel"] for part in (enc, dec) for layer in part.values())
    assert enc["conv0"]["kernel"] == (5, 5, 1, 32) and enc["conv0"]["bias"] == (32,)
    assert enc["conv1"]["kernel"] == (5, 5, 32, 64)
    assert enc["conv2"]["kernel"] == (3, 3, 64, 128)
    assert enc["embed"]["kernel"] == (1152, 10) and enc["embed"]["bias"] == (10,)
    assert dec["dense"]["kernel"] == (10, 1152)
    assert dec["conv0"]["kernel"] == (3, 3, 128, 64)
    assert dec["conv1"]["kernel"] == (5, 5, 64, 32)
    assert dec["conv2"]["kernel"] == (5, 5, 32, 1) and dec["conv2"]["bias"] == (1,)
    # embedding_dim None means n_clusters
    p = jax.eval_shape(lambda: init_params(jax.random.key(0), RunConfig(n_clusters=4, image_shape=(16, 16, 1))))
    assert p["encoder"]["embed"]["kernel"].shape == (512, 4) and p["decoder"]["dense"]["kernel"].shape == (4, 512)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_parameter_counts(shape):
    params = jax.eval_shape(lambda: init_params(jax.random.key(0), _cfg(shape)))  # shapes only, no compute
    total, n_enc = COUNTS[shape]
    assert param_count(params) == total and param_count(params["encoder"]) == n_enc
    h, w, c = shape
    last = int(np.prod(SHAPES[shape][-1]))
    convs = (5 * 5 * c * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (3 * 3 * 64 * 128 + 128)
    assert n_enc == convs + last * 10 + 10
    assert total - n_enc == (10 * last + last) + (3 * 3 * 128 * 64 + 64) + (5 * 5 * 64 * 32 + 32) + (5 * 5 * 32 * c + c)


def test_glorot_init_and_keys():
    params = init_params(jax.random.key(0), _cfg((28, 28, 1)))
    k = np.asarray(params["encoder"]["conv1"]["kernel"])  # fan_in 5*5*32, fan_out 5*5*64
    limit = np.sqrt(6.0 / (5 * 5 * 32 + 5 * 5 * 64))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    assert all(np.all(np.asarray(layer["bias"]) == 0) for part in params.values() for layer in part.values())
    # a function of the key
    again = init_params(jax.random.key(0), _cfg((28, 28, 1)))
    jax.tree.map(np.testing.assert_array_equal, params, again)
    other = init_params(jax.random.key(1), _cfg((28, 28, 1)))
    assert not np.array_equal(other["encoder"]["conv1"]["kernel"], k)


def test_the_drivers_unoptimised_init_program_gives_the_same_bits():
    """The host driver compiles the initialisation at optimisation level 1 (a run-once
    program; ``cached_jit(run_once=True)``): the same parameters, bit for bit, as the optimised jit,
    alone and vmapped."""
    from sdekc_jax.pretrain import cached_jit

    keys = jax.random.split(jax.random.key(5), 2)
    f = functools.partial(init_params, cfg=_cfg((16, 16, 1)).replace(init="dekm"))  # glorot and Keras' uniform
    # (Keras' uniform is the draw that level 0 would round differently)
    jax.tree.map(np.testing.assert_array_equal, cached_jit(f, run_once=True)(keys[0]), jax.jit(f)(keys[0]))
    jax.tree.map(np.testing.assert_array_equal, cached_jit(f, 0, run_once=True)(keys), jax.jit(jax.vmap(f))(keys))


def test_dekm_init_draws_the_encoder_convs_from_keras_uniform_and_nothing_else_changes():
    cfg = _cfg((16, 16, 1))
    ours, theirs = init_params(jax.random.key(3), cfg), init_params(jax.random.key(3), cfg.replace(init="dekm"))
    for i in range(3):
        k = np.asarray(theirs["encoder"][f"conv{i}"]["kernel"])
        assert np.abs(k).max() <= 0.05 and np.abs(k).max() > 0.045  # U(-0.05, 0.05), Keras' 'uniform'
        # glorot's limit sqrt(6 / (fan_in + fan_out)) is 0.085, 0.050, 0.059 for the three convs: the
        # second is the same distribution (and the same draw), the others are wider under glorot
        assert np.array_equal(k, ours["encoder"][f"conv{i}"]["kernel"]) == (i == 1)
    same = {"encoder": {"embed": 0}, "decoder": dict.fromkeys(ours["decoder"], 0)}  # glorot in both
    for part, layers in same.items():
        for name in layers:
            jax.tree.map(np.testing.assert_array_equal, ours[part][name], theirs[part][name])
    with pytest.raises(ValueError, match="RunConfig.init must be one of"):
        cfg.replace(init="he")


@pytest.mark.parametrize("bad", [(30, 30, 1), (18, 18, 1), (4, 4, 1)])
def test_unsupported_image_shape(bad):
    with pytest.raises(ValueError, match="not supported|too small"):
        check_image_shape(bad)
    with pytest.raises(ValueError, match="not supported|too small"):
        init_params(jax.random.key(0), _cfg(bad))


def test_encode_refuses_wrong_images():
    enc = init_params(jax.random.key(0), _cfg((16, 16, 1)))["encoder"]
    with pytest.raises(ValueError, match="expected NHWC images"):   # channels
        encode(enc, jnp.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="expected NHWC images"):   # not NHWC
        encode(enc, jnp.zeros((1, 16, 16)))
    for size in ((28, 28), (32, 32), (8, 8)):                       # another image size
        with pytest.raises(ValueError, match="do not fit these parameters"):
            jax.eval_shape(lambda x: encode(enc, x), jax.ShapeDtypeStruct((1,) + size + (1,), jnp.float32))
    with pytest.raises(ValueError, match="do not fit these parameters"):  # and eagerly, not only when traced
        encode(enc, jnp.zeros((1, 28, 28, 1)))
    with pytest.raises(ValueError, match="activation"):
        encode(enc, jnp.zeros((1, 16, 16, 1)), activation="sigmoid")


def test_decode_needs_the_encoder_features():
    params = init_params(jax.random.key(0), _cfg((16, 16, 1)))
    z, feats = jax.eval_shape(lambda x: encode(params["encoder"], x), jax.ShapeDtypeStruct((2, 16, 16, 1), jnp.float32))
    with pytest.raises(ValueError, match="feature maps"):
        jax.eval_shape(lambda z, f: decode(params["decoder"], z, f), z, feats[:2])
    out = jax.eval_shape(lambda z, f: decode(params["decoder"], z, f, jnp.array([0.5, 0.5])), z, feats)
    assert out.shape == (2, 16, 16, 1)
