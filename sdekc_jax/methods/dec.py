"""``dec``: DEC (Xie et al. 2016) on the dense autoencoder's encoder; the decoder is discarded.

Source: XifengGuo/DEC-keras, DEC.py: KMeans(n_init=20) initialises the centres, Student-t with
alpha 1, KL(P||Q) with SGD(lr 0.01, momentum 0.9), batch 256, P refreshed every
``update_interval`` = 140 steps (30 for USPS), stop when < tol = 0.001 of the labels change at a
refresh or after maxiter = 2e4 steps (``max_iters`` counts refreshes: ceil(2e4 / 140) = 143,
ceil(2e4 / 30) = 667).
"""
from .ae_kmeans import DENSE_PRETRAIN, DENSE_PRETRAIN_BY_DATASET
from .base import Method

DEC_CLUSTERING = {
    "kmeans_n_init": 20,
    "alpha": 1.0,
    "gamma": 1.0,  # weight of KL(P||Q); DEC has no other term
    "cluster_optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
    "steps_per_iter": 140,  # update_interval
    "max_iters": 143,       # ceil(maxiter 2e4 / 140) refreshes
    "tol": 0.001,
}
USPS_INTERVAL = {"steps_per_iter": 30, "max_iters": 667}  # update_interval 30; ceil(2e4 / 30)

METHOD = Method(
    name="dec",
    description="DEC: Student-t soft assignment + KL(P||Q) on the dense encoder",
    autoencoder="dense",
    clustering="dec",
    defaults={**DENSE_PRETRAIN, **DEC_CLUSTERING},
    dataset_defaults={**DENSE_PRETRAIN_BY_DATASET, "usps": {**DENSE_PRETRAIN_BY_DATASET["usps"], **USPS_INTERVAL}},
)
