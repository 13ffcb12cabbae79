"""``idcec``: the SDEKC paper's IDCEC: IDEC's clustering on the CAE, L = L_r + 0.1 L_c.

This is what the public XifengGuo/DCEC code does (DCEC.py: ``loss_weights=[gamma, 1]``, gamma
0.1, Adam, update_interval 140, maxiter 2e4, tol 0.001). Runs with ``arch="binary"`` (Table 2).
"""
from .base import Method
from .cae_kmeans import CAE_PRETRAIN
from .dcec import DCEC_CLUSTERING

METHOD = Method(
    name="idcec",
    description="IDCEC: IDEC's clustering on the CAE (L_r + 0.1 KL)",
    autoencoder="cae",
    clustering="dec",
    reconstruction=True,
    skips="none",
    defaults={**CAE_PRETRAIN, **DCEC_CLUSTERING, "gamma": 0.1},
    archs=("default", "binary"),
)
