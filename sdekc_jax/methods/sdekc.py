"""``sdekc``: the core: Algorithm 1 on the CAE with the two weighted skips (the paper's protocol,
``config.PAPER_PROTOCOL``: stop at 0.1% changed, at most 1000 iterations)."""
from ..config import DEFAULT_SKIPS, PAPER_PROTOCOL
from .base import Method
from .cae_kmeans import CAE_PRETRAIN
from .dekm import DEKM_CLUSTERING

METHOD = Method(
    name="sdekc",
    description="SDEKC: Algorithm 1 on the CAE with the weighted skips",
    autoencoder="cae",
    clustering="dekm",
    skips=DEFAULT_SKIPS,
    defaults={**CAE_PRETRAIN, **DEKM_CLUSTERING, "pretrain_epochs": PAPER_PROTOCOL["pretrain_epochs"],
              "tol": PAPER_PROTOCOL["tol"], "max_iters": PAPER_PROTOCOL["max_iters"],
              "steps_per_iter": PAPER_PROTOCOL["steps_per_iter"]},
    archs=("default", "binary"),
)
