"""scikit-learn style estimator: pretraining + Algorithm 1, composed from the pure pieces."""
from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

from .algorithm import cluster, embed_all_compiled
from .cache import data_fingerprint
from .checkpoint import Checkpointer
from .kmeans import assign
from .models import CAE, check_image_shape, embed_fn, encoder_params
from .pretrain import pretrain
from .validation import check_fit_data, check_images, resolve_skips  # noqa: F401  (check_images: public here too)


class SDEKC:
    """Deep embedded K-means clustering with skip connections.

    Parameters follow the paper's protocol by default (see ``config.PAPER_PROTOCOL``).
    ``skip_weights`` is ``(w_enc, w_dec)``, a preset name or None (no skips: DEKM).

    After ``fit``: ``labels_``, ``cluster_centers_`` (embedding space), ``n_iter_``,
    ``converged_``, ``params_`` (all CAE parameters), ``history_`` (pretraining loss per epoch and,
    per clustering iteration, the number of changed labels, the K-means loss and the greedy loss),
    ``timings_`` (seconds for pretraining and clustering).

    ``checkpoint_dir``: save the pretraining (every ``checkpoint_every`` epochs) and the clustering
    phase (every ``checkpoint_every`` chunks of iterations) to ``pretrain.msgpack`` /
    ``cluster.msgpack`` there; a ``fit`` that finds them continues where the last one stopped and
    ends with the labels of an uninterrupted fit. The checkpoints name the settings and the data
    they belong to: those of another fit are refused (``CheckpointMismatch``), not reused. They are
    kept after ``fit`` (a repeated ``fit`` then returns at once); delete the folder to start over.
    """

    def __init__(self, n_clusters: int, *, skip_weights: str | Sequence[float] | None = (0.001, 0.999),
                 embedding_dim: int | None = None, pretrain_epochs: int = 200, batch_size: int = 256,
                 learning_rate: float = 1e-3, max_iters: int = 1000, steps_per_iter: int = 40, tol: float = 0.001,
                 kmeans_n_init: int = 10, seed: int = 0, verbose: bool = True, checkpoint_dir: str | None = None,
                 checkpoint_every: int = 1):
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

    def _check_params(self, x: np.ndarray) -> None:
        check_fit_data(x, self.n_clusters)
        for name in ("pretrain_epochs", "steps_per_iter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("batch_size", "max_iters", "kmeans_n_init"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if not 0 <= self.tol < 1:
            raise ValueError(f"tol is a fraction of points in [0, 1), got {self.tol!r}")

    def _model(self, image_shape) -> CAE:
        return CAE(tuple(image_shape), self.embedding_dim or self.n_clusters, skip_weights=resolve_skips(self.skip_weights))

    def fit(self, X, y=None) -> "SDEKC":
        x = check_images(X)
        self._check_params(x)
        check_image_shape(x.shape[1:])
        model = self._model(x.shape[1:])
        init_key, pre_key, cl_key, _ = jax.random.split(jax.random.key(self.seed), 4)
        params = jax.jit(lambda k: model.init(k, x[:1])["params"])(init_key)  # one program, not dozens of eager ops
        ckpt = self._checkpoints(x)
        t0 = time.perf_counter()
        params, pre_loss = pretrain(model, params, x, pre_key, epochs=self.pretrain_epochs, batch_size=self.batch_size,
                                    learning_rate=self.learning_rate, verbose=self.verbose,
                                    checkpoint=ckpt.get("pretrain"))
        t1 = time.perf_counter()
        res = cluster(embed_fn(model), encoder_params(params), x, self.n_clusters, cl_key,
                      max_iters=self.max_iters, steps_per_iter=self.steps_per_iter, batch_size=self.batch_size,
                      learning_rate=self.learning_rate, tol=self.tol, kmeans_n_init=self.kmeans_n_init,
                      verbose=self.verbose, checkpoint=ckpt.get("cluster"))
        t2 = time.perf_counter()
        self.model_ = model
        self.params_ = {**params, **res.params}
        self.labels_ = res.labels
        self.cluster_centers_ = res.centers
        self.n_iter_ = res.n_iter
        self.converged_ = res.converged
        self.history_ = {"pretrain_loss": pre_loss, **res.history}
        self.timings_ = {"pretrain": t1 - t0, "cluster": t2 - t1}
        return self

    def _checkpoints(self, x: np.ndarray) -> dict:
        if self.checkpoint_dir is None:
            return {}
        settings = {k: v for k, v in self.get_params().items() if k not in ("verbose", "checkpoint_dir",
                                                                            "checkpoint_every")}
        settings["skip_weights"] = resolve_skips(self.skip_weights)
        pre = ("n_clusters", "skip_weights", "embedding_dim", "pretrain_epochs", "batch_size", "learning_rate", "seed")
        data = data_fingerprint(x)
        specs = {"pretrain": {k: settings[k] for k in pre}, "cluster": settings}  # the clustering depends on all
        root = Path(self.checkpoint_dir)
        return {phase: Checkpointer(root / f"{phase}.msgpack", {"estimator": "SDEKC", "phase": phase, "data": data,
                                                                 "settings": spec}, every=self.checkpoint_every)
                for phase, spec in specs.items()}

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments (scikit-learn's convention)."""
        return {k: getattr(self, k) for k in inspect.signature(type(self).__init__).parameters if k != "self"}

    def _check_fitted(self):
        if not hasattr(self, "params_"):
            raise RuntimeError("this SDEKC instance is not fitted yet; call fit(X) first")

    def transform(self, X) -> np.ndarray:
        """The embedding z of each image (n, embedding_dim)."""
        self._check_fitted()
        x = check_images(X)
        if x.shape[1:] != tuple(self.model_.image_shape):
            raise ValueError(f"X has images of shape {x.shape[1:]}, the model was fitted on {tuple(self.model_.image_shape)}")
        return np.asarray(embed_all_compiled(embed_fn(self.model_))(encoder_params(self.params_), jax.numpy.asarray(x)))

    def predict(self, X) -> np.ndarray:
        """Nearest cluster centre in the embedding space."""
        return np.asarray(assign(jax.numpy.asarray(self.transform(X)), jax.numpy.asarray(self.cluster_centers_))[0])

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X).labels_
