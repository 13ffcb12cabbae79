"""Settings of the paper as data: skip-weight presets, defaults and published numbers."""
from __future__ import annotations

import dataclasses
import math
import numbers

from .kmeans import SCORINGS
from .layers import CONV_IMPLS, PRECISIONS

# (w_enc, w_dec) of the two weighted additive skips; None = no skips (DEKM's CAE).
# "swapped" is our default: 0.001 on the encoder feature, 0.999 on the decoder feature. The
# paper's text reads the other way round ("paper-text"); measured, that reading lets the
# reconstruction bypass the embedding (see docs/skips.md).
SKIP_PRESETS: dict[str, tuple[float, float] | None] = {
    "swapped": (0.001, 0.999),
    "paper-text": (0.999, 0.001),
    "none": None,
}
DEFAULT_SKIPS = "swapped"

ARCHS = ("cae", "arae", "dense", "none")
CLUSTERINGS = ("dekm", "dec", "kmeans")
OPTIMIZERS = ("adam", "sgd")
KMEANS_SCHEDULES = ("warm", "dekm")
INITS = ("glorot", "dekm")
BATCH_ORDERS = ("shuffled", "stored")
CLUSTER_LOSSES = ("mean", "sum")


# The range of every numeric setting: RunConfig, the methods' settings, the estimator and the
# CLI all check their values with check_setting, before any work.
_INT_MIN = {"n_clusters": 2, "pretrain_epochs": 0, "batch_size": 1, "max_iters": 1, "steps_per_iter": 0,
            "kmeans_n_init": 1, "kmeans_max_iter": 1, "embed_batch_size": 1, "embedding_dim": 1,
            "checkpoint_every": 1}
_POSITIVE = ("learning_rate", "adam_eps", "cluster_learning_rate", "dec_alpha", "dec_gamma", "alpha", "gamma")
_FRACTIONS = {"tol": "a fraction in [0, 1) (0: never stop early, run max_iters)",
              "cluster_momentum": "a number in [0, 1)"}
SEED_MAX = 2**32 - 1  # JAX's PRNG keys take 32-bit seeds: 2**32 + s and -s alias other seeds


def check_setting(name: str, value, label: str | None = None):
    """``value`` checked against the range of the setting ``name`` (and returned as a Python int
    or float); a ValueError of one line naming ``label`` (default ``name``: the CLI passes its
    flag) and the allowed range otherwise. Names without a numeric range are returned as given."""
    label = label or name
    if name in _INT_MIN or name == "seed":
        lo, hi = (0, SEED_MAX) if name == "seed" else (_INT_MIN[name], None)
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and lo <= value \
            and (hi is None or value <= hi)
        if not ok:
            what = f"an integer in [0, {SEED_MAX}] (JAX's PRNG takes 32-bit seeds; larger or negative ones " \
                   f"would repeat other seeds)" if name == "seed" else f"an integer >= {lo}" + \
                (" (or None: the number of clusters)" if name == "embedding_dim" else "")
            raise ValueError(f"{label} must be {what}, got {value!r}")
        return int(value)
    if name in _POSITIVE or name in _FRACTIONS:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > 0 if name in _POSITIVE else 0 <= value < 1)
        if not ok:
            raise ValueError(f"{label} must be {'a finite number > 0' if name in _POSITIVE else _FRACTIONS[name]}, "
                             f"got {value!r}")
        return float(value)
    return value


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run (init -> pretraining -> clustering phase); the defaults
    are the paper's protocol for SDEKC (Section 4). ``make_run(cfg)`` turns it into a pure
    function, ``fit(cfg, ...)`` into a host-driven run with progress, checkpoints and a cache.

    The autoencoder: ``arch`` is ``"cae"`` (DEKM / SDEKC), ``"arae"`` (residual encoder),
    ``"dense"`` (DEC's d-500-500-2000-10) or ``"none"`` (raw pixels); ``embedding_dim`` None means
    ``n_clusters``. Pretraining: reconstruction MSE, Adam(``learning_rate``, 0.9, 0.999),
    ``pretrain_epochs`` epochs of mini-batches of ``batch_size``. Clustering: ``"dekm"``
    (Algorithm 1), ``"dec"`` (DEC's KL loss, plus the reconstruction MSE when
    ``dec_reconstruction``: IDEC) or ``"kmeans"`` (K-means on the pretrained embedding, no
    fine-tuning); refresh every ``steps_per_iter`` optimiser steps, stop when fewer than
    ``tol * n`` points change cluster or after ``max_iters`` refreshes. The clustering optimiser
    is ``cluster_optimizer`` (``"adam"`` or ``"sgd"``, with ``cluster_momentum``) at
    ``cluster_learning_rate`` (None: ``learning_rate``). The K-means of each Algorithm 1 refresh
    follows ``kmeans_schedule``: ``"warm"`` runs ``kmeans_n_init`` k-means++ restarts, restart 0
    warm-started from the last centres (the first refresh: from the first ``n_clusters``
    embeddings); ``"dekm"`` is the DEKM reference code's (DEKM.py): 100 fresh restarts at the first
    refresh, then twice the previous K-means' Lloyd iterations, with no warm start.
    ``record_labels`` keeps every iteration's labels in the history (memory ``max_iters * n``).
    Kernels: ``conv_impl`` ``"auto"`` traces the convolutions per backend (``lax`` convolutions on
    GPU/TPU, the gather forms on CPU; :mod:`sdekc_jax.layers`), ``"lax"`` / ``"gather"`` force one;
    ``kmeans_scoring`` likewise for K-means' assignment (``"auto"``, ``"unrolled"``, ``"matmul"``);
    ``precision="bf16"`` computes convolutions and dense layers in bfloat16 (parameters, optimiser
    state, losses, K-means, S_w and ``eigh`` stay float32). ``init``: ``"glorot"`` initialises
    every kernel glorot (xavier) uniform; ``"dekm"`` is the DEKM reference code's, where the CAE
    encoder's convolutions use Keras' ``'uniform'`` (U(-0.05, 0.05)) and every other kernel glorot.
    Every Adam (pretraining and clustering) has epsilon ``adam_eps``. The clustering phase's
    mini-batches walk the data in one shuffled order per run (``cluster_batch_order="shuffled"``)
    or in the stored order (``"stored"``, as DEKM.py's ``np.arange(n)``); Algorithm 1's step
    minimises the batch mean of the per-point loss (``cluster_loss="mean"``) or its sum
    (``"sum"``, as DEKM.py's ``tape.gradient`` of a vector loss).
    """

    n_clusters: int = 10
    image_shape: tuple[int, int, int] = (28, 28, 1)
    arch: str = "cae"
    embedding_dim: int | None = None
    filters: tuple[int, ...] = (32, 64, 128)
    kernels: tuple[int, ...] = (5, 5, 3)
    hidden: tuple[int, ...] = (500, 500, 2000)
    activation: str = "relu"
    conv_impl: str = "auto"             # "auto": lax convolutions on GPU/TPU, gather forms on CPU
    precision: str = "float32"          # "bf16": convolutions and dense layers compute in bfloat16
    init: str = "glorot"                # "dekm": the encoder convs U(-0.05, 0.05), as DEKM.py's Keras 'uniform'
    pretrain_epochs: int = 200          # Adam, lr 1e-3, b1 0.9, b2 0.999
    batch_size: int = 256
    learning_rate: float = 1e-3
    adam_eps: float = 1e-8              # every Adam's epsilon (optax's and PyTorch's default; Keras': 1e-7)
    clustering: str = "dekm"
    max_iters: int = 1000
    steps_per_iter: int = 40            # DEKM's update interval
    tol: float = 0.001                  # stop when < 0.1% of the points change cluster
    cluster_optimizer: str = "adam"
    cluster_learning_rate: float | None = None
    cluster_momentum: float = 0.0
    kmeans_n_init: int = 10
    kmeans_max_iter: int = 300
    kmeans_schedule: str = "warm"
    cluster_batch_order: str = "shuffled"  # "stored": DEKM.py's unshuffled walk
    cluster_loss: str = "mean"          # "sum": DEKM.py's sum over the batch of the per-point MSE
    kmeans_scoring: str = "auto"        # "auto": unrolled on CPU, matmul on GPU/TPU (sdekc_jax.kmeans)
    dec_alpha: float = 1.0
    dec_gamma: float = 1.0
    dec_reconstruction: bool = False
    record_labels: bool = False
    embed_batch_size: int = 1024

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)
        for k in ("image_shape", "filters", "kernels", "hidden"):
            set_(k, tuple(int(v) for v in getattr(self, k)))
        fields = {f.name for f in dataclasses.fields(self)}
        for k in fields & set(_INT_MIN):
            if k != "embedding_dim" or self.embedding_dim is not None:
                set_(k, check_setting(k, getattr(self, k), f"RunConfig.{k}"))
        for k, allowed in (("arch", ARCHS), ("clustering", CLUSTERINGS), ("cluster_optimizer", OPTIMIZERS),
                           ("activation", ("relu", "tanh")), ("kmeans_schedule", KMEANS_SCHEDULES),
                           ("conv_impl", CONV_IMPLS), ("precision", PRECISIONS),
                           ("kmeans_scoring", SCORINGS), ("init", INITS),
                           ("cluster_batch_order", BATCH_ORDERS), ("cluster_loss", CLUSTER_LOSSES)):
            if getattr(self, k) not in allowed:
                raise ValueError(f"RunConfig.{k} must be one of {list(allowed)}, got {getattr(self, k)!r}")
        for k in fields & {*_POSITIVE, *_FRACTIONS}:
            if k != "cluster_learning_rate" or self.cluster_learning_rate is not None:
                set_(k, check_setting(k, getattr(self, k), f"RunConfig.{k}"))
        for k in ("dec_reconstruction", "record_labels"):
            if not isinstance(getattr(self, k), bool):
                raise ValueError(f"RunConfig.{k} must be True or False, got {getattr(self, k)!r}")
        if len(self.image_shape) != 3:
            raise ValueError(f"RunConfig.image_shape must be (H, W, C), got {self.image_shape}")
        if self.cluster_loss != "mean" and self.clustering != "dekm":
            raise ValueError(f"RunConfig.cluster_loss={self.cluster_loss!r} is Algorithm 1's (clustering='dekm'); "
                             f"got clustering={self.clustering!r}")
        if self.arch == "none" and self.clustering != "kmeans":
            raise ValueError("RunConfig.arch='none' (raw pixels) has nothing to train: use clustering='kmeans'")

    @property
    def embed_dim(self) -> int:
        """The size of the embedding (``embedding_dim``, or ``n_clusters`` when None)."""
        if self.arch == "none":
            return math.prod(self.image_shape)
        return self.embedding_dim or self.n_clusters

    @property
    def model_opts(self) -> dict:
        """The keyword arguments of ``encode`` / ``decode`` / ``reconstruct`` for this config."""
        return {"activation": self.activation, "conv": self.conv_impl, "precision": self.precision}

    @property
    def cluster_lr(self) -> float:
        return self.learning_rate if self.cluster_learning_rate is None else self.cluster_learning_rate

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-able fields (tuples as lists), e.g. for checkpoint specs and results files."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# The paper's protocol (Section 4), as RunConfig's defaults.
PAPER_PROTOCOL = {k: getattr(RunConfig(), k) for k in (
    "pretrain_epochs", "batch_size", "learning_rate", "steps_per_iter", "max_iters", "tol")}

# The paper's Tables 2 and 3 as data: (ACC, NMI) per method (our method names) and data set (our
# loader names), every cell as printed (4 decimals). Source: the SDEKC paper (计算机系统应用 2024,
# 33(1)), Tables 2 and 3, as transcribed in ../shared/paper/tables.md. Table 3 has no row for IDCEC
# and SIDCEC (they appear only in Table 2, on the two-class seismic data): their cells are None.
TABLE3_DATASETS = ("mnist", "usps", "fashion-mnist", "coil20", "frgc")
_PAPER_COLUMNS = ("mnist", "fashion-mnist", "usps", "coil20", "frgc")  # Table 3's column order
TABLE3_METHODS = ("kmeans", "ae-kmeans", "cae-kmeans", "arae-kmeans", "dec", "idec", "dcec", "idcec", "sidcec",
                  "dekm", "sdekc")
_TABLE3_ROWS = {  # (ACC, NMI) on MNIST, Fashion-MNIST, USPS, COIL-20, FRGC
    "kmeans": ((0.5208, 0.4930), (0.5074, 0.5127), (0.6680, 0.6163), (0.2601, 0.6732), (0.1256, 0.1830)),
    "ae-kmeans": ((0.8478, 0.8004), (0.5544, 0.5611), (0.7253, 0.7172), (0.4573, 0.6767), (0.1823, 0.1901)),
    "cae-kmeans": ((0.8491, 0.7922), (0.5794, 0.5902), (0.7355, 0.7402), (0.5382, 0.6900), (0.1864, 0.1897)),
    "arae-kmeans": ((0.7785, 0.7345), (0.5987, 0.5858), (0.6802, 0.6156), (0.5758, 0.7132), (0.2078, 0.1965)),
    "dec": ((0.8425, 0.8356), (0.6011, 0.5989), (0.7368, 0.7529), (0.6756, 0.7098), (0.2987, 0.2558)),
    "idec": ((0.8804, 0.8689), (0.6142, 0.6078), (0.7559, 0.7479), (0.6954, 0.7273), (0.3086, 0.3187)),
    "dcec": ((0.8875, 0.8652), (0.6198, 0.6132), (0.7742, 0.8002), (0.7190, 0.8300), (0.3325, 0.4123)),
    "dekm": ((0.9545, 0.9098), (0.5762, 0.6273), (0.7975, 0.8223), (0.6903, 0.8006), (0.3859, 0.5078)),
    "sdekc": ((0.9681, 0.9276), (0.6368, 0.6733), (0.8035, 0.8205), (0.7285, 0.8105), (0.3993, 0.5190)),
}
PAPER_TABLE3: dict[str, dict[str, tuple[float, float] | None]] = {
    m: {d: dict(zip(_PAPER_COLUMNS, _TABLE3_ROWS[m]))[d] if m in _TABLE3_ROWS else None for d in TABLE3_DATASETS}
    for m in TABLE3_METHODS
}
# Table 2: the binary preset on the two-class seismic data (local vs teleseismic).
PAPER_TABLE2: dict[str, dict[str, tuple[float, float] | None]] = {
    "idcec": {"seismic": (0.9796, 0.8587)},
    "sidcec": {"seismic": (0.9865, 0.8856)},
}


def paper_result(method: str, dataset: str) -> tuple[tuple[float, float] | None, str]:
    """The paper's (ACC, NMI) for ``method`` on ``dataset`` and the table it is from, or ``(None,
    why)`` when the paper has no such cell."""
    for name, table in (("Table 3", PAPER_TABLE3), ("Table 2", PAPER_TABLE2)):
        cell = table.get(method, {}).get(dataset)
        if cell is not None:
            return cell, name
    return None, f"not in the paper's tables ({method} on {dataset})"

