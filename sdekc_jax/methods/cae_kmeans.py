"""``cae-kmeans``: the core's CAE without skips, pretrained, then K-means on the embedding.

Source: XifengGuo/DCEC (ConvAE.py, DCEC.pretrain) and spdj2271/DEKM (DEKM.py ``train_base``):
conv 32-64-128 + dense embedding, Adam (lr 1e-3), 200 epochs, batch 256.
"""
from .base import Method

CAE_PRETRAIN = {
    "embedding_dim": None,  # the number of clusters (the core's rule; DCEC/DEKM hard-code 10 = USPS/MNIST's k)
    "pretrain_epochs": 200,
    "batch_size": 256,
    "pretrain_optimizer": {"name": "adam", "learning_rate": 1e-3},
}

METHOD = Method(
    name="cae-kmeans",
    description="the CAE without skips, pretrained, K-means on the embedding",
    autoencoder="cae",
    clustering="kmeans",
    skips="none",
    defaults={**CAE_PRETRAIN, "kmeans_n_init": 20},  # DCEC.py: KMeans(n_init=20) on the embedding
    archs=("default", "binary"),
)
