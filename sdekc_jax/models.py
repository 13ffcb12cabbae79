"""The convolutional autoencoder of DEKM / SDEKC, with the two weighted additive skips.

Encoder: conv 32 5x5 s2 -> conv 64 5x5 s2 -> conv 128 3x3 s2 -> flatten -> dense embedding
(linear). The third convolution pads "SAME" when height and width are divisible by 8 and
"VALID" otherwise (28 -> 14 -> 7 -> 3), as in the DEKM reference code.
Decoder: dense -> reshape -> transposed convolutions mirroring the encoder -> linear output.

Skips: the decoder feature map that has the shape of encoder feature ``i`` (the outputs of
conv 2, then conv 1) is replaced by ``w_enc * encoder_i + w_dec * decoder`` before the next
transposed convolution. ``skip_weights=None`` is the plain CAE of DEKM.

Use through ``init``/``apply``::

    model = CAE(image_shape=(28, 28, 1), n_embed=10, skip_weights=(0.001, 0.999))
    params = model.init(key, x[:1])["params"]
    x_hat, z = model.apply({"params": params}, x)
    z = model.apply({"params": params}, x, method=CAE.embed)   # touches encoder params only
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from .layers import Conv, conv_out_size, conv_up_out_size, weighted_skip

_ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh}


def third_conv_padding(height: int, width: int) -> str:
    """DEKM's rule for the last encoder convolution."""
    return "SAME" if height % 8 == 0 and width % 8 == 0 else "VALID"


def conv_paddings(height: int, width: int, n_layers: int) -> list[str]:
    """Paddings of the encoder convolutions (the decoder mirrors them)."""
    return ["SAME"] * (n_layers - 1) + [third_conv_padding(height, width)]


def feature_shapes(image_shape: Sequence[int], filters: Sequence[int], kernels: Sequence[int]) -> list[tuple[int, int, int]]:
    """Shapes (H, W, C) of the encoder feature maps for an input of ``image_shape`` (H, W, C)."""
    h, w = int(image_shape[0]), int(image_shape[1])
    pads = conv_paddings(h, w, len(filters))
    shapes = []
    for f, k, p in zip(filters, kernels, pads):
        h, w = conv_out_size(h, k, 2, p), conv_out_size(w, k, 2, p)
        if h < 1 or w < 1:
            raise ValueError(f"image shape {tuple(image_shape)} is too small for {len(filters)} stride-2 convolutions")
        shapes.append((h, w, f))
    return shapes


def check_image_shape(image_shape: Sequence[int], filters: Sequence[int] = (32, 64, 128), kernels: Sequence[int] = (5, 5, 3)) -> None:
    """Raise ValueError unless the decoder reproduces ``image_shape`` exactly."""
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (H, W, C), got {tuple(image_shape)}")
    h, w, _ = image_shape
    pads = conv_paddings(h, w, len(filters))
    shapes = [(h, w)] + [s[:2] for s in feature_shapes(image_shape, filters, kernels)]
    for i in reversed(range(len(filters))):
        up = tuple(conv_up_out_size(s, kernels[i], 2, pads[i]) for s in shapes[i + 1])
        if up != shapes[i]:
            raise ValueError(
                f"image shape {tuple(image_shape)} is not supported: the encoder maps {shapes[i]} to "
                f"{shapes[i + 1]} and the mirrored decoder maps it back to {up}. H and W divisible by 8 "
                f"always work (16x16, 32x32, 16x48), so do the paper's 28x28; pad or resize the images."
            )


class CAE(nn.Module):
    """Convolutional autoencoder with optional weighted additive skips.

    Attributes:
      image_shape: (H, W, C) of the inputs; fixes the paddings and the decoder's dense size.
      n_embed: size of the embedding (the number of clusters in the paper).
      skip_weights: ``(w_enc, w_dec)`` or ``None`` for no skips.
      filters, kernels: the encoder convolutions (stride 2 each); the decoder mirrors them.
      activation: "relu" (the paper's multi-class CAE) or "tanh".
      conv_impl, conv_transpose_impl: optional replacements for ``layers.conv_down`` / ``conv_up``.
    """

    image_shape: tuple[int, int, int]
    n_embed: int = 10
    skip_weights: tuple[float, float] | None = (0.001, 0.999)
    filters: tuple[int, ...] = (32, 64, 128)
    kernels: tuple[int, ...] = (5, 5, 3)
    activation: str = "relu"
    conv_impl: Callable | None = None
    conv_transpose_impl: Callable | None = None

    def setup(self):
        if len(self.filters) != len(self.kernels):
            raise ValueError("filters and kernels must have the same length")
        if self.skip_weights is not None and len(self.skip_weights) != 2:
            raise ValueError(f"skip_weights must be (w_enc, w_dec) or None, got {self.skip_weights}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        check_image_shape(self.image_shape, self.filters, self.kernels)
        h, w, c = self.image_shape
        pads = conv_paddings(h, w, len(self.filters))
        self._last_shape = feature_shapes(self.image_shape, self.filters, self.kernels)[-1]
        xavier = nn.initializers.xavier_uniform()
        self.enc_convs = [
            Conv(f, k, 2, p, impl=self.conv_impl, name=f"enc_conv{i}")
            for i, (f, k, p) in enumerate(zip(self.filters, self.kernels, pads))
        ]
        self.embed_dense = nn.Dense(self.n_embed, kernel_init=xavier, name="embed")
        self.dec_dense = nn.Dense(math.prod(self._last_shape), kernel_init=xavier, name="dec_dense")
        # decoder layer j mirrors encoder layer n-1-j; its output has encoder feature n-2-j's channels
        n = len(self.filters)
        out_channels = list(self.filters[:-1])[::-1] + [c]
        self.dec_convs = [
            Conv(out_channels[j], self.kernels[n - 1 - j], 2, pads[n - 1 - j], transpose=True,
                 impl=self.conv_transpose_impl, name=f"dec_conv{j}")
            for j in range(n)
        ]

    def _act(self, x):
        return _ACTIVATIONS[self.activation](x)

    def _encode(self, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"expected NHWC images of shape (N, {', '.join(map(str, self.image_shape))}), got {x.shape}")
        feats = []
        h = x
        for conv in self.enc_convs:
            h = self._act(conv(h))
            feats.append(h)
        z = self.embed_dense(h.reshape(h.shape[0], -1))
        return z, feats

    def embed(self, x: jax.Array) -> jax.Array:
        """The embedding z (linear output of the encoder); uses the encoder parameters only."""
        return self._encode(x)[0]

    def decode(self, z: jax.Array, feats: Sequence[jax.Array]) -> jax.Array:
        """Decoder; ``feats`` are the encoder feature maps (used by the skips)."""
        h = self._act(self.dec_dense(z)).reshape((z.shape[0],) + tuple(self._last_shape))
        n = len(self.dec_convs)
        for j, conv in enumerate(self.dec_convs):
            h = conv(h)
            if j == n - 1:
                break  # linear output
            h = self._act(h)
            if self.skip_weights is not None:
                h = weighted_skip(feats[n - 2 - j], h, self.skip_weights)
        return h

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns ``(reconstruction, embedding)``."""
        z, feats = self._encode(x)
        return self.decode(z, feats), z


def encoder_params(params: dict) -> dict:
    """The encoder part of CAE parameters (all but the ``dec_*`` entries): what Algorithm 1 trains."""
    return {k: v for k, v in params.items() if not k.startswith("dec_")}


def embed_fn(model: CAE):
    """``(encoder_params, x) -> z`` for ``model``: the embedding function Algorithm 1 trains."""
    return lambda params, x: model.apply({"params": params}, x, method=CAE.embed)
