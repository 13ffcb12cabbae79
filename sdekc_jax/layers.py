"""Convolution layers of the autoencoders, each behind one small pure function.

Every convolution of the models goes through :func:`conv_down` (strided convolution) or
:func:`conv_up` (strided transposed convolution), and every dense layer through :func:`dense`.
Their parameters use the layout of ``flax.linen.Conv`` / ``ConvTranspose`` / ``Dense``
(``kernel`` of shape ``(kh, kw, in, out)`` or ``(in, out)`` and ``bias`` of shape ``(out,)``), so
a formulation that computes the same function can be swapped in without touching checkpoints or
the model code.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


Padding = str  # "SAME" or "VALID"
_DIMS = ("NHWC", "HWIO", "NHWC")


def conv_down_lax(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """Reference strided convolution: ``lax.conv_general_dilated`` (``flax.linen.Conv`` semantics)."""
    y = lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=_DIMS)
    return y + bias


def conv_up_lax(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """Reference strided transposed convolution: ``lax.conv_transpose`` (``flax.linen.ConvTranspose``).

    Output size: ``in * stride`` for "SAME", ``(in - 1) * stride + k`` for "VALID".
    """
    y = lax.conv_transpose(x, kernel, (stride, stride), padding, dimension_numbers=_DIMS)
    return y + bias


# --- The same functions as patch extraction + one matrix product ------------------------------
# XLA:CPU runs its convolution kernels up to 17x slower inside loops (lax.scan / while_loop)
# than at top level, and the weight gradient of a transposed convolution is slow everywhere
# (jax issues 23783, 31662). Strided slices + one dot per layer compute exactly the same
# function and stay fast inside the compiled training loops; tests check values and gradients
# against the lax versions above for every layer shape the models use.


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _patches(x: jax.Array, kh: int, kw: int, out_h: int, out_w: int, stride: int, start=(0, 0)) -> jax.Array:
    """(N, out_h, out_w, kh*kw*C): the (i, j, c)-ordered receptive fields, as strided slices."""
    sh, sw = start
    span_h, span_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    cols = [x[:, sh + i:sh + i + span_h:stride, sw + j:sw + j + span_w:stride, :] for i in range(kh) for j in range(kw)]
    return jnp.concatenate(cols, axis=-1)


def conv_down_im2col(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """Strided convolution as patches @ kernel; equal to :func:`conv_down_lax`."""
    kh, kw, cin, cout = kernel.shape
    if padding == "SAME":
        ph, pw = _same_pads(x.shape[1], kh, stride), _same_pads(x.shape[2], kw, stride)
        x = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
    n, h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    p = _patches(x, kh, kw, oh, ow, stride)
    y = jnp.dot(p.reshape(-1, kh * kw * cin), kernel.reshape(kh * kw * cin, cout))
    return y.reshape(n, oh, ow, cout) + bias


def _transpose_padding(k: int, s: int, padding: Padding) -> tuple[int, int]:
    """Padding of the equivalent input-dilated convolution (as ``lax.conv_transpose`` computes it)."""
    if padding == "SAME":
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else -(-pad_len // 2)
    elif padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    else:
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return pad_a, pad_len - pad_a


@functools.lru_cache(maxsize=None)
def _subpixel_plan(size: int, k: int, s: int, padding: Padding):
    """For one spatial dimension of a stride-``s`` transposed convolution, written as ``s`` output
    phases ``o = s*q + r`` of one stride-1 correlation over a window of ``n_win`` input taps:
    returns (out_size, n_q, pad_before, pad_after, start, tap_index (n_win, s), tap_mask (n_win, s)).
    Output ``s*q + r`` sums ``x[q + start - pad_before + w] * kernel[tap_index[w, r]]`` over the
    window positions ``w`` where ``tap_mask[w, r]`` is 1."""
    pad_a, pad_b = _transpose_padding(k, s, padding)
    out = (size - 1) * s + 1 + pad_a + pad_b - k + 1
    n_q = -(-out // s)
    phases = []
    for r in range(s):
        t0 = (pad_a - r) % s  # the taps of phase r are t0, t0 + s, ...
        phases.append((t0, len(range(t0, k, s)), (r + t0 - pad_a) // s))
    lo = min(d for _, u, d in phases if u)
    hi = max(d + u - 1 for _, u, d in phases if u)
    n_win = hi - lo + 1
    index = np.zeros((n_win, s), np.int32)
    mask = np.zeros((n_win, s), np.float32)
    for r, (t0, n_taps, d) in enumerate(phases):
        for u in range(n_taps):
            index[d - lo + u, r] = t0 + s * u
            mask[d - lo + u, r] = 1.0
    before = max(0, -lo)
    after = max(0, n_q - 1 + lo + n_win - 1 - (size - 1))
    return out, n_q, before, after, lo + before, index, mask


def conv_up_subpixel(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """Strided transposed convolution as one stride-1 product to ``stride**2 * C`` channels followed
    by depth-to-space ("sub-pixel"); equal to :func:`conv_up_lax`, without the multiplications by
    the zeros that input dilation inserts."""
    kh, kw, cin, cout = kernel.shape
    s = stride
    n, h, w, _ = x.shape
    oh, qh, bh, ah, sh, ih, mh = _subpixel_plan(h, kh, s, padding)
    ow, qw, bw, aw, sw, iw, mw = _subpixel_plan(w, kw, s, padding)
    # Combined kernel (win_h, win_w, cin, s, s, cout); zero where a phase has no tap.
    kc = kernel[ih[:, None, :, None], iw[None, :, None, :]]  # (win_h, win_w, s, s, cin, cout)
    kc = kc * (mh[:, None, :, None] * mw[None, :, None, :])[..., None, None]
    wh, ww = kc.shape[:2]
    kc = kc.transpose(0, 1, 4, 2, 3, 5).reshape(wh * ww * cin, s * s * cout)
    xp = jnp.pad(x, ((0, 0), (bh, ah), (bw, aw), (0, 0)))
    p = _patches(xp, wh, ww, qh, qw, 1, start=(sh, sw))
    y = jnp.dot(p.reshape(-1, wh * ww * cin), kc)
    y = y.reshape(n, qh, qw, s, s, cout).transpose(0, 1, 3, 2, 4, 5).reshape(n, qh * s, qw * s, cout)
    return y[:, :oh, :ow] + bias


# --- Gather / overlap-add pairs: every pass of every layer is a gather plus one product --------
# The im2col / sub-pixel forms above gather in the forward pass, so their backward passes scatter
# (the transpose of a strided slice is a pad; 25 of them are summed per layer), which XLA:CPU
# runs slowly. `window_gather` and `overlap_add` are each other's transpose; with a custom VJP,
# each one's backward pass is the other, so a strided convolution is gather + product in the
# forward pass and product + overlap-add in the backward pass, a transposed convolution the other
# way round, and nothing scatters.


def _window_gather(x, kh, kw, s, c0h, c0w, h, w):
    """``out[n, i, j, a, b, c] = x[n, s*i + a + c0h, s*j + b + c0w, c]`` (zero outside ``x``)."""
    n, H, W, c = x.shape
    bh, bw = max(0, -c0h), max(0, -c0w)
    ah = max(0, s * (h - 1) + kh - 1 + c0h - (H - 1))
    aw = max(0, s * (w - 1) + kw - 1 + c0w - (W - 1))
    xp = jnp.pad(x, ((0, 0), (bh, ah), (bw, aw), (0, 0)))
    return _patches(xp, kh, kw, h, w, s, start=(c0h + bh, c0w + bw)).reshape(n, h, w, kh, kw, c)


def _phase_taps(k: int, s: int, c0: int, size: int, out: int):
    """Output ``o = s*q + r`` receives ``p[q + d, a]`` for the ``(a, d)`` of phase ``r``."""
    n_q = -(-out // s)
    phases = [[(a, (r - a - c0) // s) for a in range(k) if (r - a - c0) % s == 0] for r in range(s)]
    ds = [d for ph in phases for _, d in ph] or [0]
    return n_q, max(0, -min(ds)), max(0, n_q - 1 + max(ds) - (size - 1)), phases


def _overlap_add(p, s, c0h, c0w, H, W):
    """``y[n, o, o', c] = sum of p[n, i, j, a, b, c] over s*i + a + c0h = o, s*j + b + c0w = o'``,
    computed per output phase as sums of shifted slices (no scatter), then depth-to-space."""
    n, h, w, kh, kw, c = p.shape
    qh, bh, ah, ph = _phase_taps(kh, s, c0h, h, H)
    qw, bw, aw, pw = _phase_taps(kw, s, c0w, w, W)
    pp = jnp.pad(p, ((0, 0), (bh, ah), (bw, aw), (0, 0), (0, 0), (0, 0)))
    rows = []
    for rh in range(s):
        row = []
        for rw in range(s):
            acc = jnp.zeros((n, qh, qw, c), p.dtype)
            for a, dh in ph[rh]:
                for b, dw in pw[rw]:
                    acc = acc + pp[:, dh + bh:dh + bh + qh, dw + bw:dw + bw + qw, a, b, :]
            row.append(acc)
        rows.append(jnp.stack(row, axis=3))
    return jnp.stack(rows, axis=2).reshape(n, qh * s, qw * s, c)[:, :H, :W]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5, 6, 7))
def window_gather(x, kh, kw, s, c0h, c0w, h, w):
    """Strided windows of ``x`` as ``(n, h, w, kh, kw, c)``; its VJP is :func:`overlap_add`."""
    return _window_gather(x, kh, kw, s, c0h, c0w, h, w)


def _window_gather_fwd(x, kh, kw, s, c0h, c0w, h, w):
    return _window_gather(x, kh, kw, s, c0h, c0w, h, w), x.shape[1:3]


def _window_gather_bwd(kh, kw, s, c0h, c0w, h, w, size, g):
    return (overlap_add(g, s, c0h, c0w, size[0], size[1]),)


window_gather.defvjp(_window_gather_fwd, _window_gather_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def overlap_add(p, s, c0h, c0w, H, W):
    """Sum of windows ``p`` (n, h, w, kh, kw, c) placed at stride ``s`` into (n, H, W, c); the
    transpose of :func:`window_gather`, which is its VJP."""
    return _overlap_add(p, s, c0h, c0w, H, W)


def _overlap_add_fwd(p, s, c0h, c0w, H, W):
    return _overlap_add(p, s, c0h, c0w, H, W), p.shape[1:5]


def _overlap_add_bwd(s, c0h, c0w, H, W, shape, g):
    h, w, kh, kw = shape
    return (window_gather(g, kh, kw, s, c0h, c0w, h, w),)


overlap_add.defvjp(_overlap_add_fwd, _overlap_add_bwd)


def conv_down_gather(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """Strided convolution as :func:`window_gather` + one product (backward: product +
    :func:`overlap_add`); equal to :func:`conv_down_lax`."""
    kh, kw, cin, cout = kernel.shape
    n, H, W, _ = x.shape
    if padding == "SAME":
        ph, pw = _same_pads(H, kh, stride)[0], _same_pads(W, kw, stride)[0]
    elif padding == "VALID":
        ph = pw = 0
    else:
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    oh, ow = conv_out_size(H, kh, stride, padding), conv_out_size(W, kw, stride, padding)
    p = window_gather(x, kh, kw, stride, -ph, -pw, oh, ow)
    y = jnp.dot(p.reshape(-1, kh * kw * cin), kernel.reshape(kh * kw * cin, cout))
    return y.reshape(n, oh, ow, cout) + bias


def conv_up_overlap(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """Strided transposed convolution as one product to ``k*k*C`` per input pixel +
    :func:`overlap_add` (backward: :func:`window_gather` + products); equal to :func:`conv_up_lax`."""
    kh, kw, cin, cout = kernel.shape
    n, h, w, _ = x.shape
    pah, pbh = _transpose_padding(kh, stride, padding)
    paw, pbw = _transpose_padding(kw, stride, padding)
    oh, ow = (h - 1) * stride + 1 + pah + pbh - kh + 1, (w - 1) * stride + 1 + paw + pbw - kw + 1
    # lax.conv_transpose: o = s*i + pa - a; with the taps reversed (a' = k-1-a), o = s*i + a' + pa-k+1.
    kf = kernel[::-1, ::-1].transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
    p = jnp.dot(x.reshape(-1, cin), kf).reshape(n, h, w, kh, kw, cout)
    return overlap_add(p, stride, pah - kh + 1, paw - kw + 1, oh, ow) + bias


# --- The kernels the models call: chosen per backend ------------------------------------------
# "auto" traces both formulations under ``lax.platform_dependent``: the gather / overlap-add forms
# on CPU (XLA:CPU's own convolutions are slow inside compiled loops), ``lax`` convolutions on every
# other platform (native convolutions on the MXU / tensor cores). Lowering keeps only the branch of
# the platform it lowers for, so one traced program exports for any platform. "lax" / "gather"
# force one formulation everywhere. All compute the same function.
CONV_IMPLS = ("auto", "lax", "gather")
PRECISIONS = ("float32", "bf16")


def _compute_in(precision: str, *arrays):
    if precision == "float32":
        return arrays
    if precision == "bf16":
        return tuple(a.astype(jnp.bfloat16) for a in arrays)
    raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")


def _per_backend(cpu_fn, other_fn, x, kernel, bias, stride, padding, impl, precision):
    x, kernel = _compute_in(precision, x, kernel)
    cpu = lambda a, k, b: cpu_fn(a, k, b, stride, padding)
    other = lambda a, k, b: other_fn(a, k, b, stride, padding)
    if impl == "auto":
        y = lax.platform_dependent(x, kernel, bias, cpu=cpu, default=other)
    elif impl in ("gather", "lax"):
        y = (cpu if impl == "gather" else other)(x, kernel, bias)
    else:
        raise ValueError(f"conv impl must be one of {list(CONV_IMPLS)}, got {impl!r}")
    return y.astype(jnp.float32)


def conv_down(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int, padding: Padding, *,
              impl: str = "auto", precision: str = "float32") -> jax.Array:
    """Strided convolution (``flax.linen.Conv``'s function): :func:`conv_down_gather` on CPU and
    :func:`conv_down_lax` elsewhere (``impl="auto"``), or the one ``impl`` names. ``precision="bf16"``
    computes in bfloat16 (inputs and kernel cast; the bias add and the result in float32)."""
    return _per_backend(conv_down_gather, conv_down_lax, x, kernel, bias, stride, padding, impl, precision)


def conv_up(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int, padding: Padding, *,
            impl: str = "auto", precision: str = "float32") -> jax.Array:
    """Strided transposed convolution (``flax.linen.ConvTranspose``'s function):
    :func:`conv_up_overlap` on CPU and :func:`conv_up_lax` elsewhere; ``impl`` and ``precision`` as
    in :func:`conv_down`."""
    return _per_backend(conv_up_overlap, conv_up_lax, x, kernel, bias, stride, padding, impl, precision)


def conv_out_size(size: int, kernel: int, stride: int, padding: Padding) -> int:
    """Spatial size after :func:`conv_down`."""
    if padding == "SAME":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def conv_up_out_size(size: int, kernel: int, stride: int, padding: Padding) -> int:
    """Spatial size after :func:`conv_up`."""
    if padding == "SAME":
        return size * stride
    return (size - 1) * stride + kernel


def dense(params: dict, x: jax.Array, *, precision: str = "float32") -> jax.Array:
    """``x @ kernel + bias`` over the last axis of ``x`` (``flax.linen.Dense``'s function);
    ``precision="bf16"``: the product in bfloat16 (accumulated and returned in float32)."""
    xc, k = _compute_in(precision, x, params["kernel"])
    return jnp.dot(xc, k, preferred_element_type=jnp.float32) + params["bias"]


def weighted_skip(encoder_feature: jax.Array, decoder_feature: jax.Array, weights) -> jax.Array:
    """The paper's weighted additive skip: ``w_enc * encoder_feature + w_dec * decoder_feature``.
    ``weights`` is ``(w_enc, w_dec)``: numbers or a traced array of shape (2,)."""
    w_enc, w_dec = weights[0], weights[1]
    return w_enc * encoder_feature + w_dec * decoder_feature
