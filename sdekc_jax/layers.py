"""Convolution layers of the autoencoders, each behind one small pure function.

Every convolution of the model goes through :func:`conv_down` (strided convolution) or
:func:`conv_up` (strided transposed convolution). Their parameters use the layout of
``flax.linen.Conv`` / ``flax.linen.ConvTranspose`` (``kernel`` of shape ``(kh, kw, in, out)``
and ``bias`` of shape ``(out,)``), so a faster formulation that computes exactly the same
function can be swapped in without touching checkpoints or the model code.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
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


# The implementations the models use by default.
conv_down = conv_down_im2col
conv_up = conv_up_subpixel


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


class Conv(nn.Module):
    """A (transposed) strided convolution whose computation is a swappable pure function."""

    features: int
    kernel_size: int
    stride: int = 2
    padding: Padding = "SAME"
    transpose: bool = False
    kernel_init: Callable = nn.initializers.xavier_uniform()
    bias_init: Callable = nn.initializers.zeros
    impl: Callable | None = None  # same signature as conv_down / conv_up

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        fn = self.impl or (conv_up if self.transpose else conv_down)
        return fn(x, kernel, bias, self.stride, self.padding)


def weighted_skip(encoder_feature: jax.Array, decoder_feature: jax.Array, weights: Sequence[float]) -> jax.Array:
    """The paper's weighted additive skip: ``w_enc * encoder_feature + w_dec * decoder_feature``."""
    w_enc, w_dec = weights
    return w_enc * encoder_feature + w_dec * decoder_feature
