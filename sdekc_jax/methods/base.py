"""What a method is (data), and how its settings become a :class:`~sdekc_jax.config.RunConfig`.

A :class:`Method` names the shared pieces and their settings, taken from the method's source:

* ``autoencoder``: ``None`` (raw pixels), ``"dense"`` (DEC's d-500-500-2000-10), ``"cae"`` (with
  or without the weighted skips; ``arch="binary"`` gives the Table 2 preset) or ``"arae"``;
* pretraining on reconstruction MSE, through the content-addressed cache
  (:mod:`sdekc_jax.cache`), so methods that share an autoencoder (same data, seed,
  architecture, skips, budget) pretrain it once;
* ``clustering``: ``"kmeans"`` (K-means on the embedding), ``"dec"`` (DEC / IDEC / DCEC / IDCEC /
  SIDCEC) or ``"dekm"`` (Algorithm 1: DEKM and SDEKC).

:func:`run_method` turns them into a ``RunConfig`` and calls :func:`sdekc_jax.run.fit`, the
composition every entry point shares (the key is ``jax.random.key(seed)``, split there), so
``run_method("sdekc", ...)`` and ``SDEKC(...).fit`` compute the same run.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ..cache import PretrainCache, data_fingerprint, default_cache_dir
from ..config import RunConfig, check_setting
from ..models import BINARY_ARCH
from ..run import CACHE_FORMAT, fit  # noqa: F401  (CACHE_FORMAT: re-exported)
from ..validation import check_fit_data, check_images, check_seeds, resolve_skips

# Settings every method accepts, with their meaning (the CLI and the errors list them).
COMMON_KEYS = {
    "embedding_dim": "size of the embedding (None: the number of clusters)",
    "pretrain_epochs": "reconstruction pretraining epochs",
    "batch_size": "mini-batch size (pretraining and clustering)",
    "pretrain_optimizer": "optimizer spec, e.g. {'name': 'adam', 'learning_rate': 1e-3}",
    "kmeans_n_init": "K-means restarts",
}
CLUSTER_KEYS = {
    "kmeans": set(),
    "dec": {"max_iters", "steps_per_iter", "tol", "gamma", "alpha", "cluster_optimizer"},
    "dekm": {"max_iters", "steps_per_iter", "tol", "learning_rate", "kmeans_schedule", "cluster_batch_order",
             "cluster_loss"},
}


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    description: str
    autoencoder: str | None          # None, "dense", "cae", "arae"
    clustering: str                  # "kmeans", "dec", "dekm"
    defaults: Mapping[str, Any]      # the original source's settings
    dataset_defaults: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    skips: str | None = "none"       # CAE skip preset (see config.SKIP_PRESETS) or None
    reconstruction: bool = False     # DEC family: keep the decoder and its MSE in the loss
    archs: tuple[str, ...] = ("default",)

    def config(self, dataset: str | None = None, **overrides) -> dict:
        """The effective settings: defaults, then the data set's, then ``overrides`` (None = keep)."""
        cfg = dict(self.defaults)
        cfg.update(self.dataset_defaults.get(dataset or "", {}))
        allowed = set(self.defaults) | CLUSTER_KEYS[self.clustering] | ({"skips", "init"} if self.autoencoder == "cae" else set()) \
            | ({"precision", "adam_eps"} if self.autoencoder is not None else set())
        unknown = sorted(k for k, v in overrides.items() if v is not None and k not in allowed)
        if unknown:
            raise ValueError(f"method {self.name!r} has no setting(s) {unknown}; it takes {sorted(allowed)}")
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        for k, v in cfg.items():  # the numeric settings' ranges (config.check_setting), before any work
            if v is not None:
                cfg[k] = check_setting(k, v)
        if self.autoencoder == "cae":
            cfg.setdefault("skips", self.skips)
        return cfg


@dataclasses.dataclass
class MethodResult:
    method: str
    labels: np.ndarray                 # (n,) cluster labels
    embedding: np.ndarray | None       # (n, d) final embedding (None for raw K-means)
    config: dict                       # the settings used
    n_iter: int                        # clustering iterations (K-means: Lloyd iterations)
    converged: bool
    history: dict                      # pretraining loss per epoch, clustering records per iteration
    timings: dict                      # seconds: pretrain (as measured when it ran), cluster
    pretrain_cache_hit: bool
    params: Any = None                 # final network parameters {"encoder", "decoder"}
    run_config: Any = None             # the sdekc_jax.config.RunConfig that ran
    centers: np.ndarray | None = None  # (k, d) final centres in the embedding space


def run_config(method: Method, cfg: Mapping[str, Any], image_shape, n_clusters: int, arch: str = "default",
               record_labels: bool = False) -> RunConfig:
    """The :class:`~sdekc_jax.config.RunConfig` of ``method`` with the settings ``cfg`` (from
    :meth:`Method.config`) on images of ``image_shape``."""
    if arch not in method.archs:
        raise ValueError(f"method {method.name!r} has no architecture {arch!r}; it supports {list(method.archs)}")
    pre = dict(cfg.get("pretrain_optimizer") or {"name": "adam", "learning_rate": 1e-3})
    if pre.pop("name", "adam") != "adam" or set(pre) - {"learning_rate"}:
        raise ValueError(f"pretraining uses Adam with a learning_rate; got {cfg.get('pretrain_optimizer')!r}")
    fields = dict(n_clusters=int(n_clusters), image_shape=tuple(image_shape), embedding_dim=cfg.get("embedding_dim"),
                  pretrain_epochs=cfg.get("pretrain_epochs", 0), batch_size=cfg.get("batch_size", 256),
                  learning_rate=pre.get("learning_rate", 1e-3), kmeans_n_init=cfg["kmeans_n_init"],
                  arch={None: "none", "dense": "dense", "cae": "cae", "arae": "arae"}[method.autoencoder],
                  clustering=method.clustering, record_labels=bool(record_labels))
    if method.autoencoder is None:
        fields["pretrain_epochs"] = 0
    if method.autoencoder == "cae":
        fields["init"] = cfg.get("init", "glorot")
    if method.autoencoder is not None:
        fields["precision"] = cfg.get("precision", "float32")
        fields["adam_eps"] = cfg.get("adam_eps", 1e-8)
    if arch == "binary":
        fields.update(BINARY_ARCH, embedding_dim=cfg.get("embedding_dim") or BINARY_ARCH["embedding_dim"])
    for k in ("max_iters", "steps_per_iter", "tol"):
        if k in cfg:
            fields[k] = cfg[k]
    if method.clustering == "dekm":
        fields["cluster_learning_rate"] = cfg.get("learning_rate", 1e-3)
        fields["kmeans_schedule"] = cfg.get("kmeans_schedule", "warm")
        fields["cluster_batch_order"] = cfg.get("cluster_batch_order", "shuffled")
        fields["cluster_loss"] = cfg.get("cluster_loss", "mean")
    if method.clustering == "dec":
        opt = dict(cfg["cluster_optimizer"])
        name, lr, momentum = opt.pop("name", None), opt.pop("learning_rate", None), opt.pop("momentum", None)
        if opt or name not in ("adam", "sgd"):
            raise ValueError(f"cluster_optimizer must be {{'name': 'adam'|'sgd', 'learning_rate', 'momentum'}}, "
                             f"got {cfg['cluster_optimizer']!r}")
        fields.update(cluster_optimizer=name, cluster_learning_rate=lr, cluster_momentum=momentum or 0.0,
                      dec_alpha=cfg["alpha"], dec_gamma=cfg["gamma"], dec_reconstruction=method.reconstruction)
    return RunConfig(**fields)


def run_method(method: Method, x: np.ndarray, n_clusters: int, *, seed: int = 0, dataset: str | None = None,
               arch: str = "default", cache: PretrainCache | None = None, verbose: bool = True,
               record_labels: bool | str = False, checkpoint_dir: str | None = None, checkpoint_every: int = 1,
               image_shape: tuple[int, int, int] | None = None, **overrides) -> MethodResult:
    """Run ``method`` on images ``x`` (N, H, W, C) float32 and return its labels and records.

    ``x`` may also be (N, H, W) or uint8 (scaled by 1/255); flat (N, D) data are accepted by the
    raw and dense methods, and by every method with ``image_shape=(H, W, C)``.
    ``overrides`` replace settings of :meth:`Method.config` (None keeps the default);
    ``cache`` defaults to ``PretrainCache(default_cache_dir())``. ``record_labels=True`` keeps the
    labels of every clustering iteration in ``history["labels"]`` (n_iter, n), ``"first"`` only
    the first iteration's (1, n) (DEC and Algorithm 1 families; the K-means methods have one
    labelling).

    ``checkpoint_dir``: pretraining (every ``checkpoint_every`` epochs) and the clustering loop
    (every ``checkpoint_every`` chunks of iterations) save their state there
    (``pretrain/``, ``cluster/``: Orbax checkpoints), and a run started again with the same arguments
    continues from those files, ending with exactly the labels of an uninterrupted run. A
    checkpoint written with other settings is refused (:class:`~sdekc_jax.checkpoint.CheckpointMismatch`).
    The files are left in place; the caller removes them once its results are saved.
    """
    return _run(method, x, n_clusters, [seed], False, dataset=dataset, arch=arch, cache=cache, verbose=verbose,
                record_labels=record_labels, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                image_shape=image_shape, overrides=overrides)[0]


def run_method_vmapped(method: Method, x: np.ndarray, n_clusters: int, *, seeds, dataset: str | None = None,
                     arch: str = "default", cache: PretrainCache | None = None, verbose: bool = True,
                     record_labels: bool | str = False, checkpoint_dir: str | None = None, checkpoint_every: int = 1,
                     image_shape: tuple[int, int, int] | None = None, **overrides) -> list[MethodResult]:
    """:func:`run_method` for several seeds at once, as one vmapped program (``fit`` with the
    seeds' keys stacked): one result per seed. Each seed keeps its own stop test; finished seeds
    stop changing while the others continue. A vmapped program rounds differently from the
    seed-by-seed ones, so the results agree with :func:`run_method`'s statistically and, over a
    few steps, to float tolerance, not bit for bit.

    ``cache`` as in :func:`run_method` (vmapped runs have cache entries of their own);
    ``timings`` hold each phase's wall time divided by the number of seeds (``pretrain_total`` /
    ``cluster_total``: the whole phase). ``checkpoint_dir`` works as in :func:`run_method`, for all
    the seeds together.
    """
    return _run(method, x, n_clusters, seeds, True, dataset=dataset, arch=arch, cache=cache, verbose=verbose,
                record_labels=record_labels, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                image_shape=image_shape, overrides=overrides)


def _run(method: Method, x, n_clusters: int, seeds: list[int], batched: bool, *, dataset, arch, cache, verbose,
         record_labels, checkpoint_dir, checkpoint_every, image_shape, overrides) -> list[MethodResult]:
    """The settings, the data checks and the results around :func:`sdekc_jax.run.fit`."""
    if record_labels not in (False, True, "first"):
        raise ValueError(f"record_labels must be False, True or 'first', got {record_labels!r}")
    seeds = check_seeds(seeds, "seeds" if batched else "seed")
    checkpoint_every = check_setting("checkpoint_every", checkpoint_every)
    cfg = method.config(dataset, **overrides)
    if arch not in method.archs:
        raise ValueError(f"method {method.name!r} has no architecture {arch!r}; it supports {list(method.archs)}")
    x = check_images(x, "x", image_shape=image_shape, allow_flat=method.autoencoder in (None, "dense"))
    check_fit_data(x, n_clusters, "x")
    rc = run_config(method, cfg, x.shape[1:], n_clusters, arch, record_labels=record_labels is True)
    skips = resolve_skips(cfg["skips"]) if method.autoencoder == "cae" else None
    keys = jnp.stack([jax.random.key(s) for s in seeds]) if batched else jax.random.key(seeds[0])
    f = fit(rc, x, keys, None if skips is None else jnp.asarray(skips, jnp.float32),
            cache=cache if cache is not None else PretrainCache(default_cache_dir()), checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every, verbose=verbose, fingerprint=data_fingerprint(x))
    S = len(seeds)
    timings = f.timings if not batched else {
        "pretrain": f.timings["pretrain"] / S, "cluster": f.timings["cluster"] / S,
        "pretrain_total": f.timings["pretrain"], "cluster_total": f.timings["cluster"], "vmapped_seeds": S}
    out = []
    for i in range(S):
        r = f.one(i)
        n_iter = int(r.n_iter)
        hist = {k: np.asarray(v[:n_iter]) if rc.clustering != "kmeans" else np.asarray(v) for k, v in r.history.items()}
        if record_labels == "first" and rc.clustering != "kmeans":
            hist["labels"] = np.asarray(r.first_labels)[None]
        hit = f.pretrain_cache_hit[i] if batched else f.pretrain_cache_hit
        out.append(MethodResult(method.name, np.asarray(r.labels), None if method.autoencoder is None else
                                np.asarray(r.embedding), cfg, n_iter, bool(r.converged),
                                {"pretrain_loss": np.asarray(r.pretrain_loss), **hist}, timings, bool(hit),
                                r.params, rc, np.asarray(r.centers)))
    return out
