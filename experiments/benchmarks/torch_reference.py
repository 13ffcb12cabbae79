"""A PyTorch (CPU, eager) twin of the SDEKC CAE and of SDEKC itself, for side-by-side benchmarks.

The twin is the network a PyTorch user would write for the same model: ``nn.Conv2d`` with
asymmetric "SAME" padding done by ``F.pad`` (as Keras pads), ``nn.ConvTranspose2d`` cropped to
Keras' output size, NCHW tensors, ``torch.optim.Adam``. It is checked, not assumed, to be the
same function: :func:`load_jax_params` copies the parameters of the JAX CAE
(``sdekc_jax.models.init_params``: ``{"encoder": {"conv0", "conv1", "conv2", "embed"}, "decoder":
{"dense", "conv0", "conv1", "conv2"}}``) into it and the benchmarks assert equal outputs (to 1e-4,
:func:`max_output_difference`) before timing anything.

:class:`NaturalCAE` is the same network written the way a PyTorch user writes it, without
bending it to our padding: ``Conv2d(..., padding=k // 2)`` (symmetric padding, where Keras pads
16 -> 8 as (1, 2)), ``ConvTranspose2d(..., padding=k // 2, output_padding=1)`` (no crop), NCHW,
the same layers, widths, skips and FLOPs. It computes a slightly different function (the pads
sit elsewhere), so it is timed, not compared value by value. It is the honest comparator: what
a user would pick instead of us.

``sdekc_torch`` is Algorithm 1 written the way the DEKM reference code is written (host loop,
scikit-learn KMeans, NumPy eigh, one optimiser step per mini-batch), on either network.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sdekc_jax.layers import _same_pads, _transpose_padding
from sdekc_jax.models import conv_paddings, feature_shapes


class _SkipCAE(nn.Module):
    """encode / forward of both PyTorch CAEs; a subclass supplies ``_down(i, h)`` (encoder layer
    i) and ``_up(j, h)`` (decoder layer j, mirroring encoder layer n-1-j)."""

    def encode(self, x):
        feats, h = [], x
        for i in range(len(self.enc)):
            h = torch.relu(self._down(i, h))
            feats.append(h)
        return self.embed(h.flatten(1)), feats

    def forward(self, x):
        z, feats = self.encode(x)
        hh, ww, cc = self.last
        h = torch.relu(self.dec_dense(z)).view(-1, cc, hh, ww)
        n = len(self.dec)
        for j in range(n):
            h = self._up(j, h)
            if j == n - 1:
                break
            h = torch.relu(h)
            if self.skip_weights is not None:
                h = self.skip_weights[0] * feats[n - 2 - j] + self.skip_weights[1] * h
        return h, z


class TorchCAE(_SkipCAE):
    def __init__(self, image_shape, n_embed=10, skip_weights=(0.001, 0.999), filters=(32, 64, 128), kernels=(5, 5, 3)):
        super().__init__()
        h, w, c = image_shape
        self.image_shape = tuple(image_shape)
        self.skip_weights = skip_weights
        self.pads = conv_paddings(h, w, len(filters))
        self.shapes = [(h, w, c)] + feature_shapes(image_shape, filters, kernels)
        self.kernels = kernels
        chans = [c] + list(filters)
        self.enc = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], kernels[i], stride=2) for i in range(len(filters)))
        self.last = self.shapes[-1]
        self.embed = nn.Linear(math.prod(self.last), n_embed)
        self.dec_dense = nn.Linear(n_embed, math.prod(self.last))
        n = len(filters)
        self.dec = nn.ModuleList()
        self.dec_crop = []
        for j in range(n):
            i = n - 1 - j  # mirrors encoder layer i
            k = kernels[i]
            pad_a, _ = _transpose_padding(k, 2, self.pads[i])
            start = k - 1 - pad_a  # lax.conv_transpose output = full output cropped from `start`
            self.dec.append(nn.ConvTranspose2d(chans[i + 1], chans[i], k, stride=2, padding=start))
            self.dec_crop.append(self.shapes[i][:2])

    def _down(self, i, x):
        k = self.kernels[i]
        if self.pads[i] == "SAME":
            ph, pw = _same_pads(x.shape[2], k, 2), _same_pads(x.shape[3], k, 2)
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return self.enc[i](x)

    def _up(self, j, h):
        oh, ow = self.dec_crop[j]
        return self.dec[j](h)[:, :, :oh, :ow]


class NaturalCAE(_SkipCAE):
    """The SDEKC CAE as a PyTorch user writes it (see the module doc): conv 32 5x5 s2 -> 64 5x5 s2
    -> 128 3x3 s2 (padding k // 2; the third without padding when the size is not a multiple of
    8, as the paper's CAE) -> dense embedding; mirrored transposed convolutions with
    ``output_padding``; the weighted additive skips ``w_enc * encoder + w_dec * decoder``."""

    def __init__(self, image_shape, n_embed=10, skip_weights=(0.001, 0.999), filters=(32, 64, 128), kernels=(5, 5, 3)):
        super().__init__()
        h, w, c = image_shape
        self.skip_weights = skip_weights
        chans = [c] + list(filters)
        last_pad = kernels[2] // 2 if h % 8 == 0 else 0
        pads = [k // 2 for k in kernels[:2]] + [last_pad]
        self.enc = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], kernels[i], stride=2, padding=pads[i])
                                 for i in range(3))
        sizes = [h]
        for k, p_ in zip(kernels, pads):
            sizes.append((sizes[-1] + 2 * p_ - k) // 2 + 1)
        self.last = (sizes[-1], sizes[-1], filters[-1])
        self.embed = nn.Linear(sizes[-1] * sizes[-1] * filters[-1], n_embed)
        self.dec_dense = nn.Linear(n_embed, sizes[-1] * sizes[-1] * filters[-1])
        self.dec = nn.ModuleList()
        for i in (2, 1, 0):  # mirrors encoder layer i: sizes[i + 1] -> sizes[i]
            k, p_ = kernels[i], pads[i]
            out_pad = sizes[i] - ((sizes[i + 1] - 1) * 2 - 2 * p_ + k)
            self.dec.append(nn.ConvTranspose2d(chans[i + 1], chans[i], k, stride=2, padding=p_, output_padding=out_pad))

    def _down(self, i, h):
        return self.enc[i](h)

    def _up(self, j, h):
        return self.dec[j](h)


def load_jax_params(model: TorchCAE, params) -> TorchCAE:
    """Copy the parameters of the JAX CAE into ``model``: ``params`` is ``{"encoder", "decoder"}``
    (``sdekc_jax.models.init_params``; HWIO kernels ``(k, k, in, out)``, dense kernels ``(in,
    out)``, NHWC flatten order). Decoder layer ``conv{j}`` mirrors encoder layer ``n-1-j``."""
    enc = {k: {kk: np.asarray(vv) for kk, vv in v.items()} for k, v in params["encoder"].items()}
    dec = {k: {kk: np.asarray(vv) for kk, vv in v.items()} for k, v in params["decoder"].items()}
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))
    hh, ww, cc = model.last
    with torch.no_grad():
        for i, conv in enumerate(model.enc):
            conv.weight.copy_(t(enc[f"conv{i}"]["kernel"].transpose(3, 2, 0, 1)))
            conv.bias.copy_(t(enc[f"conv{i}"]["bias"]))
        k = enc["embed"]["kernel"]  # (H*W*C in HWC order, d)
        model.embed.weight.copy_(t(k.reshape(hh, ww, cc, -1).transpose(3, 2, 0, 1).reshape(k.shape[1], -1)))
        model.embed.bias.copy_(t(enc["embed"]["bias"]))
        k = dec["dense"]["kernel"]  # (d, H*W*C in HWC order)
        model.dec_dense.weight.copy_(t(k.reshape(-1, hh, ww, cc).transpose(3, 1, 2, 0).reshape(-1, k.shape[0])))
        model.dec_dense.bias.copy_(t(dec["dense"]["bias"].reshape(hh, ww, cc).transpose(2, 0, 1).reshape(-1)))
        for j, conv in enumerate(model.dec):
            # lax.conv_transpose (transpose_kernel=False) correlates with the kernel as stored;
            # ConvTranspose2d is the gradient of a convolution: flip the taps, (I, O, kh, kw).
            k = dec[f"conv{j}"]["kernel"][::-1, ::-1]
            conv.weight.copy_(t(k.transpose(2, 3, 0, 1)))
            conv.bias.copy_(t(dec[f"conv{j}"]["bias"]))
    return model


def export_params(model: TorchCAE) -> dict:
    """The inverse of :func:`load_jax_params`: the parameters of ``model`` as the JAX CAE's
    pytree ``{"encoder", "decoder"}`` (NumPy float32 arrays), so a network trained in PyTorch
    can be embedded and clustered by ``sdekc_jax``."""
    g = lambda t: t.detach().cpu().numpy().astype(np.float32)
    hh, ww, cc = model.last
    enc, dec = {}, {}
    for i, conv in enumerate(model.enc):
        enc[f"conv{i}"] = {"kernel": g(conv.weight).transpose(2, 3, 1, 0).copy(), "bias": g(conv.bias)}
    w = g(model.embed.weight)  # (d, C*H*W in CHW order)
    enc["embed"] = {"kernel": w.reshape(-1, cc, hh, ww).transpose(2, 3, 1, 0).reshape(-1, w.shape[0]).copy(),
                    "bias": g(model.embed.bias)}
    w = g(model.dec_dense.weight)  # (C*H*W in CHW order, d)
    dec["dense"] = {"kernel": w.reshape(cc, hh, ww, -1).transpose(3, 1, 2, 0).reshape(w.shape[1], -1).copy(),
                    "bias": g(model.dec_dense.bias).reshape(cc, hh, ww).transpose(1, 2, 0).reshape(-1).copy()}
    for j, conv in enumerate(model.dec):
        dec[f"conv{j}"] = {"kernel": g(conv.weight).transpose(2, 3, 0, 1)[::-1, ::-1].copy(), "bias": g(conv.bias)}
    return {"encoder": enc, "decoder": dec}


def to_nchw(x) -> torch.Tensor:
    return torch.from_numpy(np.array(np.asarray(x, np.float32).transpose(0, 3, 1, 2), order="C"))  # a writable copy


def max_output_difference(params, torch_model: TorchCAE, x) -> float:
    """Largest |difference| of reconstructions and embeddings between the JAX CAE with ``params``
    (``sdekc_jax.models.reconstruct``, with the twin's skip weights) and the PyTorch twin."""
    from sdekc_jax.models import reconstruct

    w = torch_model.skip_weights
    x_hat, z = reconstruct(params, x, None if w is None else np.asarray(w, np.float32))
    with torch.no_grad():
        t_hat, tz = torch_model(to_nchw(x))
    d1 = np.max(np.abs(np.asarray(x_hat).transpose(0, 3, 1, 2) - t_hat.numpy()))
    d2 = np.max(np.abs(np.asarray(z) - tz.numpy()))
    return float(max(d1, d2))


def pretrain_torch(model: TorchCAE, x: torch.Tensor, epochs: int, batch_size: int = 256, lr: float = 1e-3,
                   seed: int = 0) -> list[float]:
    """Reconstruction pretraining (MSE, Adam), every sample once per epoch; returns epoch losses."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        total = 0.0
        for s in range(0, n, batch_size):
            xb = x[order[s:s + batch_size]]
            opt.zero_grad(set_to_none=True)
            x_hat, _ = model(xb)
            loss = F.mse_loss(x_hat, xb)
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        losses.append(total / n)
    return losses


def embed_torch(model: TorchCAE, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model.encode(x[s:s + batch_size])[0] for s in range(0, x.shape[0], batch_size)]).numpy()


def sdekc_torch(model: TorchCAE, x: torch.Tensor, n_clusters: int, *, max_iters: int = 1000, steps_per_iter: int = 40,
                batch_size: int = 256, lr: float = 1e-3, tol: float = 0.001, n_init: int = 10, seed: int = 0,
                fixed_iters: bool = False):
    """Algorithm 1 as the DEKM reference code writes it: per iteration embed all, scikit-learn
    KMeans, NumPy S_w and eigh, fixed greedy targets, ``steps_per_iter`` Adam steps on the
    encoder. Stops when fewer than ``tol * n`` labels change (Hungarian-matched) unless
    ``fixed_iters``. Returns (labels, n_iter)."""
    from sklearn.cluster import KMeans

    from sdekc_jax.metrics import count_changed

    enc_params = [p for name, p in model.named_parameters() if name.startswith(("enc.", "embed."))]
    opt = torch.optim.Adam(enc_params, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    order = torch.from_numpy(rng.permutation(n))
    n_batches = -(-n // batch_size)
    labels_old, step = None, 0
    for it in range(max_iters):
        z = embed_torch(model, x)
        km = KMeans(n_clusters, n_init=n_init, random_state=int(rng.integers(1 << 31))).fit(z)
        labels = km.labels_
        if labels_old is not None and not fixed_iters and count_changed(labels_old, labels, n_clusters) < tol * n:
            break
        if it == max_iters - 1:
            break
        labels_old = labels
        r = z - km.cluster_centers_[labels]
        _, evecs = np.linalg.eigh(r.T @ r)
        v = torch.from_numpy(evecs.T.astype(np.float32))
        y = z @ evecs
        y[:, -1] = (km.cluster_centers_ @ evecs)[labels, -1]
        target = torch.from_numpy(y.astype(np.float32))
        for _ in range(steps_per_iter):
            b = step % n_batches
            sel = order[b * batch_size:(b + 1) * batch_size]
            opt.zero_grad(set_to_none=True)
            zb, _ = model.encode(x[sel])
            loss = F.mse_loss(zb @ v.T, target[sel])
            loss.backward()
            opt.step()
            step += 1
    return labels, it + 1


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
