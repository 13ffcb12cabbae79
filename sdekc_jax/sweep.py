"""A functional ablation: several skip-weight settings and seeds as one vmapped program.

The skip weights are data (an argument of ``decode`` and of the run), so runs that differ only in
their skip weights and seeds are one function of stacked keys and weights: this is
:func:`sdekc_jax.run.fit` with an (R,) key array and an (R, 2) weight array, and
``jax.vmap(make_run(cfg), in_axes=(0, None, 0))`` in its pure form.

    from sdekc_jax.sweep import skip_sweep
    runs = [(w, s) for w in (None, (0.001, 0.999), (0.999, 0.001)) for s in range(3)]
    res = skip_sweep(x, 10, runs, pretrain_epochs=200)
    res.labels[i], res.history[i]      # run i

Run ``(w, s)`` uses the key ``jax.random.key(s)`` of ``methods.run("sdekc", x, k, seed=s,
skips=w)`` and takes the same steps; None (no skips) is computed as ``(0.0, 1.0)``, which gives the
plain CAE's values. A vmapped program rounds differently from the runs one by one: the sweep
agrees with them statistically, not bit for bit.
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .config import RunConfig, check_setting
from .run import fit
from .validation import check_fit_data, check_images, resolve_skips

NO_SKIPS = (0.0, 1.0)  # w_enc * enc + w_dec * dec == dec, exactly


class SweepResult(NamedTuple):
    runs: list[tuple[tuple[float, float] | None, int]]  # (skip weights, seed) of each run
    labels: np.ndarray            # (R, n) final labels
    pretrain_labels: np.ndarray   # (R, n) K-means labels of the pretrained embedding (iteration 1)
    embedding: np.ndarray         # (R, n, d) final embedding
    params: Any                   # stacked parameters {"encoder", "decoder"} (leading axis R)
    n_iter: np.ndarray            # (R,)
    converged: np.ndarray         # (R,)
    history: list[dict]           # per run: pretrain_loss, n_changed, inertia, loss
    seconds: dict                 # wall time of the phases, all runs together


def skip_sweep(x, n_clusters: int, runs: Sequence[tuple[Sequence[float] | str | None, int]], *,
               embedding_dim: int | None = None, verbose: bool = True,
               checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 1, **settings) -> SweepResult:
    """Pretrain and cluster every ``(skip_weights, seed)`` of ``runs`` as one vmapped program.

    ``skip_weights`` of a run is ``(w_enc, w_dec)``, a preset name, or None (no skips).
    ``settings`` are :class:`~sdekc_jax.config.RunConfig` fields (``pretrain_epochs``,
    ``max_iters``, ...; the paper's protocol by default). ``checkpoint_dir``: as
    :func:`sdekc_jax.run.fit` (a sweep started again with the same arguments continues from it;
    one written by other runs, settings or data is refused).
    """
    runs = [(resolve_skips(w), check_setting("seed", s)) for w, s in runs]
    if not runs:
        raise ValueError("runs must name at least one (skip_weights, seed)")
    if len(set(map(repr, runs))) != len(runs):
        raise ValueError(f"runs must be distinct, got {runs}")
    x = check_images(x, "x")
    check_fit_data(x, n_clusters, "x")
    cfg = RunConfig(n_clusters=n_clusters, image_shape=x.shape[1:], embedding_dim=embedding_dim, **settings)
    weights = jnp.asarray([w if w is not None else NO_SKIPS for w, _ in runs], jnp.float32)
    keys = jnp.stack([jax.random.key(s) for _, s in runs])
    f = fit(cfg, x, keys, weights, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, verbose=verbose)
    r = f.result
    history = [{"pretrain_loss": np.asarray(r.pretrain_loss[i]),
                **{k: np.asarray(v[i][:int(r.n_iter[i])]) for k, v in r.history.items()}} for i in range(len(runs))]
    return SweepResult(runs, np.asarray(r.labels), np.asarray(r.first_labels), np.asarray(r.embedding), r.params,
                       np.asarray(r.n_iter), np.asarray(r.converged), history, dict(f.timings))
