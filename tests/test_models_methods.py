"""The other autoencoders as pure functions: the dense AE (DEC/IDEC), the ARAE (residual encoder +
the CAE's decoder) and the binary preset of Table 2 (as ``methods.base.run_config`` builds it).
Computations are jitted (one compiled program each: faster on CPU than op by op)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax.config import RunConfig
from sdekc_jax.layers import conv_down, conv_down_lax
from sdekc_jax.methods import get_method, run_config
from sdekc_jax.models import (BINARY_ARCH, decode, embed, encode, feature_shapes, init_params, param_count,
                              reconstruct)

IMAGE_SHAPES = [(16, 16, 1), (28, 28, 1), (32, 32, 3), (16, 48, 1)]
# param_count (total, encoder) with a 10-d embedding: the Linen modules' counts before the
# functional refactor, pinned (the architectures did not change)
ARAE_COUNTS = {(16, 16, 1): (728683, 597226), (28, 28, 1): (742123, 603626),
               (32, 32, 3): (763181, 613226), (16, 48, 1): (750187, 607466)}
DENSE_COUNTS = {(16, 16, 1): (2802266, 1401010), (28, 28, 1): (3330794, 1665010),
                (32, 32, 3): (5621082, 2809010), (16, 48, 1): (3314778, 1657010)}
BINARY_COUNTS = {(16, 16, 1): (288, 143), (28, 28, 1): (313, 153), (16, 48, 1): (328, 159)}


def _shapes(tree):
    return jax.tree.map(lambda a: a.shape, tree)


def _x(shape, n=2, seed=0):
    return jax.random.uniform(jax.random.key(seed), (n,) + tuple(shape))


def _abstract(cfg):
    """init_params' shapes, without computing anything."""
    return jax.eval_shape(lambda: init_params(jax.random.key(0), cfg))


@jax.jit
def _forward(params, x):
    z, feats = encode(params["encoder"], x)
    return z, feats, decode(params["decoder"], z, feats, None), embed(params["encoder"], x)


# --- layers.conv_down at stride 1 / kernel 1 (the ARAE's extra convolutions) ----------------------

@pytest.mark.parametrize("k, padding, size", [(3, "SAME", 7), (3, "SAME", 4), (1, "VALID", 4), (1, "VALID", 3)])
def test_conv_stride1_and_kernel1_match_lax(k, padding, size):
    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 3))
    kernel = jax.random.normal(jax.random.key(1), (k, k, 3, 5)) / np.sqrt(k * k * 3)
    params = {"kernel": kernel, "bias": jnp.full((5,), 0.1)}
    conv = lambda p, x, f: f(x, p["kernel"], p["bias"], 1, padding)
    y, ref = jax.jit(lambda p, x: (conv(p, x, conv_down), conv(p, x, conv_down_lax)))(params, x)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    # gradients (layers.conv_down has a custom VJP)
    grads = jax.jit(lambda p, x: [jax.grad(lambda p, x: jnp.sum(jnp.sin(conv(p, x, f))), (0, 1))(p, x)
                                  for f in (conv_down, conv_down_lax)])
    g, g_ref = grads(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), g, g_ref)


# --- ARAE ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_arae_shapes_features_and_decoder(shape):
    cfg = RunConfig(image_shape=shape, arch="arae", embedding_dim=7)
    params = init_params(jax.random.key(1), cfg)
    x = _x(shape)
    z, feats, x_hat, z_emb = _forward(params, x)
    assert x_hat.shape == x.shape and z.shape == (2, 7)
    # the skip features: the outputs of blocks 0..2, with the CAE's feature shapes
    assert [f.shape[1:] for f in feats] == feature_shapes(shape, (32, 64, 128), (5, 5, 3))
    np.testing.assert_array_equal(z_emb, z)
    # the decoder is the plain CAE's, parameter for parameter
    cae = _abstract(cfg.replace(arch="cae"))
    assert _shapes(params["decoder"]) == _shapes(cae["decoder"])
    assert sorted(params["decoder"]) == ["conv0", "conv1", "conv2", "dense"]
    # encoder: residual blocks + embedding, no plain convolutions
    assert sorted(params["encoder"]) == ["block0", "block1", "block2", "block3", "embed"]


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_arae_parameter_counts(shape):
    params = _abstract(RunConfig(image_shape=shape, arch="arae", embedding_dim=10))
    assert (param_count(params), param_count(params["encoder"])) == ARAE_COUNTS[shape]
    cae = _abstract(RunConfig(image_shape=shape, embedding_dim=10))
    assert param_count(params["decoder"]) == param_count(cae["decoder"])


def test_arae_block_parameters():
    s = _shapes(_abstract(RunConfig(image_shape=(28, 28, 1), arch="arae", embedding_dim=10))["encoder"])
    assert s["block0"] == {"conv1": {"kernel": (3, 3, 1, 32), "bias": (32,)},
                           "conv2": {"kernel": (3, 3, 32, 32), "bias": (32,)},
                           "proj": {"kernel": (1, 1, 1, 32), "bias": (32,)}}
    assert s["block2"]["proj"]["kernel"] == (1, 1, 64, 128)
    assert s["block3"] == {"conv1": {"kernel": (3, 3, 128, 128), "bias": (128,)},
                           "conv2": {"kernel": (3, 3, 128, 128), "bias": (128,)}}  # identity shortcut
    assert s["embed"]["kernel"] == (3 * 3 * 128, 10)


def _block(p, h, stride, padding):
    main = jax.nn.relu(conv_down_lax(h, p["conv1"]["kernel"], p["conv1"]["bias"], stride, padding))
    return conv_down_lax(main, p["conv2"]["kernel"], p["conv2"]["bias"], 1, "SAME")


def test_arae_residual_arithmetic():
    """28x28: block 2 (VALID, 7 -> 3, cropped projection shortcut) by hand; block 3 (identity
    shortcut) is ReLU(input) when its convolutions are zero and relu(conv2(relu(conv1(h))) + h)
    otherwise, seen through the (linear) embedding."""
    shape = (28, 28, 1)
    params = init_params(jax.random.key(1), RunConfig(image_shape=shape, arch="arae", embedding_dim=10))
    enc = params["encoder"]
    x = _x(shape)
    zeroed = {**enc, "block3": jax.tree.map(jnp.zeros_like, enc["block3"])}
    run = jax.jit(lambda e, x: encode(e, x))
    (z0, feats), (z, _) = run(zeroed, x), run(enc, x)
    h1, h2 = feats[1], feats[2]  # (2, 7, 7, 64), (2, 3, 3, 128), post-ReLU
    p = enc["block2"]
    short = h1[:, 0:5:2, 0:5:2, :] @ p["proj"]["kernel"][0, 0] + p["proj"]["bias"]  # rows/cols 0, 2, 4
    expected = jax.nn.relu(_block(p, h1, 2, "VALID") + short)
    assert expected.shape == h2.shape == (2, 3, 3, 128)
    np.testing.assert_allclose(h2, expected, rtol=1e-4, atol=1e-5)
    flat_embed = lambda h: h.reshape(2, -1) @ enc["embed"]["kernel"] + enc["embed"]["bias"]
    np.testing.assert_allclose(z0, flat_embed(jax.nn.relu(h2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z, flat_embed(jax.nn.relu(_block(enc["block3"], h2, 1, "SAME") + h2)),
                               rtol=1e-4, atol=1e-5)


def test_arae_refuses_bad_input():
    enc = init_params(jax.random.key(0), RunConfig(image_shape=(16, 16, 1), arch="arae"))["encoder"]
    with pytest.raises(ValueError, match="expected NHWC images"):
        encode(enc, jnp.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="do not fit these parameters"):
        jax.eval_shape(lambda x: encode(enc, x), jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32))


# --- dense AE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_dense_ae_shapes(shape):
    cfg = RunConfig(image_shape=shape, arch="dense", embedding_dim=5, hidden=(8, 6))  # tiny: only shapes matter
    params = init_params(jax.random.key(1), cfg)
    x = _x(shape)
    z, feats, x_flat, z_emb = _forward(params, x)
    d = math.prod(shape)
    assert z.shape == (2, 5) and feats == [] and x_flat.shape == (2, d)  # the decoder returns flat rows
    assert sorted(params["encoder"]) == ["dense0", "dense1", "embed"]
    assert sorted(params["decoder"]) == ["dense0", "dense1", "out"]
    np.testing.assert_array_equal(z_emb, z)
    x_hat, z2 = jax.jit(reconstruct)(params, x)
    assert x_hat.shape == x.shape  # reconstruct reshapes
    np.testing.assert_array_equal(x_hat.reshape(2, d), x_flat)
    np.testing.assert_array_equal(z2, z)


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_dense_ae_parameter_counts(shape):
    params = _abstract(RunConfig(image_shape=shape, arch="dense", embedding_dim=10))  # d-500-500-2000-10
    assert (param_count(params), param_count(params["encoder"])) == DENSE_COUNTS[shape]


def test_dense_ae_parameter_layout_and_init():
    shape = (16, 16, 1)
    d = 256
    params = _abstract(RunConfig(image_shape=shape, arch="dense"))  # d-500-500-2000-10
    enc_expected = d * 500 + 500 + 500 * 500 + 500 + 500 * 2000 + 2000 + 2000 * 10 + 10
    dec_expected = 10 * 2000 + 2000 + 2000 * 500 + 500 + 500 * 500 + 500 + 500 * d + d
    assert param_count(params["encoder"]) == enc_expected
    assert param_count(params) == enc_expected + dec_expected
    s = _shapes(params)
    assert s["encoder"]["dense0"]["kernel"] == (d, 500) and s["encoder"]["embed"]["kernel"] == (2000, 10)
    assert s["decoder"]["dense0"]["kernel"] == (10, 2000) and s["decoder"]["out"]["kernel"] == (500, d)
    # glorot uniform kernels, zero biases (small model to keep it fast)
    p = init_params(jax.random.key(0), RunConfig(image_shape=shape, arch="dense", hidden=(64,)))
    k = np.asarray(p["encoder"]["dense0"]["kernel"])
    limit = np.sqrt(6.0 / (d + 64))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    assert all(np.all(np.asarray(v["bias"]) == 0) for part in p.values() for v in part.values())


def test_dense_ae_is_linear_at_both_ends_and_checks_input():
    shape = (4, 4, 1)
    params = init_params(jax.random.key(1), RunConfig(image_shape=shape, arch="dense", embedding_dim=3, hidden=(5,)))
    e, dc = params["encoder"], params["decoder"]
    x = _x(shape)
    h = jax.nn.relu(x.reshape(2, -1) @ e["dense0"]["kernel"] + e["dense0"]["bias"])
    z = h @ e["embed"]["kernel"] + e["embed"]["bias"]
    h = jax.nn.relu(z @ dc["dense0"]["kernel"] + dc["dense0"]["bias"])
    x_flat = h @ dc["out"]["kernel"] + dc["out"]["bias"]
    got_z, _, got_x_flat, _ = _forward(params, x)
    np.testing.assert_allclose(got_z, z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_x_flat, x_flat, rtol=1e-5, atol=1e-6)
    # flat rows of the right size are the same inputs; any other size is refused
    np.testing.assert_allclose(encode(e, x.reshape(2, 16))[0], got_z, rtol=1e-5, atol=1e-6)
    for bad in ((1, 17), (1, 16, 16, 1), (1, 4, 4, 3)):
        with pytest.raises(ValueError, match="expected inputs of 16 values"):
            encode(e, jnp.zeros(bad))
    with pytest.raises(ValueError, match="no skips"):
        decode(dc, z, [], jnp.array([0.5, 0.5]))


# --- binary preset -------------------------------------------------------------------------------

def test_binary_preset_config():
    assert BINARY_ARCH == dict(filters=(4, 2, 1), kernels=(3, 3, 3), activation="tanh", embedding_dim=2)
    for name in ("cae-kmeans", "dcec", "idcec", "sidcec", "dekm", "sdekc"):
        m = get_method(name)
        rc = run_config(m, m.config(), (16, 16, 1), 10, arch="binary")
        assert (rc.arch, rc.filters, rc.kernels, rc.activation) == ("cae", (4, 2, 1), (3, 3, 3), "tanh")
        assert rc.embed_dim == 2 and rc.n_clusters == 10  # 2-d embedding whatever the number of clusters
    m = get_method("sidcec")
    assert run_config(m, m.config(embedding_dim=3), (16, 16, 1), 2, arch="binary").embed_dim == 3
    with pytest.raises(ValueError, match="architecture 'binary'"):
        run_config(get_method("dec"), get_method("dec").config(), (16, 16, 1), 2, arch="binary")


@pytest.mark.parametrize("shape", [(16, 16, 1), (28, 28, 1), (16, 48, 1)])
def test_binary_cae(shape):
    m = get_method("sidcec")
    rc = run_config(m, m.config(), shape, 2, arch="binary")
    assert (rc.image_shape, rc.arch, rc.activation, rc.embed_dim) == (shape, "cae", "tanh", 2)
    params = init_params(jax.random.key(1), rc)
    # the same model as RunConfig(..., **BINARY_ARCH)
    assert _shapes(params) == _shapes(_abstract(RunConfig(n_clusters=2, image_shape=shape, **BINARY_ARCH)))
    s = _shapes(params)
    assert [s["encoder"][f"conv{i}"]["kernel"] for i in range(3)] == [(3, 3, 1, 4), (3, 3, 4, 2), (3, 3, 2, 1)]
    assert [s["decoder"][f"conv{j}"]["kernel"] for j in range(3)] == [(3, 3, 1, 2), (3, 3, 2, 4), (3, 3, 4, 1)]
    last = feature_shapes(shape, (4, 2, 1), (3, 3, 3))[-1]
    assert s["encoder"]["embed"]["kernel"] == (math.prod(last), 2) and s["decoder"]["dense"]["kernel"] == (2, math.prod(last))
    assert (param_count(params), param_count(params["encoder"])) == BINARY_COUNTS[shape]
    x = 5.0 * jax.random.normal(jax.random.key(0), (2,) + shape)  # pre-activations beyond (-1, 1)

    @jax.jit
    def forward(params, x, w):
        z, feats = encode(params["encoder"], x, activation="tanh")
        pre = conv_down_lax(x, params["encoder"]["conv0"]["kernel"], params["encoder"]["conv0"]["bias"], 2, "SAME")
        return z, feats, pre, [decode(params["decoder"], z, feats, w_, activation="tanh") for w_ in (None, w)]

    z, feats, pre, x_hats = forward(params, x, jnp.array([0.001, 0.999]))
    assert z.shape == (2, 2) and all(xh.shape == x.shape for xh in x_hats)
    assert [f.shape[1:] for f in feats] == feature_shapes(shape, (4, 2, 1), (3, 3, 3))
    # tanh: the encoder features are tanh of the convolutions, in [-1, 1] (float32 tanh may round
    # to +-1), negative values included (a ReLU would give none)
    assert float(jnp.abs(pre).max()) > 1.0
    np.testing.assert_allclose(feats[0], jnp.tanh(pre), rtol=1e-5, atol=1e-6)
    assert all(float(jnp.abs(f).max()) <= 1.0 for f in feats)
    assert float(feats[0].min()) < 0.0
