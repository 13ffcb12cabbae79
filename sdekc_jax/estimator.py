"""scikit-learn style estimator: the run of :func:`sdekc_jax.run.fit`, with scikit-learn's conventions."""
from __future__ import annotations

import inspect
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .config import RunConfig, check_setting
from .kmeans import assign
from .models import check_image_shape
from .run import fit, make_embed
from .validation import check_fit_data, check_images, resolve_skips  # noqa: F401  (check_images: public here too)


class SDEKC:
    """Deep embedded K-means clustering with skip connections.

    Parameters follow the paper's protocol by default (see ``config.PAPER_PROTOCOL``).
    ``skip_weights`` is ``(w_enc, w_dec)``, a preset name or None (no skips: DEKM).

    After ``fit``: ``labels_``, ``cluster_centers_`` (embedding space), ``n_iter_``,
    ``converged_``, ``params_`` (``{"encoder", "decoder"}``), ``config_`` (the
    :class:`~sdekc_jax.config.RunConfig` that ran), ``history_`` (pretraining loss per epoch and,
    per clustering iteration, the number of changed labels, the K-means loss and the greedy loss),
    ``timings_`` (seconds for pretraining and clustering), ``n_clusters_used_`` (distinct final
    labels; fewer than ``n_clusters`` warns: a collapsed clustering).

    ``checkpoint_dir``: save the pretraining (every ``checkpoint_every`` epochs) and the clustering
    phase (every ``checkpoint_every`` chunks of iterations) to the Orbax checkpoints ``pretrain/``
    and ``cluster/`` there; a ``fit`` that finds them continues where the last one stopped and
    ends with the labels of an uninterrupted fit. The checkpoints name the settings and the data
    they belong to: those of another fit are refused (``CheckpointMismatch``), not reused. They are
    kept after ``fit`` (a repeated ``fit`` then returns at once); delete the folder to start over.

    ``image_shape``: ``(H, W, C)`` of flat input rows (``X`` of shape (N, H*W*C)); images
    (N, H, W) or (N, H, W, C) need none. Fits of the same settings and image shape reuse their
    compiled programs (within a process), so only the first one compiles.

    ``fit`` is :func:`sdekc_jax.run.fit` on :meth:`config`: the same run as
    ``jax.jit(make_run(est.config(image_shape)))(jax.random.key(seed), x, skip_weights)``.
    """

    def __init__(self, n_clusters: int, *, skip_weights: str | Sequence[float] | None = (0.001, 0.999),
                 embedding_dim: int | None = None, pretrain_epochs: int = 200, batch_size: int = 256,
                 learning_rate: float = 1e-3, max_iters: int = 1000, steps_per_iter: int = 40, tol: float = 0.001,
                 kmeans_n_init: int = 10, seed: int = 0, verbose: bool = True, checkpoint_dir: str | None = None,
                 checkpoint_every: int = 1, image_shape: Sequence[int] | None = None):
        self.n_clusters = n_clusters
        self.skip_weights = skip_weights
        self.embedding_dim = embedding_dim
        self.pretrain_epochs = pretrain_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_iters = max_iters
        self.steps_per_iter = steps_per_iter
        self.tol = tol
        self.kmeans_n_init = kmeans_n_init
        self.seed = seed
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.image_shape = image_shape

    def config(self, image_shape) -> RunConfig:
        """The :class:`~sdekc_jax.config.RunConfig` of a fit on images of ``image_shape``."""
        return RunConfig(n_clusters=self.n_clusters, image_shape=tuple(image_shape), embedding_dim=self.embedding_dim,
                         pretrain_epochs=self.pretrain_epochs, batch_size=self.batch_size,
                         learning_rate=self.learning_rate, max_iters=self.max_iters,
                         steps_per_iter=self.steps_per_iter, tol=self.tol, kmeans_n_init=self.kmeans_n_init)

    def _images(self, X) -> np.ndarray:
        return check_images(X, image_shape=self.image_shape)

    def fit(self, X, y=None) -> "SDEKC":
        seed = check_setting("seed", self.seed)
        check_setting("checkpoint_every", self.checkpoint_every)
        x = self._images(X)
        check_fit_data(x, self.n_clusters)
        check_image_shape(x.shape[1:])
        cfg = self.config(x.shape[1:])
        skips = resolve_skips(self.skip_weights)
        f = fit(cfg, x, jax.random.key(seed), None if skips is None else jnp.asarray(skips, jnp.float32),
                checkpoint_dir=self.checkpoint_dir, checkpoint_every=self.checkpoint_every, verbose=self.verbose)
        r = f.result
        self.config_ = cfg
        self.params_ = r.params
        self.labels_ = np.asarray(r.labels)
        self.cluster_centers_ = np.asarray(r.centers)
        self.n_iter_ = int(r.n_iter)
        self.converged_ = bool(r.converged)
        self.n_clusters_used_ = int(np.unique(self.labels_).size)
        if self.n_clusters_used_ < self.n_clusters:
            warnings.warn(f"degenerate result: the labels use {self.n_clusters_used_} of {self.n_clusters} clusters",
                          RuntimeWarning, stacklevel=2)
        self.history_ = {"pretrain_loss": r.pretrain_loss, **{k: v[:self.n_iter_] for k, v in r.history.items()}}
        self.timings_ = f.timings
        return self

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments (scikit-learn's convention)."""
        return {k: getattr(self, k) for k in inspect.signature(type(self).__init__).parameters if k != "self"}

    def _check_fitted(self):
        if not hasattr(self, "params_"):
            raise RuntimeError("this SDEKC instance is not fitted yet; call fit(X) first")

    def transform(self, X) -> np.ndarray:
        """The embedding z of each image (n, embedding_dim)."""
        self._check_fitted()
        x = self._images(X)
        if x.shape[1:] != self.config_.image_shape:
            raise ValueError(f"X has images of shape {x.shape[1:]}, the model was fitted on {self.config_.image_shape}")
        return np.asarray(make_embed(self.config_)(self.params_["encoder"], jnp.asarray(x)))

    def predict(self, X) -> np.ndarray:
        """Nearest cluster centre in the embedding space."""
        return np.asarray(assign(jnp.asarray(self.transform(X)), jnp.asarray(self.cluster_centers_))[0])

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X).labels_
