"""One run (init -> pretraining -> clustering phase) as one pure function, and the host driver
that runs the same steps with progress bars, checkpoints and the pretraining cache.

    cfg = RunConfig(n_clusters=10, image_shape=(16, 16, 1))
    run = make_run(cfg)                                   # run(key, x, skip_weights) -> RunResult
    r = jax.jit(run)(jax.random.key(0), x, jnp.array([0.001, 0.999]))
    rs = jax.jit(jax.vmap(run, in_axes=(0, None, None)))(jax.random.split(key, 5), x, w)   # seeds
    rw = jax.jit(jax.vmap(run, in_axes=(None, None, 0)))(key, x, ws)                      # skip sweep

    fitted = fit(cfg, x, jax.random.key(0), w, checkpoint_dir="ck")   # the same run, host-driven

``run`` has no host callbacks and no side effects: pretraining is a ``lax.scan`` over epochs
(each a scan over mini-batches) and the clustering phase a ``lax.while_loop`` with the stop rule
and ``max_iters``. :func:`fit` calls the same step functions (:func:`make_steps`) one epoch and
one chunk of iterations at a time, so for the same key and config it ends with the labels of
``jax.jit(run)``; it adds what a host can: progress, checkpoints with exact resume, the
content-addressed pretraining cache, NaN checks, timings. A leading axis on the key (and/or on
the skip weights) runs several runs in one vmapped program. Every entry point (the estimator,
the comparison methods, the CLI, the sweeps) goes through :func:`fit`.

The key is split once, here: ``init, pretrain, cluster = jax.random.split(key, 3)``.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .algorithm import dekm_loss, dekm_refresh, embed_all, initial_aux
from .cache import PretrainCache, data_fingerprint, lookup_pretrained, store_pretrained
from .checkpoint import Checkpointer
from .config import RunConfig
from .dec import dec_loss, dec_refresh
from .kmeans import kmeans
from .loop import drive_loop, init_loop_state, make_advance
from .models import encode, init_params, reconstruct
from .parallel import (Rows, active_mesh, data_placement, place_rows, place_runs, program_for, rows_layout,
                       rows_sharded, runs_layout, runs_sharded, split_runs, to_host)
from .pretrain import adam, cached_jit as _jit, drive_epochs, init_state, make_epoch

# Bump when pretraining numerics change, so old cache entries and checkpoints are not reused.
# 4: pure model functions, optax.adam and plain bias adds (the vmap_exact workarounds removed).
CACHE_FORMAT = 4


class RunResult(NamedTuple):
    """What one run returns: arrays only (a leading run axis when vmapped)."""
    labels: Any         # (n,) int32 final cluster labels
    centers: Any        # (k, d) final centres in the embedding space (DEC family: the trained centres)
    n_iter: Any         # () int32 clustering iterations (refreshes; clustering="kmeans": Lloyd iterations)
    converged: Any      # () bool: stopped by the tolerance, not by max_iters
    params: Any         # {"encoder", "decoder"} after the clustering phase
    embedding: Any      # (n, d) final embedding
    first_labels: Any   # (n,) labels of the first refresh (the pretrained embedding's)
    pretrain_loss: Any  # (pretrain_epochs,) mean reconstruction MSE per epoch
    history: dict       # per iteration, fixed size max_iters: n_changed (-1: not run), loss, inertia | kl


class Steps(NamedTuple):
    """The pure pieces of a run (see :func:`make_steps`)."""
    init: Callable            # key -> params {"encoder", "decoder"}
    pretrain_tx: Any          # the pretraining optimiser (its state is part of the epoch's state)
    pretrain_init: Callable   # params -> pretraining state
    pretrain_epoch: Callable  # (state, x, key, epoch, skip_weights) -> (state, mean loss)
    cluster_init: Callable    # (params, x, key, skip_weights) -> loop state
    advance: Callable         # (state, x, skip_weights, limit) -> state
    finish: Callable          # (params, state, x) -> RunResult (pretrain_loss None)
    embed: Callable           # (encoder_params, x_batch) -> z_batch
    embed_all: Callable       # (encoder_params, x) -> z for all of x, in batches


def split_key(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init, pretrain, cluster)`` keys of a run."""
    k = jax.random.split(key, 3)
    return k[0], k[1], k[2]


def cluster_optimizer(cfg: RunConfig) -> optax.GradientTransformation:
    if cfg.cluster_optimizer == "adam":
        return adam(cfg.cluster_lr, cfg.adam_eps)
    return optax.sgd(cfg.cluster_lr, momentum=cfg.cluster_momentum or None)


def make_steps(cfg: RunConfig) -> Steps:
    """The step functions of a run of ``cfg``; all pure (jit / vmap them freely). Memoized per
    config, active data-parallel mesh and layout of the data and runs (``sdekc_jax.parallel``:
    the mini-batches' sharding and the embedding's layout are fixed when a step is traced), so
    repeated fits of one config reuse their compiled programs."""
    return _make_steps(cfg, active_mesh(), rows_sharded(), runs_sharded())


@functools.lru_cache(maxsize=64)
def _make_steps(cfg: RunConfig, mesh, sharded_rows: bool, sharded_runs: bool) -> Steps:
    opts, k, d, eb = cfg.model_opts, cfg.n_clusters, cfg.embed_dim, cfg.embed_batch_size
    enc = lambda p, xb: encode(p, xb, **opts)[0]
    pre_tx = adam(cfg.learning_rate, cfg.adam_eps)
    tx = cluster_optimizer(cfg)
    loop_state = lambda trained, labels, aux, key, n, names: init_loop_state(
        trained, tx, labels, aux, key, n=n, batch_size=cfg.batch_size, max_iters=cfg.max_iters, record_names=names,
        record_labels=cfg.record_labels, shuffle=cfg.cluster_batch_order == "shuffled")
    advance = None

    if cfg.clustering == "dekm":
        refresh = dekm_refresh(enc, k, cfg.kmeans_n_init, eb, cfg.kmeans_max_iter, cfg.kmeans_schedule,
                               cfg.kmeans_scoring)
        advance = make_advance(refresh, dekm_loss(enc, cfg.cluster_loss), tx, steps_per_iter=cfg.steps_per_iter, tol=cfg.tol)

        def cluster_init(params, x, key, skip_weights=None):
            n = x.shape[0]
            return loop_state(params["encoder"], jnp.zeros((n,), jnp.int32), initial_aux(k, d), key, n, ("inertia",))

        def trained_parts(params, st):
            return {"encoder": st["params"], "decoder": params["decoder"]}, st["aux"]["centers"]

    elif cfg.clustering == "dec":
        embed_p = lambda p, xb: enc(p["encoder"], xb)
        rec = None
        if cfg.dec_reconstruction:
            rec = lambda p, xb, w: reconstruct({"encoder": p["encoder"], "decoder": p["decoder"]}, xb, w, **opts)
        advance = make_advance(dec_refresh(embed_p, cfg.dec_alpha, eb), dec_loss(embed_p, cfg.dec_alpha, cfg.dec_gamma, rec),
                               tx, steps_per_iter=cfg.steps_per_iter, tol=cfg.tol)

        def cluster_init(params, x, key, skip_weights=None):
            km_key, loop_key = jax.random.split(key)
            km = kmeans(km_key, embed_all(enc, params["encoder"], x, eb), k, n_init=cfg.kmeans_n_init,
                        max_iter=cfg.kmeans_max_iter, scoring=cfg.kmeans_scoring)
            trained = {"encoder": params["encoder"], "centers": km.centers}
            if cfg.dec_reconstruction:
                trained["decoder"] = params["decoder"]
            return loop_state(trained, km.labels, None, loop_key, x.shape[0], ("kl",))

        def trained_parts(params, st):
            p = st["params"]
            return {"encoder": p["encoder"], "decoder": p.get("decoder", params["decoder"])}, p["centers"]

    else:  # K-means on the pretrained embedding (or the raw pixels)
        def cluster_init(params, x, key, skip_weights=None):
            km = kmeans(key, embed_all(enc, params["encoder"], x, eb), k, n_init=cfg.kmeans_n_init,
                        max_iter=cfg.kmeans_max_iter, scoring=cfg.kmeans_scoring)
            return {"labels": km.labels, "centers": km.centers, "n_iter": km.n_iter, "converged": km.converged,
                    "history": {"inertia": km.inertia[None]}}

    def finish(params, st, x):
        if cfg.clustering == "kmeans":
            final, centers, n_iter, converged, first = params, st["centers"], st["n_iter"], st["converged"], st["labels"]
        else:
            (final, centers), n_iter, converged, first = trained_parts(params, st), st["iteration"], st["done"], \
                st["first_labels"]
        z = embed_all(enc, final["encoder"], x, eb)
        return RunResult(st["labels"], centers, n_iter, converged, final, z, first, None, st["history"])

    return Steps(lambda key: init_params(key, cfg), pre_tx, lambda p: init_state(p, pre_tx),
                 make_epoch(pre_tx, cfg.batch_size, **opts), cluster_init,
                 advance if advance is not None else (lambda st, x, w, limit: st), finish, enc,
                 lambda p, x: embed_all(enc, p, x, eb))


def _check_x(cfg: RunConfig, x) -> None:
    if tuple(x.shape[1:]) != cfg.image_shape:
        raise ValueError(f"x has images of shape {tuple(x.shape[1:])}, the config says image_shape={cfg.image_shape}")
    if x.shape[0] < cfg.n_clusters:
        raise ValueError(f"x has {x.shape[0]} samples, fewer than n_clusters={cfg.n_clusters}")


def make_run(cfg: RunConfig) -> Callable:
    """``run(key, x, skip_weights=None) -> RunResult``: a whole run of ``cfg`` as one pure function.

    ``x``: the data (n, H, W, C) float32 in [0, 1], ``cfg.image_shape`` per image.
    ``skip_weights``: ``(w_enc, w_dec)`` as an array of shape (2,) (traced: vmap it for a sweep)
    or None (no skips). ``jax.jit(run)`` compiles the whole run once; ``jax.vmap`` over the key
    runs seeds in parallel, over the skip weights a sweep. Nothing is checked at run time: a run
    that diverges returns NaNs (the host driver :func:`fit` raises instead)."""
    steps = make_steps(cfg)

    def run(key, x, skip_weights=None):
        _check_x(cfg, x)
        x = jnp.asarray(x, jnp.float32)
        k_init, k_pre, k_cl = split_key(key)
        params = steps.init(k_init)
        losses = jnp.zeros((0,), jnp.float32)
        if cfg.pretrain_epochs and cfg.arch != "none":
            state, losses = jax.lax.scan(lambda s, e: steps.pretrain_epoch(s, x, k_pre, e, skip_weights),
                                         init_state(params, steps.pretrain_tx), jnp.arange(cfg.pretrain_epochs))
            params = state["params"]
        st = steps.advance(steps.cluster_init(params, x, k_cl, skip_weights), x, skip_weights, cfg.max_iters)
        return steps.finish(params, st, x)._replace(pretrain_loss=losses)

    return run


def make_embed(cfg: RunConfig) -> Callable:
    """``embed(encoder_params, x) -> z`` for all of ``x`` in batches, jitted."""
    return _jit(make_steps(cfg).embed_all)


@dataclasses.dataclass
class Fitted:
    """What :func:`fit` returns: the run's result on the host, and what the host measured."""
    result: RunResult             # numpy leaves; a leading run axis when batched
    timings: dict                 # seconds: "pretrain" (as measured when it ran, for cached runs), "cluster"
    pretrain_cache_hit: Any       # bool, or one per run when batched
    batched: bool = False

    def one(self, i: int) -> RunResult:
        """Run ``i`` of a batched fit (the result itself when not batched)."""
        return self.result if not self.batched else jax.tree.map(lambda v: v[i], self.result)


def model_spec(cfg: RunConfig) -> dict:
    """The part of ``cfg`` that fixes the autoencoder and its pretraining (cache and checkpoint keys)."""
    keys = ["arch", "image_shape", "activation", "pretrain_epochs", "batch_size", "learning_rate"]
    keys += {"dense": ["hidden"], "none": []}.get(cfg.arch, ["filters", "kernels"])
    spec = {k: v for k, v in cfg.to_dict().items() if k in keys}
    # the kernels, the precision and the init only where they differ from the defaults (keys made before
    # these settings existed stay valid)
    spec.update({k: getattr(cfg, k) for k, default in (("conv_impl", "auto"), ("precision", "float32"),
                                                              ("init", "glorot"), ("adam_eps", 1e-8))
                 if getattr(cfg, k) != default})
    return {**spec, "embedding_dim": cfg.embed_dim}


def _key_data(keys) -> list:
    return np.asarray(jax.random.key_data(keys)).tolist()


def fit(cfg: RunConfig, x, key: jax.Array, skip_weights=None, *, cache: PretrainCache | None = None,
        checkpoint_dir: str | Path | None = None, checkpoint_every: int = 1, chunk_size: int = 10,
        pretrain_chunk_size: int | None = None, verbose: bool = True, fingerprint: str | None = None) -> Fitted:
    """The run of ``make_run(cfg)``, driven from the host (see the module doc).

    ``key``: one key, or an array of R keys (R runs in one vmapped program, e.g. seeds);
    ``skip_weights``: None, ``(w_enc, w_dec)``, or an (R, 2) array (one setting per run, e.g. a
    sweep; a single key is then shared by the runs).

    ``cache``: the pretraining cache (None: no cache). Each run's pretrained autoencoder is
    looked up by its settings, key, skip weights and data; the missing runs are pretrained
    (together) and stored. Runs pretrained in a vmapped program are cached apart from sequential
    ones: batched programs round differently, and a sequential run stays exactly reproducible.

    ``checkpoint_dir``: pretraining (every ``checkpoint_every`` epochs) and the clustering loop
    (every ``checkpoint_every`` chunks of ``chunk_size`` iterations) save their state there
    (``pretrain/``, ``cluster/``: Orbax checkpoints); a fit started again with the same arguments
    continues from them and ends with exactly the labels of an uninterrupted fit. A checkpoint
    written with other settings, keys or data is refused. The files are left in place.

    ``pretrain_chunk_size``: stream the data through pretraining in chunks (``x`` may then be a
    memory map or an ``h5py`` data set; see :func:`~sdekc_jax.pretrain.drive_epochs`).
    """
    lazy = isinstance(x, Rows) or data_placement(4 * int(np.prod(x.shape))) == "sharded"
    if pretrain_chunk_size is None and not lazy:
        x = np.asarray(x, np.float32)  # (sharded rows are read shard by shard, by place_rows)
    _check_x(cfg, x)
    rows = None if pretrain_chunk_size is not None else place_rows(x)
    with rows_layout(rows is not None and rows.sharded):
        return _fit(cfg, x, rows, key, skip_weights, cache=cache, checkpoint_dir=checkpoint_dir,
                    checkpoint_every=checkpoint_every, chunk_size=chunk_size, pretrain_chunk_size=pretrain_chunk_size,
                    verbose=verbose, fingerprint=fingerprint)


def _fit(cfg, x, rows, key, skip_weights, *, cache, checkpoint_dir, checkpoint_every, chunk_size, pretrain_chunk_size,
         verbose, fingerprint) -> Fitted:
    steps = make_steps(cfg)  # (init: the same in every layout)
    w = None if skip_weights is None else jnp.asarray(skip_weights, jnp.float32)
    if w is not None and w.shape[-1:] != (2,):
        raise ValueError(f"skip_weights must be (w_enc, w_dec) or an (R, 2) array, got shape {w.shape}")
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError("key must be a typed PRNG key (jax.random.key(seed)) or an array of them")
    batched = key.ndim == 1 or (w is not None and w.ndim == 2)
    if batched:
        n_runs = key.shape[0] if key.ndim == 1 else w.shape[0]
        if key.ndim == 0:
            key = jax.random.wrap_key_data(jnp.broadcast_to(jax.random.key_data(key), (n_runs,) + jax.random.key_data(key).shape),
                                           impl=jax.random.key_impl(key))
        if w is not None and w.ndim == 1:
            w = jnp.broadcast_to(w, (n_runs, 2))
        if key.shape[0] != n_runs or (w is not None and w.shape[0] != n_runs):
            raise ValueError(f"the keys ({key.shape[0]}) and skip weights ({w.shape[0]}) name different numbers of runs")
    n_runs = key.shape[0] if batched else 1
    split = split_runs(n_runs if batched else None, rows is not None and rows.sharded)  # (raises before any work)
    w_axis = None if w is None else 0
    V = lambda f, axes, once=False: _jit(f, axes if batched else None, run_once=once)
    k_init, k_pre, k_cl = V(split_key, 0, True)(key)
    params = V(steps.init, 0, True)(k_init)
    if fingerprint is None:
        fingerprint = data_fingerprint(x)
    keys_data = _key_data(key) if batched else [_key_data(key)]
    w_list = [None] * n_runs if w is None else (np.asarray(w).tolist() if batched else [np.asarray(w).tolist()])
    base = {"format": CACHE_FORMAT, "model": model_spec(cfg), "backend": jax.default_backend(), "jax": jax.__version__}
    root = None if checkpoint_dir is None else Path(checkpoint_dir)

    # --- pretraining, through the cache --------------------------------------------------------
    cache = cache if cache is not None else PretrainCache(None)
    pre_specs = [{**base, "key": keys_data[i], "skip_weights": w_list[i], **({"vmapped": True} if batched else {})}
                 for i in range(n_runs)]
    losses = [np.zeros((0,), np.float64)] * n_runs
    hits = [False] * n_runs
    pre_seconds = 0.0
    if cfg.pretrain_epochs and cfg.arch != "none":
        take = lambda tree, i: jax.tree.map(lambda v: v[i], tree) if batched else tree
        found = [lookup_pretrained(cache, pre_specs[i], jax.device_get(take(params, i)), fingerprint)
                 for i in range(n_runs)]
        missing = [i for i, f in enumerate(found) if f is None]
        pre_seconds = sum(f[2] for f in found if f is not None)
        if missing:
            ck = None if root is None else Checkpointer(
                root / "pretrain", {"pretrain": [pre_specs[i] for i in missing], "data": fingerprint},
                every=checkpoint_every)
            sub = np.asarray(missing)
            pick = (lambda tree: jax.tree.map(lambda v: v[sub], tree)) if batched else (lambda tree: tree)
            state = V(steps.pretrain_init, 0, True)(pick(params))
            t = time.perf_counter()
            with runs_layout(batched and split_runs(len(missing), rows is not None and rows.sharded, strict=False)):
                state, new_losses = drive_epochs(make_steps(cfg).pretrain_epoch, state, x if rows is None else rows,
                                                 pick(k_pre), None if w is None else pick(w), epochs=cfg.pretrain_epochs,
                                                 batched=batched, chunk_size=pretrain_chunk_size, checkpoint=ck,
                                                 verbose=verbose)
            t = time.perf_counter() - t + (0.0 if ck is None else ck.resumed_seconds)  # + the earlier pieces'
            pre_seconds += t
            new_params = to_host(state["params"])
            for j, i in enumerate(missing):
                found[i] = (take(new_params, j), new_losses[j] if batched else new_losses, t / len(missing))
                store_pretrained(cache, pre_specs[i], fingerprint, found[i][0], found[i][1], found[i][2])
        params = jax.tree.map(lambda *v: jnp.stack([jnp.asarray(a) for a in v]), *[f[0] for f in found]) if batched \
            else jax.tree.map(jnp.asarray, found[0][0])
        losses = [np.asarray(f[1]) for f in found]
        hits = [f is not None and i not in missing for i, f in enumerate(found)]

    # --- clustering phase ----------------------------------------------------------------------
    with runs_layout(split):  # the run axis split over the mesh, or not (sdekc_jax.parallel)
        steps = make_steps(cfg)
        t1 = time.perf_counter()
        # on the active mesh, if any: in a multi-process run every input must be a global array
        xj = rows if rows is not None else place_rows(np.asarray(x, np.float32))  # (streamed: placed replicated now)
        params, k_cl, w = place_runs((params, k_cl, w))  # replicated, or split by runs
        st = V(program_for(steps.cluster_init, 1, xj), (0, None, 0, w_axis))(params, xj.array, k_cl, w)
        ck = None
        if cfg.clustering != "kmeans":
            ck = None if root is None else Checkpointer(
                root / "cluster", {**base, "config": cfg.to_dict(), "keys": keys_data, "skip_weights": w_list,
                                   "data": fingerprint}, every=checkpoint_every)
            st = drive_loop(steps.advance, st, xj, w, max_iters=cfg.max_iters, chunk_size=chunk_size, batched=batched,
                            checkpoint=ck, verbose=verbose, desc=cfg.clustering)
        result = V(program_for(steps.finish, 2, xj), (0, 0, None))(params, st, xj.array)
    result = to_host(result)  # (gathered from every process in a multi-process run)
    t_cl = time.perf_counter() - t1 + (0.0 if ck is None else ck.resumed_seconds)
    result = result._replace(pretrain_loss=np.stack(losses) if batched else losses[0])
    timings = {"pretrain": pre_seconds, "cluster": t_cl}
    return Fitted(result, timings, hits if batched else hits[0], batched)
