"""The autoencoders as pure functions of explicit parameter pytrees.

    params = init_params(key, cfg)                       # {"encoder": ..., "decoder": ...}
    z, feats = encode(params["encoder"], x)              # embedding and skip features
    x_hat = decode(params["decoder"], z, feats, skip_weights)   # (w_enc, w_dec) array or None

Three architectures, told apart by their parameters (no module objects, nothing static besides
the activation):

* **CAE** (DEKM / SDEKC): conv 32 5x5 s2 -> conv 64 5x5 s2 -> conv 128 3x3 s2 -> flatten ->
  dense embedding (linear); encoder ``{"conv0", "conv1", "conv2", "embed"}``. The last
  convolution pads "SAME" when height and width are divisible by 8 and "VALID" otherwise
  (28 -> 14 -> 7 -> 3), as in the DEKM reference code. Decoder ``{"dense", "conv0", ...}``:
  dense -> reshape -> transposed convolutions mirroring the encoder -> linear output.
* **ARAE** (asymmetric residual autoencoder): a residual encoder (``{"block0", ..., "block3",
  "embed"}``, see :func:`_res_block`) and the CAE's decoder.
* **Dense AE** (DEC / IDEC, d-500-500-2000-10): encoder ``{"dense0", "dense1", "dense2",
  "embed"}``, decoder ``{"dense0", "dense1", "dense2", "out"}``; it has no skip features and
  its decoder returns flat rows (``reconstruct`` reshapes them).

The skips: the input of the decoder layer that mirrors encoder layer ``i`` is
``w_enc * encoder_feature_i + w_dec * decoder_feature`` (the outputs of conv 2, then conv 1).
``skip_weights`` is data: an array of shape (2,) that may be traced and vmapped, or None for
no skips (DEKM's CAE); ``(0, 1)`` computes exactly what None computes. The skip features also
fix the decoder's spatial sizes, so pass what ``encode`` returned even without skips.

The binary preset of the paper's Table 2 is the same CAE with ``filters=(4, 2, 1)``,
``kernels=(3, 3, 3)``, a 2-d embedding and tanh (``activation="tanh"``).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from .layers import conv_down, conv_out_size, conv_up, conv_up_out_size, dense, weighted_skip

Params = dict
_ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}
_xavier = jax.nn.initializers.xavier_uniform()

BINARY_ARCH = dict(filters=(4, 2, 1), kernels=(3, 3, 3), activation="tanh", embedding_dim=2)


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
    if len(filters) != len(kernels) or len(filters) < 2:
        raise ValueError(f"filters and kernels must have the same length (at least 2), got {filters} and {kernels}")
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


def _act(activation: str):
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    return _ACTIVATIONS[activation]


def _layer(key, shape, init=_xavier) -> dict:
    return {"kernel": init(key, shape, jnp.float32), "bias": jnp.zeros((shape[-1],), jnp.float32)}


def _keras_uniform(key, shape, dtype):  # Keras' kernel_initializer='uniform': U(-0.05, 0.05)
    return jax.random.uniform(key, shape, dtype, -0.05, 0.05)


def _count(params: dict, prefix: str) -> int:
    n = 0
    while f"{prefix}{n}" in params:
        n += 1
    return n


# --- initialisation ---------------------------------------------------------------------------


def _init_conv_decoder(key, image_shape, filters, kernels, n_embed) -> dict:
    n = len(filters)
    last = feature_shapes(image_shape, filters, kernels)[-1]
    keys = jax.random.split(key, n + 1)
    out_channels = list(filters[:-1])[::-1] + [image_shape[2]]  # decoder layer j mirrors encoder layer n-1-j
    in_channels = [filters[-1]] + out_channels[:-1]
    dec = {"dense": _layer(keys[0], (n_embed, math.prod(last)))}
    for j in range(n):
        k = kernels[n - 1 - j]
        dec[f"conv{j}"] = _layer(keys[j + 1], (k, k, in_channels[j], out_channels[j]))
    return dec


def init_params(key: jax.Array, cfg) -> Params:
    """Fresh parameters ``{"encoder": ..., "decoder": ...}`` for ``cfg`` (a
    :class:`~sdekc_jax.config.RunConfig`: ``arch``, ``image_shape``, ``embedding_dim`` or
    ``n_clusters``, ``filters``, ``kernels``, ``hidden``, ``init``). Kernels are glorot (xavier)
    uniform and biases zero; with ``init="dekm"`` the CAE encoder's convolutions are U(-0.05, 0.05),
    as in DEKM.py. ``arch="none"`` (raw pixels) has no parameters."""
    arch, image_shape = cfg.arch, tuple(int(v) for v in cfg.image_shape)
    d = cfg.embed_dim
    if arch == "none":
        return {"encoder": {}, "decoder": {}}
    k_enc, k_dec = jax.random.split(key)
    if arch == "dense":
        dims = [math.prod(image_shape), *cfg.hidden]
        ke = jax.random.split(k_enc, len(cfg.hidden) + 1)
        kd = jax.random.split(k_dec, len(cfg.hidden) + 1)
        enc = {f"dense{i}": _layer(ke[i], (dims[i], dims[i + 1])) for i in range(len(cfg.hidden))}
        enc["embed"] = _layer(ke[-1], (dims[-1], d))
        rdims = [d, *reversed(cfg.hidden)]
        dec = {f"dense{i}": _layer(kd[i], (rdims[i], rdims[i + 1])) for i in range(len(cfg.hidden))}
        dec["out"] = _layer(kd[-1], (rdims[-1], dims[0]))
        return {"encoder": enc, "decoder": dec}
    filters, kernels = tuple(cfg.filters), tuple(cfg.kernels)
    check_image_shape(image_shape, filters, kernels)
    last = feature_shapes(image_shape, filters, kernels)[-1]
    enc = {}
    if arch == "cae":
        ke = jax.random.split(k_enc, len(filters) + 1)
        cin = [image_shape[2], *filters[:-1]]
        conv_init = _keras_uniform if getattr(cfg, "init", "glorot") == "dekm" else _xavier
        for i, (f, k) in enumerate(zip(filters, kernels)):
            enc[f"conv{i}"] = _layer(ke[i], (k, k, cin[i], f), conv_init)
    elif arch == "arae":
        if feature_shapes(image_shape, filters, (3,) * len(filters)) != feature_shapes(image_shape, filters, kernels):
            raise ValueError(f"ARAE's 3x3 blocks do not give the CAE decoder's feature maps for {image_shape}")
        ke = jax.random.split(k_enc, len(filters) + 2)
        cin = [image_shape[2], *filters]
        for b, f in enumerate([*filters, filters[-1]]):
            kb = jax.random.split(ke[b], 3)
            block = {"conv1": _layer(kb[0], (3, 3, cin[b], f)), "conv2": _layer(kb[1], (3, 3, f, f))}
            if b < len(filters) or cin[b] != f:
                block["proj"] = _layer(kb[2], (1, 1, cin[b], f))
            enc[f"block{b}"] = block
    else:
        raise ValueError(f"arch must be 'cae', 'arae', 'dense' or 'none', got {arch!r}")
    enc["embed"] = _layer(ke[-1], (math.prod(last), d))
    return {"encoder": enc, "decoder": _init_conv_decoder(k_dec, image_shape, filters, kernels, d)}


# --- encoder ----------------------------------------------------------------------------------


def _check_nhwc(x: jax.Array, cin: int) -> None:
    if x.ndim != 4 or x.shape[-1] != cin:
        raise ValueError(f"expected NHWC images with {cin} channel(s), got an array of shape {x.shape}")


def _res_block(p: dict, x: jax.Array, stride: int, padding: str, act, ops) -> jax.Array:
    """conv 3x3 (stride, padding) -> act -> conv 3x3 s1 SAME -> + shortcut -> act. The shortcut
    is the identity, or (``"proj"``) a 1x1 linear projection of ``x[:, ::s, ::s]`` cropped to the
    main path's size (ResNet's projection; the crop matters where the padding is VALID)."""
    cd = ops[0]
    h = act(cd(x, p["conv1"]["kernel"], p["conv1"]["bias"], stride, padding))
    h = cd(h, p["conv2"]["kernel"], p["conv2"]["bias"], 1, "SAME")
    if "proj" in p:
        s = x[:, ::stride, ::stride, :][:, :h.shape[1], :h.shape[2], :]
        shortcut = cd(s, p["proj"]["kernel"], p["proj"]["bias"], 1, "VALID")
    else:
        shortcut = x
    return act(h + shortcut)


def _ops(conv: str, precision: str):
    """(conv_down, conv_up, dense) with the kernel choice and the compute precision bound."""
    return (functools.partial(conv_down, impl=conv, precision=precision),
            functools.partial(conv_up, impl=conv, precision=precision),
            functools.partial(dense, precision=precision))


def encode(encoder_params: Params, x: jax.Array, *, activation: str = "relu", conv: str = "auto",
           precision: str = "float32") -> tuple[jax.Array, list[jax.Array]]:
    """``(z, skip_features)``: the embedding (linear) of NHWC images ``x`` and the encoder feature
    maps that the skips and the decoder use (none for the dense AE). The architecture is read
    from the parameters. ``conv``: the convolution kernels (``"auto"``: per backend, see
    :mod:`sdekc_jax.layers`; ``"lax"``; ``"gather"``); ``precision``: ``"float32"`` or ``"bf16"``
    (convolutions and dense layers compute in bfloat16; parameters and outputs stay float32)."""
    p, act = encoder_params, _act(activation)
    ops = _ops(conv, precision)
    cd, _, dn = ops
    if "conv0" in p:
        n = _count(p, "conv")
        _check_nhwc(x, p["conv0"]["kernel"].shape[2])
        pads = conv_paddings(x.shape[1], x.shape[2], n)
        feats, h = [], x
        for i in range(n):
            h = act(cd(h, p[f"conv{i}"]["kernel"], p[f"conv{i}"]["bias"], 2, pads[i]))
            feats.append(h)
    elif "block0" in p:
        n = _count(p, "block") - 1
        _check_nhwc(x, p["block0"]["conv1"]["kernel"].shape[2])
        pads = conv_paddings(x.shape[1], x.shape[2], n) + ["SAME"]
        feats, h = [], x
        for b in range(n + 1):
            h = _res_block(p[f"block{b}"], h, 2 if b < n else 1, pads[b], act, ops)
            feats.append(h)
        feats = feats[:n]
    elif "dense0" in p or "embed" in p:
        h = x.reshape(x.shape[0], -1)
        d_in = p["dense0" if "dense0" in p else "embed"]["kernel"].shape[0]
        if h.shape[1] != d_in:
            raise ValueError(f"expected inputs of {d_in} values each, got shape {x.shape}")
        for i in range(_count(p, "dense")):
            h = act(dn(p[f"dense{i}"], h))
        return dn(p["embed"], h), []
    elif not p:  # raw pixels
        return x.reshape(x.shape[0], -1), []
    else:
        raise ValueError(f"unknown encoder parameters with entries {sorted(p)}")
    if h.shape[1] * h.shape[2] * h.shape[3] != p["embed"]["kernel"].shape[0]:
        raise ValueError(f"images of shape {tuple(x.shape[1:])} do not fit these parameters (made for another image size)")
    return dn(p["embed"], h.reshape(h.shape[0], -1)), feats


def embed(encoder_params: Params, x: jax.Array, **opts) -> jax.Array:
    """The embedding alone: ``encode(...)[0]`` (``opts``: those of :func:`encode`)."""
    return encode(encoder_params, x, **opts)[0]


# --- decoder ----------------------------------------------------------------------------------


def _up_padding(size_in: int, size_out: int, k: int) -> str:
    for pad in ("SAME", "VALID"):
        if conv_up_out_size(size_in, k, 2, pad) == size_out:
            return pad
    raise ValueError(f"a stride-2 transposed convolution (kernel {k}) cannot map size {size_in} to {size_out}")


def decode(decoder_params: Params, z: jax.Array, skip_features: Sequence[jax.Array],
           skip_weights: Any = None, *, activation: str = "relu", conv: str = "auto",
           precision: str = "float32") -> jax.Array:
    """The reconstruction from the embedding ``z`` and the encoder's ``skip_features``.

    ``skip_weights``: ``(w_enc, w_dec)`` (an array of shape (2,), traced or not) or None (no
    skips). The dense AE's decoder returns flat rows (N, H*W*C) and ignores the features.
    ``conv``, ``precision``: as in :func:`encode`."""
    p, act = decoder_params, _act(activation)
    _, cu, dn = _ops(conv, precision)
    if "out" in p:  # dense AE
        if skip_weights is not None:
            raise ValueError("the dense autoencoder has no skips; pass skip_weights=None")
        h = z
        for i in range(_count(p, "dense")):
            h = act(dn(p[f"dense{i}"], h))
        return dn(p["out"], h)
    n = _count(p, "conv")
    feats = list(skip_features)
    if len(feats) != n:
        raise ValueError(f"decode needs the {n} encoder feature maps that encode returns, got {len(feats)}")
    last = feats[-1].shape[1:]
    h = act(dn(p["dense"], z)).reshape((z.shape[0],) + tuple(last))
    for j in range(n):
        kernel = p[f"conv{j}"]["kernel"]
        # decoder layer j maps encoder feature n-1-j's size back to feature n-2-j's (the image's: 2x)
        target = feats[n - 2 - j].shape[1:3] if j < n - 1 else (2 * h.shape[1], 2 * h.shape[2])
        pad = _up_padding(h.shape[1], target[0], kernel.shape[0])
        if _up_padding(h.shape[2], target[1], kernel.shape[1]) != pad:
            raise ValueError(f"decoder layer {j}: height and width need different paddings; unsupported image shape")
        h = cu(h, kernel, p[f"conv{j}"]["bias"], 2, pad)
        if j == n - 1:
            break  # linear output
        h = act(h)
        if skip_weights is not None:
            h = weighted_skip(feats[n - 2 - j], h, jnp.asarray(skip_weights, h.dtype))
    return h


def reconstruct(params: Params, x: jax.Array, skip_weights: Any = None, **opts) -> tuple[jax.Array, jax.Array]:
    """``(x_hat, z)``: encode then decode; ``x_hat`` has the shape of ``x`` (``opts``: ``activation``,
    ``conv``, ``precision``, as in :func:`encode`)."""
    z, feats = encode(params["encoder"], x, **opts)
    return decode(params["decoder"], z, feats, skip_weights, **opts).reshape(x.shape), z


def param_count(tree: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return sum(int(math.prod(v.shape)) for v in jax.tree.leaves(tree))
