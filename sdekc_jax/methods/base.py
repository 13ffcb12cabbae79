"""What a method is (data) and the one function that runs any of them (a composition).

A :class:`Method` names three shared pieces and their settings:

* ``autoencoder``: ``None`` (raw pixels), ``"dense"`` (:class:`~sdekc_jax.models.DenseAE`),
  ``"cae"`` (:class:`~sdekc_jax.models.CAE`, with or without the weighted skips; ``arch="binary"``
  gives the Table 2 preset) or ``"arae"`` (:class:`~sdekc_jax.models.ARAE`);
* pretraining: :func:`~sdekc_jax.pretrain.pretrain` on reconstruction MSE, through the
  content-addressed cache (:mod:`sdekc_jax.cache`), so methods that share an autoencoder
  (same data, seed, architecture, skips, budget) pretrain it once;
* ``clustering``: ``"kmeans"`` (:func:`~sdekc_jax.kmeans.kmeans` on the embedding),
  ``"dec"`` (:func:`~sdekc_jax.dec.cluster_dec`: DEC/IDEC/DCEC/IDCEC/SIDCEC) or ``"dekm"``
  (:func:`~sdekc_jax.algorithm.cluster`: Algorithm 1, DEKM and SDEKC).

The random keys are those of :class:`~sdekc_jax.estimator.SDEKC` (``split(key(seed), 4)``:
init, pretraining, clustering), so ``run_method("sdekc", ...)`` and ``SDEKC(...).fit`` agree.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..vmap_exact import adam
from ..algorithm import cluster, embed_all_compiled
from ..cache import (PretrainCache, cached_pretrain, data_fingerprint, default_cache_dir, lookup_pretrained,
                     store_pretrained)
from ..checkpoint import Checkpointer
from ..dec import cluster_dec
from ..kmeans import kmeans
from ..models import ARAE, CAE, DenseAE, binary_cae, check_image_shape, embed_fn, encoder_params
from ..pretrain import pretrain
from ..validation import check_fit_data, check_images, resolve_skips

CACHE_FORMAT = 3  # 2: vmap_exact.adam and add_bias; 3: add_channel_bias (last-bit changes). Bump when pretraining numerics change, so old cache entries are not reused

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
    "dekm": {"max_iters", "steps_per_iter", "tol", "learning_rate"},
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
        allowed = set(self.defaults) | CLUSTER_KEYS[self.clustering] | ({"skips"} if self.autoencoder == "cae" else set())
        unknown = sorted(k for k, v in overrides.items() if v is not None and k not in allowed)
        if unknown:
            raise ValueError(f"method {self.name!r} has no setting(s) {unknown}; it takes {sorted(allowed)}")
        cfg.update({k: v for k, v in overrides.items() if v is not None})
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
    params: Any = None                 # final network parameters (DEC family: with the centres)
    model: Any = None


def make_optimizer(spec: Mapping[str, Any]) -> optax.GradientTransformation:
    """``{'name': 'adam'|'sgd', 'learning_rate': .., 'momentum': ..}`` -> an optax optimizer."""
    spec = dict(spec)
    name = spec.pop("name", None)
    lr = spec.pop("learning_rate", None)
    if lr is None or not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"optimizer learning_rate must be a positive number, got {lr!r}")
    if name == "adam":
        tx = adam(lr, b1=spec.pop("b1", 0.9), b2=spec.pop("b2", 0.999))
    elif name == "sgd":
        tx = optax.sgd(lr, momentum=spec.pop("momentum", None) or None)
    else:
        raise ValueError(f"optimizer name must be 'adam' or 'sgd', got {name!r}")
    if spec:
        raise ValueError(f"unknown optimizer setting(s) {sorted(spec)} for {name}")
    return tx


def build_model(method: Method, image_shape: tuple[int, int, int], n_clusters: int, cfg: dict, arch: str):
    """The autoencoder of ``method`` and a JSON-able description of it (part of the cache key)."""
    if arch not in method.archs:
        raise ValueError(f"method {method.name!r} has no architecture {arch!r}; it supports {list(method.archs)}")
    d = cfg.get("embedding_dim") or n_clusters
    if arch == "binary":
        skips = resolve_skips(cfg["skips"])
        model = binary_cae(image_shape, skip_weights=skips, n_embed=cfg.get("embedding_dim") or 2)
        return model, {"arch": "cae-binary", "embedding_dim": model.n_embed, "skip_weights": skips}
    if method.autoencoder == "dense":
        return DenseAE(image_shape, n_embed=d), {"arch": "dense", "embedding_dim": d, "hidden": [500, 500, 2000]}
    check_image_shape(image_shape)
    if method.autoencoder == "cae":
        skips = resolve_skips(cfg["skips"])
        return CAE(image_shape, n_embed=d, skip_weights=skips), {"arch": "cae", "embedding_dim": d, "skip_weights": skips}
    if method.autoencoder == "arae":
        return ARAE(image_shape, n_embed=d), {"arch": "arae", "embedding_dim": d}
    raise ValueError(f"method {method.name!r} has no autoencoder")


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
    (``pretrain.msgpack``, ``cluster.msgpack``), and a run started again with the same arguments
    continues from those files, ending with exactly the labels of an uninterrupted run. A
    checkpoint written with other settings is refused (:class:`~sdekc_jax.checkpoint.CheckpointMismatch`).
    The files are left in place; the caller removes them once its results are saved.
    """
    return _run(method, x, n_clusters, [seed], False, dataset=dataset, arch=arch, cache=cache, verbose=verbose,
                record_labels=record_labels, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                image_shape=image_shape, overrides=overrides)[0]


def run_method_vmapped(method: Method, x: np.ndarray, n_clusters: int, *, seeds, dataset: str | None = None,
                       arch: str = "default", cache: PretrainCache | None = None, verbose: bool = True,
                       record_labels: bool | str = False,
                       checkpoint_dir: str | None = None, checkpoint_every: int = 1,
                       image_shape: tuple[int, int, int] | None = None, **overrides) -> list[MethodResult]:
    """:func:`run_method` for several seeds at once, as one vmapped program: one list entry per seed.

    The same composition as :func:`run_method` with every piece under ``jax.vmap`` over the seed's
    keys: initialisation, pretraining (:func:`~sdekc_jax.pretrain.pretrain` ``vmapped=True``), the
    clustering phase (the shared loop, ``vmapped=True``: each seed keeps its own data-dependent
    stop test, finished seeds stop changing while the others continue) and the final K-means /
    embedding. Seed ``s`` draws the same random numbers as ``run_method(seed=s)`` and takes the
    same steps. On XLA:CPU the labels, histories, parameters and embeddings are bit-identical to
    ``run_method``'s (:mod:`sdekc_jax.vmap_exact`, ``tests/test_vmap_seeds.py``); other backends
    are not verified.

    ``cache`` as in :func:`run_method`: the seeds whose pretrained network is cached are read
    from it, the others are pretrained together and stored. On XLA:CPU these are the entries of
    sequential runs (the networks are bit-identical); elsewhere vmapped networks are cached apart
    (:func:`seed_cache_spec`). ``timings`` hold each phase's wall time divided by the number of seeds
    (``pretrain_total`` / ``cluster_total``: the whole phase). ``checkpoint_dir`` works as in
    :func:`run_method`, for all the seeds together.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    return _run(method, x, n_clusters, seeds, True, dataset=dataset, arch=arch, cache=cache, verbose=verbose,
                record_labels=record_labels, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                image_shape=image_shape, overrides=overrides)


def _run(method: Method, x, n_clusters: int, seeds: list[int], vmapped: bool, *, dataset, arch, cache, verbose,
         record_labels, checkpoint_dir, checkpoint_every, image_shape, overrides) -> list[MethodResult]:
    """The composition behind :func:`run_method` (one seed) and :func:`run_method_vmapped`."""
    cfg = method.config(dataset, **overrides)
    if arch not in method.archs:
        raise ValueError(f"method {method.name!r} has no architecture {arch!r}; it supports {list(method.archs)}")
    x = check_images(x, "x", image_shape=image_shape, allow_flat=method.autoencoder in (None, "dense"))
    check_fit_data(x, n_clusters, "x")
    S = len(seeds)
    V = jax.vmap if vmapped else (lambda f: f)  # the pieces below are written for one seed
    keys = [jax.random.split(jax.random.key(s), 4) for s in seeds]
    init_key, pre_key, cl_key = ((jnp.stack([k[i] for k in keys]) if vmapped else keys[0][i]) for i in range(3))
    seed_of = lambda tree, i: jax.tree.map(lambda v: v[i], tree) if vmapped else tree
    xj = jnp.asarray(x)
    if method.autoencoder is None:
        t0 = time.perf_counter()
        flat = xj.reshape(x.shape[0], -1)
        km = V(lambda k: kmeans(k, flat, n_clusters, n_init=cfg["kmeans_n_init"]))(cl_key)
        km = jax.device_get(km)
        t = (time.perf_counter() - t0) / S
        return [MethodResult(method.name, np.asarray(seed_of(km.labels, i)), None, cfg, int(seed_of(km.n_iter, i)),
                             bool(seed_of(km.converged, i)), {"inertia": np.asarray([seed_of(km.inertia, i)])},
                             _timings(0.0, t, S, vmapped), False) for i in range(S)]

    for key_ in ("pretrain_epochs", "batch_size", "kmeans_n_init"):
        if not isinstance(cfg[key_], (int, np.integer)) or cfg[key_] < (0 if key_ == "pretrain_epochs" else 1):
            raise ValueError(f"{key_} must be a {'non-negative' if key_ == 'pretrain_epochs' else 'positive'} integer, got {cfg[key_]!r}")
    model, model_spec = build_model(method, tuple(x.shape[1:]), n_clusters, cfg, arch)
    # jitted: one compiled program (kept by the persistent compilation cache) instead of dozens of
    # eager ops; bit-identical to the eager init for every architecture here
    params0 = jax.jit(V(lambda k: model.init(k, xj[:1])["params"]))(init_key)
    pre_tx = make_optimizer(cfg["pretrain_optimizer"])
    spec = {"format": CACHE_FORMAT, "model": model_spec, "image_shape": list(x.shape[1:]),
            "seed": seeds if vmapped else seeds[0], "epochs": int(cfg["pretrain_epochs"]),
            "batch_size": int(cfg["batch_size"]), "optimizer": dict(cfg["pretrain_optimizer"]),
            "backend": jax.default_backend(), "jax": jax.__version__, **({"vmapped": True} if vmapped else {})}
    fingerprint = data_fingerprint(x)
    ckpt = {}
    if checkpoint_dir is not None:
        run_spec = {"pretrain": spec, "data": fingerprint, "method": method.name, "config": cfg,
                    "n_clusters": int(n_clusters), "arch": arch}
        ckpt = {"pretrain": Checkpointer(Path(checkpoint_dir) / "pretrain.msgpack", {"pretrain": spec, "data": fingerprint},
                                         every=checkpoint_every),
                "cluster": Checkpointer(Path(checkpoint_dir) / "cluster.msgpack", run_spec, every=checkpoint_every)}
    compute = lambda p0, k, ck: pretrain(model, p0, xj, k, epochs=cfg["pretrain_epochs"], batch_size=cfg["batch_size"],
                                         optimizer=pre_tx, verbose=verbose, checkpoint=ck, vmapped=vmapped)
    cache = cache if cache is not None else PretrainCache(default_cache_dir())
    if vmapped:
        params, pre_loss, hit, t_pre = _pretrain_vmapped_cached(cache, spec, seeds, fingerprint, params0, pre_key,
                                                                compute, ckpt.get("pretrain"))
    else:
        params, pre_loss, hit = cached_pretrain(cache, spec, x, lambda: compute(params0, pre_key, ckpt.get("pretrain")),
                                                params0, fingerprint=fingerprint)
        t_pre = cache.last_seconds
    params = jax.tree.map(jnp.asarray, params)
    embed = embed_fn(model)
    embed_all_jit = embed_all_compiled(embed, vmapped)  # the data as an argument, not a constant
    embed_all_v = lambda p: embed_all_jit(p, xj)

    t0 = time.perf_counter()
    if method.clustering == "kmeans":
        z = embed_all_v(encoder_params(params))
        km = V(lambda k, zz: kmeans(k, zz, n_clusters, n_init=cfg["kmeans_n_init"]))(cl_key, z)
        labels, n_iter, converged, final = km.labels, np.asarray(km.n_iter), np.asarray(km.converged), params
        hist = [{"inertia": np.asarray([seed_of(km.inertia, i)])} for i in range(S)]
    elif method.clustering == "dekm":
        r = cluster(embed, encoder_params(params), xj, n_clusters, cl_key, max_iters=cfg["max_iters"],
                    steps_per_iter=cfg["steps_per_iter"], batch_size=cfg["batch_size"],
                    learning_rate=cfg["learning_rate"], tol=cfg["tol"], kmeans_n_init=cfg["kmeans_n_init"],
                    verbose=verbose, record_labels=record_labels, checkpoint=ckpt.get("cluster"), vmapped=vmapped)
        labels, n_iter, converged = r.labels, np.asarray(r.n_iter), np.asarray(r.converged)
        hist = r.history if vmapped else [r.history]
        final = {**params, **r.params}
        z = embed_all_v(r.params)
    else:  # dec family
        reconstruct = (lambda p, xb: model.apply({"params": p}, xb)) if method.reconstruction else None
        trained = params if method.reconstruction else encoder_params(params)
        r = cluster_dec(embed, trained, xj, n_clusters, cl_key, reconstruct=reconstruct, gamma=cfg["gamma"],
                        alpha=cfg["alpha"], optimizer=make_optimizer(cfg["cluster_optimizer"]),
                        update_interval=cfg["steps_per_iter"], max_iters=cfg["max_iters"],
                        batch_size=cfg["batch_size"], tol=cfg["tol"], kmeans_n_init=cfg["kmeans_n_init"],
                        verbose=verbose, record_labels=record_labels, checkpoint=ckpt.get("cluster"), vmapped=vmapped)
        labels, n_iter, converged = r.labels, np.asarray(r.n_iter), np.asarray(r.converged)
        hist = r.history if vmapped else [r.history]
        final = {**params, **r.params["model"], "centers": r.params["centers"]}
        z = embed_all_v(r.params["model"])
    z, labels = np.asarray(z), np.asarray(labels)
    t_cl = time.perf_counter() - t0
    return [MethodResult(method.name, seed_of(labels, i), seed_of(z, i), cfg, int(seed_of(n_iter, i)),
                         bool(seed_of(converged, i)), {"pretrain_loss": np.asarray(seed_of(pre_loss, i)), **hist[i]},
                         _timings(t_pre, t_cl, S, vmapped), hit[i] if vmapped else hit, seed_of(final, i), model)
            for i in range(S)]


def seed_cache_spec(spec: dict, seed: int) -> dict:
    """The pretraining-cache spec of one seed of a vmapped run.

    On XLA:CPU a vmapped seed's pretrained network is bit-identical to the sequential run's
    (:mod:`sdekc_jax.vmap_exact`, tested), so both share cache entries. Elsewhere that is not
    verified, and vmapped networks get entries of their own (``"vmapped": true`` in the spec):
    a sequential run never reads a vmapped network, nor a vmapped run a sequential one."""
    spec = {**{k: v for k, v in spec.items() if k != "vmapped"}, "seed": int(seed)}
    return spec if jax.default_backend() == "cpu" else {**spec, "vmapped": True}


def _pretrain_vmapped_cached(cache, spec, seeds, fingerprint, params0, keys, compute, checkpoint):
    """A vmapped run's pretraining through the cache: the seeds found there are read, the others
    are pretrained together (one vmapped program over the missing seeds only) and stored.
    ``(params (S, ...), losses (S, epochs), hit per seed, total seconds)``; the seconds of a
    cached seed are those recorded when it was computed."""
    specs = [seed_cache_spec(spec, s) for s in seeds]
    found = [lookup_pretrained(cache, sp, jax.tree.map(lambda v: v[i], params0), fingerprint)
             for i, sp in enumerate(specs)]
    missing = [i for i, f in enumerate(found) if f is None]
    seconds = sum(f[2] for f in found if f is not None)
    if missing:
        if checkpoint is not None:  # the checkpoint belongs to the seeds this run pretrains
            checkpoint = Checkpointer(checkpoint.path, {**checkpoint.spec, "pretrain": {
                **spec, "seed": [seeds[i] for i in missing]}}, every=checkpoint.every)
        idx = np.asarray(missing)
        take = lambda tree: jax.tree.map(lambda v: v[idx], tree)
        t0 = time.perf_counter()
        new_params, new_losses = compute(take(params0), keys[idx], checkpoint)
        new_params, new_losses = jax.device_get((new_params, new_losses))
        t = time.perf_counter() - t0
        seconds += t
        for j, i in enumerate(missing):
            found[i] = (jax.tree.map(lambda v: v[j], new_params), np.asarray(new_losses[j]), t / len(missing))
            store_pretrained(cache, specs[i], fingerprint, found[i][0], found[i][1], found[i][2])
    params = jax.tree.map(lambda *v: np.stack(v), *[f[0] for f in found])
    losses = np.stack([np.asarray(f[1]) for f in found])
    return params, losses, [i not in missing for i in range(len(seeds))], seconds


def _timings(t_pre: float, t_cl: float, n_seeds: int, vmapped: bool) -> dict:
    if not vmapped:
        return {"pretrain": t_pre, "cluster": t_cl}
    return {"pretrain": t_pre / n_seeds, "cluster": t_cl / n_seeds, "pretrain_total": t_pre, "cluster_total": t_cl,
            "vmapped_seeds": n_seeds}
