"""SDEKC (deep embedded K-means clustering with skip connections) in JAX/Flax.

Pure pieces: :class:`CAE` (Flax Linen, ``init``/``apply``), :func:`pretrain`, :func:`kmeans`,
the transform in :mod:`sdekc_jax.transform`, :func:`cluster` (Algorithm 1). On top of them:
the :class:`SDEKC` estimator, the comparison methods (:mod:`sdekc_jax.methods`) and the
``sdekc`` command line.
"""
from .algorithm import ClusterResult, cluster, embed_all
from .data import DATASETS, load_dataset
from .estimator import SDEKC
from .kmeans import KMeansResult, kmeans
from .metrics import ari, cluster_acc, evaluate, nmi
from .models import CAE, embed_fn, encoder_params
from .pretrain import pretrain
from . import methods  # noqa: E402  (the comparison methods: methods.run("dec", x, k), methods.METHODS)

__version__ = "0.1.0"
__all__ = ["CAE", "ClusterResult", "DATASETS", "KMeansResult", "SDEKC", "ari", "cluster", "cluster_acc",
           "embed_all", "embed_fn", "encoder_params", "evaluate", "kmeans", "load_dataset", "methods", "nmi", "pretrain"]
