"""The CAE: shapes for every image size of the paper, the skip arithmetic, parameter layout."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax.layers import conv_down_lax, conv_up_lax
from sdekc_jax.models import CAE, check_image_shape, encoder_params

SHAPES = {(16, 16, 1): [(8, 8, 32), (4, 4, 64), (2, 2, 128)],
          (28, 28, 1): [(14, 14, 32), (7, 7, 64), (3, 3, 128)],
          (32, 32, 3): [(16, 16, 32), (8, 8, 64), (4, 4, 128)],
          (16, 48, 1): [(8, 24, 32), (4, 12, 64), (2, 6, 128)]}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_shapes(shape):
    model = CAE(shape, n_embed=7)
    x = jax.random.uniform(jax.random.key(0), (3,) + shape)
    variables = model.init(jax.random.key(1), x)
    x_hat, z = model.apply(variables, x)
    assert x_hat.shape == x.shape and z.shape == (3, 7)
    _, inter = model.apply(variables, x, capture_intermediates=True)
    feats = [inter["intermediates"][f"enc_conv{i}"]["__call__"][0].shape[1:] for i in range(3)]
    assert feats == SHAPES[shape]
    # the embedding method uses the encoder parameters only
    z2 = model.apply({"params": encoder_params(variables["params"])}, x, method=CAE.embed)
    np.testing.assert_allclose(z2, z, rtol=1e-6)


@pytest.mark.parametrize("weights", [(0.001, 0.999), (0.999, 0.001), (0.3, -2.0)])
def test_skip_arithmetic(weights):
    """Decoder layers 1 and 2 take w_enc * encoder feature + w_dec * decoder feature as input."""
    shape = (16, 16, 1)
    model = CAE(shape, n_embed=10, skip_weights=weights)
    x = jax.random.uniform(jax.random.key(0), (2,) + shape)
    params = model.init(jax.random.key(1), x)["params"]
    _, inter = model.apply({"params": params}, x, capture_intermediates=True)
    out = lambda name: inter["intermediates"][name]["__call__"][0]
    w_enc, w_dec = weights
    relu = jax.nn.relu
    # decoder layer j's input = w_enc * relu(encoder conv (1 - j)) + w_dec * relu(decoder conv (j - 1))
    for j, i in ((1, 1), (2, 0)):
        expected_in = w_enc * relu(out(f"enc_conv{i}")) + w_dec * relu(out(f"dec_conv{j - 1}"))
        p = params[f"dec_conv{j}"]
        pad = "SAME"
        expected_out = conv_up_lax(expected_in, p["kernel"], p["bias"], 2, pad)
        np.testing.assert_allclose(out(f"dec_conv{j}"), expected_out, rtol=1e-4, atol=1e-5)


def test_no_skips_is_plain_cae():
    shape = (16, 16, 1)
    x = jax.random.uniform(jax.random.key(0), (2,) + shape)
    plain = CAE(shape, skip_weights=None)
    params = plain.init(jax.random.key(1), x)["params"]
    # a hand-written plain decoder with the same parameters
    p = params
    h = x
    for i, pad in enumerate(["SAME", "SAME", "SAME"]):
        h = jax.nn.relu(conv_down_lax(h, p[f"enc_conv{i}"]["kernel"], p[f"enc_conv{i}"]["bias"], 2, pad))
    z = h.reshape(2, -1) @ p["embed"]["kernel"] + p["embed"]["bias"]
    h = jax.nn.relu(z @ p["dec_dense"]["kernel"] + p["dec_dense"]["bias"]).reshape(2, 2, 2, 128)
    for j in range(3):
        h = conv_up_lax(h, p[f"dec_conv{j}"]["kernel"], p[f"dec_conv{j}"]["bias"], 2, "SAME")
        h = jax.nn.relu(h) if j < 2 else h
    x_hat, z2 = plain.apply({"params": params}, x)
    np.testing.assert_allclose(z2, z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x_hat, h, rtol=1e-4, atol=1e-5)
    # and the skips change the output
    skip = CAE(shape, skip_weights=(0.5, 0.5))
    assert not np.allclose(skip.apply({"params": params}, x)[0], x_hat)


def test_parameter_layout_matches_flax_layers():
    params = CAE((28, 28, 1), 10).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    shapes = jax.tree.map(lambda a: a.shape, params)
    assert shapes["enc_conv0"]["kernel"] == (5, 5, 1, 32)
    assert shapes["enc_conv2"]["kernel"] == (3, 3, 64, 128)
    assert shapes["embed"]["kernel"] == (1152, 10)
    assert shapes["dec_dense"]["kernel"] == (10, 1152)
    assert shapes["dec_conv0"]["kernel"] == (3, 3, 128, 64)
    assert shapes["dec_conv2"]["kernel"] == (5, 5, 32, 1)


def test_glorot_init():
    params = CAE((28, 28, 1), 10).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    k = np.asarray(params["enc_conv1"]["kernel"])  # fan_in 5*5*32, fan_out 5*5*64
    limit = np.sqrt(6.0 / (5 * 5 * 32 + 5 * 5 * 64))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    assert np.all(np.asarray(params["enc_conv1"]["bias"]) == 0)


@pytest.mark.parametrize("bad", [(30, 30, 1), (18, 18, 1), (4, 4, 1)])
def test_unsupported_image_shape(bad):
    with pytest.raises(ValueError, match="not supported|too small"):
        check_image_shape(bad)


def test_wrong_input_shape():
    model = CAE((16, 16, 1))
    params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
    with pytest.raises(ValueError, match="expected NHWC images"):
        model.apply(params, jnp.zeros((1, 28, 28, 1)))
