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

Also here: :class:`ARAE` (residual encoder, CAE decoder), :class:`DenseAE` (DEC/IDEC
d-500-500-2000-10) and :func:`binary_cae` (the binary preset of Table 2).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from .layers import Conv, Dense, conv_out_size, conv_up_out_size, weighted_skip

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
      traced_skips: keep the skip weights in the parameters (``params["dec_skips"]``, initialised
        from ``skip_weights``, never trained: the gradient is stopped) instead of in the module, so
        that models that differ only in their skip weights share one compiled program and can be
        stacked under ``jax.vmap`` (:mod:`sdekc_jax.sweep`). ``(0.0, 1.0)`` computes what no skips
        compute. Being a ``dec_*`` entry, it is not part of :func:`encoder_params`.
    """

    image_shape: tuple[int, int, int]
    n_embed: int = 10
    skip_weights: tuple[float, float] | None = (0.001, 0.999)
    filters: tuple[int, ...] = (32, 64, 128)
    kernels: tuple[int, ...] = (5, 5, 3)
    activation: str = "relu"
    conv_impl: Callable | None = None
    conv_transpose_impl: Callable | None = None
    traced_skips: bool = False

    def setup(self):
        if self.traced_skips and self.skip_weights is None:
            raise ValueError("traced_skips needs initial skip_weights (w_enc, w_dec); (0.0, 1.0) is 'no skips'")
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
        self.embed_dense = Dense(self.n_embed, kernel_init=xavier, name="embed")
        self.dec_dense = Dense(math.prod(self._last_shape), kernel_init=xavier, name="dec_dense")
        # decoder layer j mirrors encoder layer n-1-j; its output has encoder feature n-2-j's channels
        n = len(self.filters)
        out_channels = list(self.filters[:-1])[::-1] + [c]
        self.dec_convs = [
            Conv(out_channels[j], self.kernels[n - 1 - j], 2, pads[n - 1 - j], transpose=True,
                 impl=self.conv_transpose_impl, name=f"dec_conv{j}")
            for j in range(n)
        ]
        # a constant of the model that jax.vmap can batch (sdekc_jax.sweep); the embedding is computed
        # from the encoder parameters alone, without it
        if self.traced_skips and (self.is_initializing() or self.has_variable("params", "dec_skips")):
            self.dec_skips = self.param("dec_skips", lambda _: jnp.asarray(self.skip_weights, jnp.float32))

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
            if self.traced_skips:  # never trained: no gradient, so Adam leaves it exactly as it is
                w = jax.lax.stop_gradient(self.dec_skips)
                h = weighted_skip(feats[n - 2 - j], h, (w[0], w[1]))
            elif self.skip_weights is not None:
                h = weighted_skip(feats[n - 2 - j], h, self.skip_weights)
        return h

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns ``(reconstruction, embedding)``."""
        z, feats = self._encode(x)
        return self.decode(z, feats), z


def encoder_params(params: dict) -> dict:
    """The encoder part of CAE parameters (all but the ``dec_*`` entries): what Algorithm 1 trains."""
    return {k: v for k, v in params.items() if not k.startswith("dec_")}




def embed_fn(model: nn.Module):
    """``(encoder_params, x) -> z`` for ``model``: the embedding function Algorithm 1 trains.

    Works for every autoencoder here (:class:`CAE`, :class:`ARAE`, :func:`binary_cae`,
    :class:`DenseAE`): each has an ``embed`` method that touches the encoder parameters only.
    """
    return lambda params, x: model.apply({"params": params}, x, method="embed")


def _check_input(x: jax.Array, image_shape: Sequence[int]) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(f"expected NHWC images of shape (N, {', '.join(map(str, image_shape))}), got {x.shape}")


# --- DEC / IDEC fully connected autoencoder ---------------------------------------------------


class DenseAE(nn.Module):
    """The DEC / IDEC autoencoder d-500-500-2000-10 on flattened NHWC images (d = H*W*C).

    Encoder: Dense layers ``enc_dense{i}`` (``hidden`` units, activation) -> linear ``embed``.
    Decoder: the mirror ``dec_dense0..`` (``hidden`` reversed, activation) -> linear
    ``dec_out`` of d units, reshaped back to (N, H, W, C).
    Initialiser: glorot (xavier) uniform kernels, zero biases, as in DEC-keras
    (https://github.com/XifengGuo/DEC-keras, DEC.py: ``autoencoder(dims, act='relu',
    init='glorot_uniform')``, hidden Dense layers with ``act``, the embedding and the output
    layer linear). (DEC.py's ``__main__`` switches to ``VarianceScaling(1/3, 'fan_in',
    'uniform')`` for MNIST / Fashion / Reuters; the default, used here, is glorot uniform.)

    Same interface as :class:`CAE`: ``embed(x)``, ``decode(z, feats)`` (``feats`` ignored),
    ``__call__(x) -> (x_hat, z)``.
    """

    image_shape: tuple[int, int, int]
    n_embed: int = 10
    hidden: tuple[int, ...] = (500, 500, 2000)
    activation: str = "relu"

    def setup(self):
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {tuple(self.image_shape)}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        xavier, zeros = nn.initializers.xavier_uniform(), nn.initializers.zeros
        dense = lambda n, name: Dense(n, kernel_init=xavier, bias_init=zeros, name=name)
        self.enc_dense = [dense(n, f"enc_dense{i}") for i, n in enumerate(self.hidden)]
        self.embed_dense = dense(self.n_embed, "embed")
        self.dec_dense = [dense(n, f"dec_dense{i}") for i, n in enumerate(reversed(self.hidden))]
        self.dec_out = dense(math.prod(self.image_shape), "dec_out")

    def _act(self, x):
        return _ACTIVATIONS[self.activation](x)

    def _encode(self, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        _check_input(x, self.image_shape)
        h = x.reshape(x.shape[0], -1)
        for layer in self.enc_dense:
            h = self._act(layer(h))
        return self.embed_dense(h), []

    def embed(self, x: jax.Array) -> jax.Array:
        """The embedding z (linear); uses the encoder parameters only."""
        return self._encode(x)[0]

    def decode(self, z: jax.Array, feats: Sequence[jax.Array] | None = None) -> jax.Array:
        """Decoder; ``feats`` is ignored (no skips)."""
        h = z
        for layer in self.dec_dense:
            h = self._act(layer(h))
        return self.dec_out(h).reshape((z.shape[0],) + tuple(self.image_shape))

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns ``(reconstruction, embedding)``."""
        z, feats = self._encode(x)
        return self.decode(z, feats), z


# --- Asymmetric residual autoencoder ----------------------------------------------------------


class ResBlock(nn.Module):
    """Basic residual block: conv 3x3 (stride, padding) -> act -> conv 3x3 s1 SAME -> + shortcut -> act.

    The shortcut is the identity when ``stride == 1`` and the channels agree; otherwise a 1x1
    projection (``proj``: a kernel-1 stride-1 convolution, linear) of ``x[:, ::s, ::s, :]``
    cropped to the main path's height and width (ResNet's 1x1 stride-s projection; the crop only
    matters where the padding is VALID).
    """

    features: int
    stride: int = 1
    padding: str = "SAME"
    activation: str = "relu"
    impl: Callable | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        h = act(Conv(self.features, 3, self.stride, self.padding, impl=self.impl, name="conv1")(x))
        h = Conv(self.features, 3, 1, "SAME", impl=self.impl, name="conv2")(h)
        if self.stride == 1 and x.shape[-1] == self.features:
            shortcut = x
        else:
            s = self.stride
            shortcut = x[:, ::s, ::s, :][:, :h.shape[1], :h.shape[2], :]
            shortcut = Conv(self.features, 1, 1, "VALID", impl=self.impl, name="proj")(shortcut)
        return act(h + shortcut)


class ARAE(CAE):
    """Asymmetric residual autoencoder: a residual encoder and the plain CAE decoder.

    Encoder (``filters`` = (32, 64, 128)), blocks ``enc_block0..3`` (:class:`ResBlock`):

    * block b in 0..2: ``filters[b]`` channels, downsampling by 2 where the CAE does:
      conv 3x3 stride 2 with the CAE's padding for that layer (``conv_paddings(h, w, 3)``:
      SAME, SAME, and SAME / VALID for the last, VALID for 28x28 so 7 -> 3) -> ReLU ->
      conv 3x3 stride 1 SAME -> + shortcut -> ReLU. Shortcut: 1x1 projection (kernel 1,
      stride 1, linear, with bias) of ``x[:, ::2, ::2, :]`` cropped to the main path's H, W.
      The outputs have exactly ``feature_shapes(image_shape, filters, kernels)``.
    * block 3: ``filters[-1]`` channels, stride 1, identity shortcut (two 3x3 SAME convs).
    * flatten -> Dense ``embed`` (linear).

    Decoder: exactly the CAE's transposed-convolution decoder without skips (``dec_dense``,
    ``dec_conv{j}``, same names and shapes as ``CAE(image_shape, n_embed, skip_weights=None)``).
    ``skip_weights`` must stay ``None``. The CAE's ``enc_conv*`` submodules are never called,
    so they create no parameters; ``encoder_params`` returns ``enc_block*`` and ``embed``.
    ReLU is ``activation`` ("relu" by default). All convolutions go through ``layers.Conv``
    (``conv_impl`` for the encoder).
    """

    skip_weights: tuple[float, float] | None = None

    def setup(self):
        if self.skip_weights is not None:
            raise ValueError(f"ARAE's decoder has no skips; skip_weights must be None, got {self.skip_weights}")
        super().setup()
        h, w, _ = self.image_shape
        pads = conv_paddings(h, w, len(self.filters))
        mine = feature_shapes(self.image_shape, self.filters, (3,) * len(self.filters))
        cae = feature_shapes(self.image_shape, self.filters, self.kernels)
        if mine != cae:
            raise ValueError(f"ARAE feature maps {mine} do not match the CAE decoder's {cae} for {tuple(self.image_shape)}")
        blocks = [ResBlock(f, 2, p, self.activation, self.conv_impl, name=f"enc_block{b}")
                  for b, (f, p) in enumerate(zip(self.filters, pads))]
        blocks.append(ResBlock(self.filters[-1], 1, "SAME", self.activation, self.conv_impl,
                               name=f"enc_block{len(self.filters)}"))
        self.enc_blocks = blocks

    def _encode(self, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        _check_input(x, self.image_shape)
        feats = []
        h = x
        for block in self.enc_blocks:
            h = block(h)
            feats.append(h)
        z = self.embed_dense(h.reshape(h.shape[0], -1))
        return z, feats[:len(self.filters)]


# --- Binary preset (SDEKC paper, Table 2) -----------------------------------------------------

BINARY_ARCH = dict(filters=(4, 2, 1), kernels=(3, 3, 3), activation="tanh")


def binary_cae(image_shape: tuple[int, int, int], skip_weights: tuple[float, float] | None = None,
               n_embed: int = 2) -> CAE:
    """The CAE of the binary experiments (Table 2): conv 4, 2, 1 channels, 3x3, stride 2 ->
    dense ``n_embed`` (linear) embedding; mirrored decoder; tanh instead of ReLU."""
    return CAE(tuple(image_shape), n_embed=n_embed, skip_weights=skip_weights, **BINARY_ARCH)
