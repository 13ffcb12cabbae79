"""``dekm``: DEKM (Guo et al. 2021): the core's clustering phase on the CAE without skips.

Source: spdj2271/DEKM, DEKM.py: pretraining Adam 200 epochs batch 256; clustering Adam
(lr 1e-3), update_interval 40 steps, stop when at most 0.5% of the points change cluster
(``n_change_assignment <= 0.005 n``; we test ``< tol n``) or after 140 * 100 steps = 350
iterations. K-means restarts: ``kmeans_schedule`` (RunConfig): "warm" (10 restarts, one
warm-started from the last centres) or "dekm" (DEKM.py's: 100 restarts, then twice the last
K-means' iteration count, no warm start).
"""
from .base import Method
from .cae_kmeans import CAE_PRETRAIN

DEKM_CLUSTERING = {"kmeans_n_init": 10, "learning_rate": 1e-3, "steps_per_iter": 40}

METHOD = Method(
    name="dekm",
    description="DEKM: Algorithm 1 on the CAE without skips (stop at 0.5% changed)",
    autoencoder="cae",
    clustering="dekm",
    skips="none",
    defaults={**CAE_PRETRAIN, **DEKM_CLUSTERING, "tol": 0.005, "max_iters": 350},
    archs=("default", "binary"),
)
