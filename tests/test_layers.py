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


@pytest.mark.parametrize("transposed", [False, True])
def test_kernels_are_chosen_per_backend(transposed):
    """``impl="auto"`` is the gather form on CPU (same bits) and lowers to native convolutions for
    TPU and CUDA; ``"lax"`` / ``"gather"`` force one everywhere; bf16 computes the same function
    to bfloat16 precision and returns float32."""
    kx, kk, kb = jax.random.split(jax.random.key(1), 3)
    x, kernel = jax.random.normal(kx, (2, 8, 8, 3)), jax.random.normal(kk, (5, 5, 3, 4)) / 8
    bias = jax.random.normal(kb, (4,))
    f, cpu_form, lax_form = ((L.conv_up, L.conv_up_overlap, L.conv_up_lax) if transposed else
                             (L.conv_down, L.conv_down_gather, L.conv_down_lax))
    auto = jax.jit(lambda *a: f(*a, 2, "SAME"))(x, kernel, bias)
    np.testing.assert_array_equal(np.asarray(auto), np.asarray(jax.jit(lambda *a: cpu_form(*a, 2, "SAME"))(x, kernel, bias)))
    forced = jax.jit(lambda *a: f(*a, 2, "SAME", impl="lax"))(x, kernel, bias)
    np.testing.assert_allclose(np.asarray(forced), np.asarray(lax_form(x, kernel, bias, 2, "SAME")), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(forced), np.asarray(auto), rtol=1e-5, atol=1e-5)
    bf = jax.jit(lambda *a: f(*a, 2, "SAME", precision="bf16"))(x, kernel, bias)
    assert bf.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(bf), np.asarray(auto), rtol=0.05, atol=0.05)
    from jax import export
    for platform, n_conv in (("cpu", 0), ("tpu", 1), ("cuda", 1)):
        text = export.export(jax.jit(lambda *a: f(*a, 2, "SAME")), platforms=[platform])(x, kernel, bias).mlir_module()
        assert text.count("stablehlo.convolution") == n_conv, platform
    with pytest.raises(ValueError, match="impl"):
        f(x, kernel, bias, 2, "SAME", impl="fast")
    with pytest.raises(ValueError, match="precision"):
        f(x, kernel, bias, 2, "SAME", precision="fp8")


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
    y_ref = jax.eval_shape(lambda: ref(x, kernel, bias, 2, padding))
    g = jax.random.normal(kg, y_ref.shape)

    @jax.jit  # one compiled program per case (op by op is several times slower on CPU)
    def values_and_grads(x, kernel, bias, g):
        # gradients w.r.t. input, kernel and bias of a random linear functional of the output
        grads = lambda f: jax.grad(lambda a, b, c: jnp.sum(f(a, b, c, 2, padding) * g), argnums=(0, 1, 2))(x, kernel, bias)
        return fast(x, kernel, bias, 2, padding), ref(x, kernel, bias, 2, padding), grads(fast), grads(ref)

    y, y_ref, g_fast, g_ref = values_and_grads(x, kernel, bias, g)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_ref):
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
    gather = lambda x: L.window_gather(x, k, k, s, c0, c0, out, out_w)

    @jax.jit
    def both(x, p):
        return gather(x), L.overlap_add(p, s, c0, c0, size, size + 1), jax.vjp(gather, x)[1](p)[0]

    gx, ap, vjp_p = both(x, p)
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
    np.testing.assert_allclose(vjp_p, ap, rtol=1e-5, atol=1e-5)


def test_dense():
    kx, kk, kb = jax.random.split(jax.random.key(2), 3)
    x = jax.random.normal(kx, (2, 3, 4))
    params = {"kernel": jax.random.normal(kk, (4, 5)), "bias": jax.random.normal(kb, (5,))}
    y = L.dense(params, x)
    assert y.shape == (2, 3, 5)
    ref = np.einsum("abi,io->abo", np.asarray(x), np.asarray(params["kernel"])) + np.asarray(params["bias"])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_weighted_skip_takes_traced_weights():
    enc, dec = jnp.array([1.0, 2.0, -3.0]), jnp.array([10.0, 0.0, 5.0])
    f = jax.jit(L.weighted_skip)
    np.testing.assert_allclose(f(enc, dec, jnp.array([0.001, 0.999])), [9.991, 0.002, 4.992], rtol=1e-6)
    np.testing.assert_array_equal(f(enc, dec, jnp.array([0.0, 1.0])), dec)  # (0, 1): the decoder feature, exactly
    np.testing.assert_allclose(jax.vmap(f, (None, None, 0))(enc, dec, jnp.array([[0.001, 0.999], [1.0, 0.0]]))[1], enc)


@pytest.mark.parametrize("padding", ["SAME", "VALID", "FULL"])
def test_padding_names(padding):
    x, k, b = jnp.zeros((1, 8, 8, 1)), jnp.zeros((3, 3, 1, 2)), jnp.zeros((2,))
    if padding == "FULL":
        with pytest.raises(ValueError, match="padding must be"):
            L.conv_down(x, k, b, 2, padding)
        with pytest.raises(ValueError, match="padding must be"):
            L.conv_up(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 1)), jnp.zeros((1,)), 2, padding)
    else:
        assert jax.eval_shape(lambda: L.conv_down(x, k, b, 2, padding)).shape[1] == L.conv_out_size(8, 3, 2, padding)
