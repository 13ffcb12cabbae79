"""The fast convolution formulations equal lax's convolutions (values and gradients)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax import layers as L
from sdekc_jax.models import feature_shapes, third_conv_padding

IMAGE_SHAPES = [(16, 16, 1), (28, 28, 1), (32, 32, 3), (16, 48, 1)]


def layer_cases():
    """(input shape, kernel shape, padding, transposed) of every conv layer of the CAE for each image shape."""
    cases = []
    filters, kernels = (32, 64, 128), (5, 5, 3)
    for shape in IMAGE_SHAPES:
        pads = ["SAME", "SAME", third_conv_padding(*shape[:2])]
        ins = [shape] + feature_shapes(shape, filters, kernels)
        for i in range(3):
            h, w, c = ins[i]
            cases.append(((2, h, w, c), (kernels[i], kernels[i], c, filters[i]), pads[i], False))
            # the decoder layer mirroring encoder layer i maps ins[i+1] back to ins[i]
            h2, w2, c2 = ins[i + 1]
            cases.append(((2, h2, w2, c2), (kernels[i], kernels[i], c2, c), pads[i], True))
    return sorted(set(cases))


FAST = {False: ["conv_down_gather", "conv_down_im2col"], True: ["conv_up_overlap", "conv_up_subpixel"]}


def test_defaults_are_fast_formulations():
    assert L.conv_down is L.conv_down_gather and L.conv_up is L.conv_up_overlap


def fast_cases():
    """Every layer shape with the default formulations; the alternatives on the 28x28 layers."""
    cases = [c + (0,) for c in layer_cases()]
    cases += [c + (1,) for c in layer_cases() if c[0][1] in (28, 14, 7, 3) and c[0][2] in (28, 14, 7, 3)]
    return cases


@pytest.mark.parametrize("x_shape,k_shape,padding,transposed,variant", fast_cases())
def test_fast_conv_equals_lax(x_shape, k_shape, padding, transposed, variant):
    kx, kk, kb, kg = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(kx, x_shape)
    kernel = jax.random.normal(kk, k_shape) / np.sqrt(np.prod(k_shape[:3]))
    bias = jax.random.normal(kb, k_shape[-1:])
    fast = getattr(L, FAST[transposed][variant])
    ref = L.conv_up_lax if transposed else L.conv_down_lax
    y_ref = ref(x, kernel, bias, 2, padding)
    y = fast(x, kernel, bias, 2, padding)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    # gradients w.r.t. input, kernel and bias of a random linear functional of the output
    g = jax.random.normal(kg, y_ref.shape)
    grads = lambda f: jax.grad(lambda a, b, c: jnp.sum(f(a, b, c, 2, padding) * g), argnums=(0, 1, 2))(x, kernel, bias)
    for a, b in zip(grads(fast), grads(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_output_sizes():
    assert L.conv_up_out_size(3, 3, 2, "VALID") == 7
    assert L.conv_up_out_size(7, 5, 2, "SAME") == 14
    assert L.conv_out_size(7, 3, 2, "VALID") == 3
    assert L.conv_out_size(28, 5, 2, "SAME") == 14


def test_weighted_skip_arithmetic():
    enc = jnp.array([1.0, 2.0, -3.0])
    dec = jnp.array([10.0, 0.0, 5.0])
    np.testing.assert_allclose(L.weighted_skip(enc, dec, (0.001, 0.999)), [9.991, 0.002, 4.992], rtol=1e-6)
    np.testing.assert_allclose(L.weighted_skip(enc, dec, (0.999, 0.001)), [1.009, 1.998, -2.992], rtol=1e-6)


@pytest.mark.parametrize("s,c0,size,k", [(2, -2, 14, 5), (2, 0, 7, 3), (2, -1, 8, 3), (1, -1, 5, 3)])
def test_window_gather_and_overlap_add_are_transposes(s, c0, size, k):
    """<gather(x), p> == <x, overlap_add(p)> for random x, p, and both match a hand-written loop."""
    out = (size + 2 * max(0, -c0) - k) // s + 1
    kx, kp = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (2, size, size + 1, 3))
    out_w = (size + 1 + 2 * max(0, -c0) - k) // s + 1
    p = jax.random.normal(kp, (2, out, out_w, k, k, 3))
    gx = L.window_gather(x, k, k, s, c0, c0, out, out_w)
    ap = L.overlap_add(p, s, c0, c0, size, size + 1)
    np.testing.assert_allclose(jnp.vdot(gx, p), jnp.vdot(x, ap), rtol=1e-4)
    xn, ref = np.asarray(x), np.zeros(gx.shape, np.float32)
    for i in range(out):
        for j in range(out_w):
            for a in range(k):
                for b in range(k):
                    r, c = s * i + a + c0, s * j + b + c0
                    if 0 <= r < size and 0 <= c < size + 1:
                        ref[:, i, j, a, b] = xn[:, r, c]
    np.testing.assert_allclose(gx, ref, rtol=1e-6)
    # the custom VJPs are each other
    _, vjp = jax.vjp(lambda x: L.window_gather(x, k, k, s, c0, c0, out, out_w), x)
    np.testing.assert_allclose(vjp(p)[0], ap, rtol=1e-5, atol=1e-5)
