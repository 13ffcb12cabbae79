"""A functional ablation: several skip-weight settings and seeds as one vmapped program.

The skip weights of a :class:`~sdekc_jax.models.CAE` are usually part of the module (static: each
setting compiles its own program). With ``traced_skips=True`` they live in the parameters
(``params["dec_skips"]``, never trained), so models that differ only in their skip weights are
one function of their parameters, and a stack of them runs under ``jax.vmap``: pretraining
(:func:`~sdekc_jax.pretrain.pretrain` ``vmapped=True``) and Algorithm 1
(:func:`~sdekc_jax.algorithm.cluster` ``vmapped=True``, each run with its own stop test), the same
pieces as every other run.

    from sdekc_jax.models import CAE
    from sdekc_jax.sweep import skip_sweep
    runs = [(w, s) for w in (None, (0.001, 0.999), (0.999, 0.001)) for s in range(3)]
    res = skip_sweep(CAE((16, 16, 1), n_embed=10), x, 10, runs, pretrain_epochs=200)
    res.labels[i], res.history[i]      # run i

Run ``(w, s)`` draws the random numbers of ``run("sdekc", x, k, seed=s, skips=w)`` (the keys of
``jax.random.key(s)`` split as there) and takes the same steps; ``None`` (no skips) is computed as
``(0.0, 1.0)``, which gives the plain CAE's values and gradients bit for bit. On XLA:CPU each run
is bit-identical to the same pieces run alone with a static-skip model (``tests/test_sweep.py``;
on USPS checked with the 7 settings of the paper's grid, README "Skip weights in parallel").
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .algorithm import cluster, embed_all_compiled
from .cache import data_fingerprint
from .checkpoint import Checkpointer
from .methods.base import CACHE_FORMAT
from .models import CAE, embed_fn, encoder_params
from .pretrain import pretrain
from .validation import check_fit_data, check_images, resolve_skips
from .vmap_exact import adam

NO_SKIPS = (0.0, 1.0)  # w_enc * enc + w_dec * dec == dec, exactly


class SweepResult(NamedTuple):
    runs: list[tuple[tuple[float, float] | None, int]]  # (skip weights, seed) of each run
    labels: np.ndarray            # (R, n) final labels
    pretrain_labels: np.ndarray   # (R, n) K-means labels of the pretrained embedding (iteration 1)
    embedding: np.ndarray         # (R, n, d) final embedding
    params: Any                   # stacked parameters (leading axis R), dec_skips included
    n_iter: np.ndarray            # (R,)
    converged: np.ndarray         # (R,)
    history: list[dict]           # per run: pretrain_loss, n_changed, inertia, loss
    seconds: dict                 # wall time of the phases, all runs together


def _model_spec(model: CAE) -> dict:
    name = lambda f: None if f is None else f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', repr(f))}"
    return {"image_shape": list(model.image_shape), "n_embed": int(model.n_embed), "filters": list(model.filters),
            "kernels": list(model.kernels), "activation": model.activation, "conv_impl": name(model.conv_impl),
            "conv_transpose_impl": name(model.conv_transpose_impl)}


def skip_sweep(model: CAE, x, n_clusters: int, runs: Sequence[tuple[Sequence[float] | str | None, int]], *,
               pretrain_epochs: int = 200, batch_size: int = 256, learning_rate: float = 1e-3,
               max_iters: int = 1000, steps_per_iter: int = 40, tol: float = 0.001, kmeans_n_init: int = 10,
               verbose: bool = True, checkpoint_dir: str | os.PathLike | None = None,
               checkpoint_every: int = 1) -> SweepResult:
    """Pretrain and cluster every ``(skip_weights, seed)`` of ``runs`` as one vmapped program.

    ``model`` gives the architecture (its own ``skip_weights`` are ignored); ``skip_weights`` of a
    run is ``(w_enc, w_dec)``, a preset name, or None (no skips). The other arguments are those of
    :class:`~sdekc_jax.estimator.SDEKC` (the paper's protocol by default).

    ``checkpoint_dir``: pretraining (every ``checkpoint_every`` epochs) and the clustering loop
    (every ``checkpoint_every`` chunks of iterations) save all runs' state there; a sweep started
    again with the same arguments continues from it and ends with what an uninterrupted sweep
    gives. A checkpoint written with other runs, settings, model or data is refused.
    """
    if not isinstance(model, CAE):
        raise TypeError(f"model must be a CAE (its skips are what the sweep varies), got {type(model).__name__}")
    runs = [(resolve_skips(w), int(s)) for w, s in runs]
    if not runs:
        raise ValueError("runs must name at least one (skip_weights, seed)")
    if len(set(map(repr, runs))) != len(runs):
        raise ValueError(f"runs must be distinct, got {runs}")
    x = check_images(x, "x", image_shape=tuple(model.image_shape))
    check_fit_data(x, n_clusters, "x")
    xj = jnp.asarray(x)
    traced = model.clone(skip_weights=NO_SKIPS, traced_skips=True)
    weights = jnp.asarray([w if w is not None else NO_SKIPS for w, _ in runs], jnp.float32)
    keys = jnp.stack([jnp.stack(jax.random.split(jax.random.key(s), 4)[:3]) for _, s in runs])  # as run(seed=s)
    init = lambda k, w: {**traced.init(k, xj[:1])["params"], "dec_skips": w}
    params0 = jax.jit(jax.vmap(init))(keys[:, 0], weights)

    ckpt = {}
    if checkpoint_dir is not None:
        spec = {"format": CACHE_FORMAT, "sweep": [[None if w is None else list(w), s] for w, s in runs],
                "model": _model_spec(traced),
                "data": data_fingerprint(x), "pretrain_epochs": pretrain_epochs, "batch_size": batch_size,
                "learning_rate": learning_rate, "backend": jax.default_backend(), "jax": jax.__version__}
        loop_spec = {**spec, "max_iters": max_iters, "steps_per_iter": steps_per_iter, "tol": tol,
                     "kmeans_n_init": kmeans_n_init, "n_clusters": int(n_clusters)}
        ckpt = {"pretrain": Checkpointer(Path(checkpoint_dir) / "pretrain.msgpack", spec, every=checkpoint_every),
                "cluster": Checkpointer(Path(checkpoint_dir) / "cluster.msgpack", loop_spec, every=checkpoint_every)}

    t0 = time.perf_counter()
    params, pre_loss = pretrain(traced, params0, xj, keys[:, 1], epochs=pretrain_epochs, batch_size=batch_size,
                                optimizer=adam(learning_rate), verbose=verbose, vmapped=True,
                                checkpoint=ckpt.get("pretrain"))
    t1 = time.perf_counter()
    embed = embed_fn(traced)
    r = cluster(embed, encoder_params(params), xj, n_clusters, keys[:, 2], max_iters=max_iters,
                steps_per_iter=steps_per_iter, batch_size=batch_size, learning_rate=learning_rate, tol=tol,
                kmeans_n_init=kmeans_n_init, verbose=verbose, record_labels="first", vmapped=True,
                checkpoint=ckpt.get("cluster"))
    z = embed_all_compiled(embed, vmapped=True)(r.params, xj)
    t2 = time.perf_counter()
    history = [{"pretrain_loss": np.asarray(pre_loss[i]), **{k: v for k, v in h.items() if k != "labels"}}
               for i, h in enumerate(r.history)]
    return SweepResult(runs, np.asarray(r.labels), np.stack([h["labels"][0] for h in r.history]), np.asarray(z),
                       {**params, **r.params}, np.asarray(r.n_iter), np.asarray(r.converged), history,
                       {"pretrain": t1 - t0, "cluster": t2 - t1})
