"""``kmeans``: K-means on the raw pixels (flattened), the paper's shallow baseline."""
from .base import Method

METHOD = Method(
    name="kmeans",
    description="jitted K-means on raw pixels (flattened)",
    autoencoder=None,
    clustering="kmeans",
    defaults={
        "kmeans_n_init": 10,  # scikit-learn KMeans' default restarts (k-means++ init, Lloyd)
    },
)
