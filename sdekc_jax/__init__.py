"""SDEKC (deep embedded K-means clustering with skip connections) in JAX.

The functional core: :func:`init_params`, :func:`encode`, :func:`decode` (the autoencoders as
pure functions of parameter pytrees, the skip weights as data), :class:`RunConfig` and
:func:`make_run` (a whole run as one pure function of a key: ``jax.jit`` it, ``jax.vmap`` it
over seeds or skip weights). :func:`fit` drives the same steps from the host (progress,
checkpoints, the pretraining cache). On top: the :class:`SDEKC` estimator, the comparison
methods (:mod:`sdekc_jax.methods`) and the ``sdekc`` command line.
"""
from .algorithm import embed_all
from .config import RunConfig
from .data import DATASETS, load_dataset
from .estimator import SDEKC
from .kmeans import KMeansResult, kmeans
from .metrics import ari, cluster_acc, evaluate, nmi
from .models import decode, encode, init_params, reconstruct
from .pretrain import pretrain
from .run import Fitted, RunResult, fit, make_run, make_steps
from . import methods  # noqa: E402  (the comparison methods: methods.run("dec", x, k), methods.METHODS)

__version__ = "0.1.0"
__all__ = ["DATASETS", "Fitted", "KMeansResult", "RunConfig", "RunResult", "SDEKC", "ari", "cluster_acc", "decode",
           "embed_all", "encode", "evaluate", "fit", "init_params", "kmeans", "load_dataset", "make_run", "make_steps",
           "methods", "nmi", "pretrain", "reconstruct"]
