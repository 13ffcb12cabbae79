"""``idec``: IDEC (Guo et al. 2017): DEC + the reconstruction loss, L = L_r + 0.1 L_c.

Source: XifengGuo/IDEC, IDEC.py: gamma 0.1 (``loss_weights=[gamma, 1]`` on ['kld', 'mse']),
optimizer SGD(lr 0.1, momentum 0.99) (Adam for MNIST), update_interval 140 (30 recommended for
USPS), maxiter 2e4, tol 0.001, KMeans(n_init=20); the autoencoder is DEC-keras' pretraining.
"""
from .ae_kmeans import DENSE_PRETRAIN, DENSE_PRETRAIN_BY_DATASET
from .base import Method
from .dec import DEC_CLUSTERING, USPS_INTERVAL

METHOD = Method(
    name="idec",
    description="IDEC: DEC with the decoder kept, L = L_r + 0.1 KL(P||Q)",
    autoencoder="dense",
    clustering="dec",
    reconstruction=True,
    defaults={**DENSE_PRETRAIN, **DEC_CLUSTERING, "gamma": 0.1,
              "cluster_optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.99}},
    dataset_defaults={
        **DENSE_PRETRAIN_BY_DATASET,
        "usps": {**DENSE_PRETRAIN_BY_DATASET["usps"], **USPS_INTERVAL},
        "mnist": {**DENSE_PRETRAIN_BY_DATASET["mnist"], "cluster_optimizer": {"name": "adam", "learning_rate": 1e-3}},
    },
)
