"""``dcec``: the SDEKC paper's DCEC: DEC's clustering on the CAE's encoder, no reconstruction term.

Source of the settings: XifengGuo/DCEC, DCEC.py (Adam, update_interval 140 for every data set,
maxiter 2e4, tol 0.001, KMeans(n_init=20)); that code keeps the reconstruction term (it is our
``idcec``); without it the clustering loss is KL(P||Q) alone (gamma 1).
"""
from .base import Method
from .cae_kmeans import CAE_PRETRAIN
from .dec import DEC_CLUSTERING

DCEC_CLUSTERING = {**DEC_CLUSTERING, "cluster_optimizer": {"name": "adam", "learning_rate": 1e-3}}

METHOD = Method(
    name="dcec",
    description="DCEC: DEC's clustering on the CAE encoder (no reconstruction)",
    autoencoder="cae",
    clustering="dec",
    skips="none",
    defaults={**CAE_PRETRAIN, **DCEC_CLUSTERING},
    archs=("default", "binary"),
)
