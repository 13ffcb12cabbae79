"""``arae-kmeans``: asymmetric residual autoencoder (residual encoder, CAE decoder), K-means.

The block design is documented on :class:`sdekc_jax.models.ARAE`. Pretraining as the CAE's.
"""
from .base import Method
from .cae_kmeans import CAE_PRETRAIN

METHOD = Method(
    name="arae-kmeans",
    description="asymmetric residual autoencoder (4 residual blocks, CAE decoder), K-means on the embedding",
    autoencoder="arae",
    clustering="kmeans",
    skips=None,
    defaults={**CAE_PRETRAIN, "kmeans_n_init": 20},
)
