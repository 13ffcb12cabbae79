"""The other autoencoders: DenseAE (DEC/IDEC), ARAE (residual encoder + CAE decoder), the binary preset."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax.layers import Conv, conv_down_lax
from sdekc_jax.models import (ARAE, BINARY_ARCH, CAE, DenseAE, binary_cae, embed_fn, encoder_params,
                              feature_shapes)

IMAGE_SHAPES = [(16, 16, 1), (28, 28, 1), (32, 32, 3), (16, 48, 1)]


def _shapes(tree):
    return jax.tree.map(lambda a: a.shape, tree)


def _init(model, shape, seed=1):
    x = jax.random.uniform(jax.random.key(0), (2,) + tuple(shape))
    return x, model.init(jax.random.key(seed), x)["params"]


# --- layers.Conv at stride 1 / kernel 1 (the ARAE's extra convolutions) ---------------------------

@pytest.mark.parametrize("k, padding, size", [(3, "SAME", 7), (3, "SAME", 4), (1, "VALID", 4), (1, "VALID", 3)])
def test_conv_stride1_and_kernel1_match_lax(k, padding, size):
    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 3))
    conv = Conv(5, k, 1, padding)
    params = conv.init(jax.random.key(1), x)["params"]
    params = {"kernel": params["kernel"], "bias": params["bias"] + 0.1}
    y = conv.apply({"params": params}, x)
    ref = conv_down_lax(x, params["kernel"], params["bias"], 1, padding)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    # gradients (layers.conv_down has a custom VJP)
    loss = lambda p, x: jnp.sum(jnp.sin(conv.apply({"params": p}, x)))
    loss_ref = lambda p, x: jnp.sum(jnp.sin(conv_down_lax(x, p["kernel"], p["bias"], 1, padding)))
    g, g_ref = jax.grad(loss, (0, 1))(params, x), jax.grad(loss_ref, (0, 1))(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), g, g_ref)


# --- ARAE ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_arae_shapes_features_and_decoder(shape):
    model = ARAE(shape, n_embed=7)
    x, params = _init(model, shape)
    (x_hat, z), inter = model.apply({"params": params}, x, capture_intermediates=True)
    assert x_hat.shape == x.shape and z.shape == (2, 7)
    feats = [inter["intermediates"][f"enc_block{b}"]["__call__"][0].shape[1:] for b in range(4)]
    expected = feature_shapes(shape, (32, 64, 128), (5, 5, 3))
    assert feats[:3] == expected and feats[3] == expected[-1]
    # the decoder is the plain CAE's, parameter for parameter
    cae = jax.eval_shape(lambda: CAE(shape, 7, skip_weights=None).init(jax.random.key(0), x)["params"])
    dec = lambda p: {k: v for k, v in _shapes(p).items() if k.startswith("dec_")}
    assert dec(params) == dec(cae) and set(dec(params)) == {"dec_dense", "dec_conv0", "dec_conv1", "dec_conv2"}
    # encoder: residual blocks + embedding, no unused enc_conv*, no decoder
    enc = encoder_params(params)
    assert sorted(enc) == ["embed", "enc_block0", "enc_block1", "enc_block2", "enc_block3"]
    assert not any(k.startswith("dec_") for k in enc)
    np.testing.assert_allclose(embed_fn(model)(enc, x), z, rtol=1e-6)
    np.testing.assert_allclose(model.apply({"params": enc}, x, method=CAE.embed), z, rtol=1e-6)


def test_arae_block_parameters():
    _, params = _init(ARAE((28, 28, 1), 10), (28, 28, 1))
    s = _shapes(params)
    assert s["enc_block0"] == {"conv1": {"kernel": (3, 3, 1, 32), "bias": (32,)},
                               "conv2": {"kernel": (3, 3, 32, 32), "bias": (32,)},
                               "proj": {"kernel": (1, 1, 1, 32), "bias": (32,)}}
    assert s["enc_block2"]["proj"]["kernel"] == (1, 1, 64, 128)
    assert s["enc_block3"] == {"conv1": {"kernel": (3, 3, 128, 128), "bias": (128,)},
                               "conv2": {"kernel": (3, 3, 128, 128), "bias": (128,)}}  # identity shortcut
    assert s["embed"]["kernel"] == (3 * 3 * 128, 10)


def test_arae_residual_arithmetic():
    """28x28: block 2 (VALID, 7 -> 3, cropped projection shortcut) by hand; block 3 is ReLU(input)
    when its convolutions are zero (identity shortcut)."""
    shape = (28, 28, 1)
    model = ARAE(shape, 10)
    x, params = _init(model, shape)
    params = dict(params)
    params["enc_block3"] = jax.tree.map(jnp.zeros_like, params["enc_block3"])
    _, inter = model.apply({"params": params}, x, capture_intermediates=True)
    out = lambda b: inter["intermediates"][f"enc_block{b}"]["__call__"][0]
    h1 = out(1)  # (2, 7, 7, 64), post-ReLU
    p = params["enc_block2"]
    main = jax.nn.relu(conv_down_lax(h1, p["conv1"]["kernel"], p["conv1"]["bias"], 2, "VALID"))
    main = conv_down_lax(main, p["conv2"]["kernel"], p["conv2"]["bias"], 1, "SAME")
    short = h1[:, 0:5:2, 0:5:2, :] @ p["proj"]["kernel"][0, 0] + p["proj"]["bias"]  # rows/cols 0, 2, 4
    expected = jax.nn.relu(main + short)
    assert expected.shape == (2, 3, 3, 128)
    np.testing.assert_allclose(out(2), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out(3), jax.nn.relu(out(2)), rtol=1e-6)
    # and with non-zero convolutions block 3 = relu(conv2(relu(conv1(h))) + h)
    _, params = _init(model, shape)
    _, inter = model.apply({"params": params}, x, capture_intermediates=True)
    h2, p = inter["intermediates"]["enc_block2"]["__call__"][0], params["enc_block3"]
    main = jax.nn.relu(conv_down_lax(h2, p["conv1"]["kernel"], p["conv1"]["bias"], 1, "SAME"))
    main = conv_down_lax(main, p["conv2"]["kernel"], p["conv2"]["bias"], 1, "SAME")
    np.testing.assert_allclose(inter["intermediates"]["enc_block3"]["__call__"][0], jax.nn.relu(main + h2),
                               rtol=1e-4, atol=1e-5)


def test_arae_rejects_skips_and_bad_input():
    with pytest.raises(ValueError, match="skip"):
        ARAE((16, 16, 1), skip_weights=(0.5, 0.5)).init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
    model = ARAE((16, 16, 1))
    params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
    with pytest.raises(ValueError, match="expected NHWC images"):
        model.apply(params, jnp.zeros((1, 28, 28, 1)))


# --- DenseAE -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_dense_ae_shapes(shape):
    model = DenseAE(shape, n_embed=5, hidden=(8, 6))  # tiny hidden sizes: only the shapes matter
    x, params = _init(model, shape)
    x_hat, z = model.apply({"params": params}, x)
    assert x_hat.shape == x.shape and z.shape == (2, 5)
    enc = encoder_params(params)
    assert sorted(enc) == ["embed", "enc_dense0", "enc_dense1"]
    assert sorted(k for k in params if k.startswith("dec_")) == ["dec_dense0", "dec_dense1", "dec_out"]
    np.testing.assert_allclose(embed_fn(model)(enc, x), z, rtol=1e-6)
    np.testing.assert_allclose(model.apply({"params": params}, z, None, method="decode"), x_hat, rtol=1e-6)


def test_dense_ae_parameter_count_and_init():
    shape = (16, 16, 1)
    d = 256
    model = DenseAE(shape)  # d-500-500-2000-10
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1,) + shape))["params"])
    count = lambda p: sum(math.prod(a.shape) for a in jax.tree.leaves(p))
    enc_expected = d * 500 + 500 + 500 * 500 + 500 + 500 * 2000 + 2000 + 2000 * 10 + 10
    dec_expected = 10 * 2000 + 2000 + 2000 * 500 + 500 + 500 * 500 + 500 + 500 * d + d
    assert count(encoder_params(params)) == enc_expected
    assert count(params) == enc_expected + dec_expected
    s = _shapes(params)
    assert s["enc_dense0"]["kernel"] == (d, 500) and s["embed"]["kernel"] == (2000, 10)
    assert s["dec_dense0"]["kernel"] == (10, 2000) and s["dec_out"]["kernel"] == (500, d)
    # glorot uniform kernels, zero biases (small model to keep it fast)
    p = DenseAE(shape, hidden=(64,)).init(jax.random.key(0), jnp.zeros((1,) + shape))["params"]
    k = np.asarray(p["enc_dense0"]["kernel"])
    limit = np.sqrt(6.0 / (d + 64))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    assert all(np.all(np.asarray(v["bias"]) == 0) for v in p.values())


def test_dense_ae_is_linear_at_both_ends_and_checks_input():
    shape = (4, 4, 1)
    model = DenseAE(shape, n_embed=3, hidden=(5,))
    x, params = _init(model, shape)
    p = params
    h = jax.nn.relu(x.reshape(2, -1) @ p["enc_dense0"]["kernel"] + p["enc_dense0"]["bias"])
    z = h @ p["embed"]["kernel"] + p["embed"]["bias"]
    h = jax.nn.relu(z @ p["dec_dense0"]["kernel"] + p["dec_dense0"]["bias"])
    x_hat = (h @ p["dec_out"]["kernel"] + p["dec_out"]["bias"]).reshape(x.shape)
    got_x_hat, got_z = model.apply({"params": params}, x)
    np.testing.assert_allclose(got_z, z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_x_hat, x_hat, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expected NHWC images"):
        model.apply({"params": params}, jnp.zeros((1, 16)))


# --- binary preset -------------------------------------------------------------------------------

@pytest.mark.parametrize("skips", [None, (0.001, 0.999)])
@pytest.mark.parametrize("shape", [(16, 16, 1), (28, 28, 1), (16, 48, 1)])
def test_binary_cae(shape, skips):
    model = binary_cae(shape, skip_weights=skips)
    assert isinstance(model, CAE) and model.filters == (4, 2, 1) and model.kernels == (3, 3, 3)
    assert model.activation == "tanh" and BINARY_ARCH["activation"] == "tanh"
    x = 5.0 * jax.random.normal(jax.random.key(0), (2,) + shape)  # pre-activations beyond (-1, 1)
    params = model.init(jax.random.key(1), x)["params"]
    s = _shapes(params)
    assert [s[f"enc_conv{i}"]["kernel"] for i in range(3)] == [(3, 3, 1, 4), (3, 3, 4, 2), (3, 3, 2, 1)]
    assert [s[f"dec_conv{j}"]["kernel"] for j in range(3)] == [(3, 3, 1, 2), (3, 3, 2, 4), (3, 3, 4, 1)]
    (x_hat, z), inter = model.apply({"params": params}, x, capture_intermediates=True)
    assert x_hat.shape == x.shape and z.shape == (2, 2)
    assert s["embed"]["kernel"] == (math.prod(feature_shapes(shape, (4, 2, 1), (3, 3, 3))[-1]), 2)
    np.testing.assert_allclose(embed_fn(model)(encoder_params(params), x), z, rtol=1e-6)
    # tanh: the encoder features are tanh of the convolutions, in [-1, 1] (float32 tanh may round
    # to +-1), negative values included (a ReLU would give none)
    _, feats = model.apply({"params": params}, x, method=lambda m, x: m._encode(x))
    pre = inter["intermediates"]["enc_conv0"]["__call__"][0]
    assert float(jnp.abs(pre).max()) > 1.0
    np.testing.assert_allclose(feats[0], jnp.tanh(pre), rtol=1e-6)
    assert all(float(jnp.abs(f).max()) <= 1.0 for f in feats)
    assert float(feats[0].min()) < 0.0
