"""The jitted K-means vs scikit-learn's KMeans at equal work (same n_init), side by side.

Data: blobs and a real embedding stand-in (USPS pixels projected to d dims by PCA, tiled to n
points with small noise), n x d with k clusters. Prints seconds (compile excluded for JAX, reported
separately), inertia of both and the ratios.

    python experiments/benchmarks/kmeans_vs_sklearn.py [--n 70000] [--d 10] [--k 10] [--n-init 10]
"""
from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA

from sdekc_jax.data import load_dataset
from sdekc_jax.kmeans import kmeans


def datasets(n, d, k, seed=0):
    blobs, _ = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=2.0, random_state=seed)
    x, _ = load_dataset("usps")
    z = PCA(d, random_state=seed).fit_transform(x.reshape(len(x), -1))
    rng = np.random.default_rng(seed)
    emb = z[rng.integers(0, len(z), n)] + 0.01 * rng.normal(size=(n, d))
    return {"blobs": blobs.astype(np.float32), "usps-pca-embedding": emb.astype(np.float32)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=70000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n-init", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"n={args.n} d={args.d} k={args.k} n_init={args.n_init}; devices {jax.devices()}")
    print("| data | sklearn s | jax s | speed-up | jax compile s | inertia jax / sklearn |")
    print("|---|---|---|---|---|---|")
    for name, x in datasets(args.n, args.d, args.k).items():
        xj = jax.device_put(x)
        t0 = time.perf_counter()
        kmeans(jax.random.key(0), xj, args.k, n_init=args.n_init).inertia.block_until_ready()
        first = time.perf_counter() - t0
        tj, ts, inertia_j, inertia_s = [], [], [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            res = kmeans(jax.random.key(r + 1), xj, args.k, n_init=args.n_init)
            res.inertia.block_until_ready()
            tj.append(time.perf_counter() - t0)
            inertia_j.append(float(res.inertia))
            t0 = time.perf_counter()
            sk = KMeans(args.k, n_init=args.n_init, random_state=r).fit(x)
            ts.append(time.perf_counter() - t0)
            inertia_s.append(sk.inertia_)
        tj_m, ts_m = float(np.median(tj)), float(np.median(ts))
        print(f"| {name} | {ts_m:.2f} | {tj_m:.2f} | {ts_m / tj_m:.2f}x | {max(first - tj_m, 0):.1f} | "
              f"{np.mean(inertia_j) / np.mean(inertia_s):.4f} |", flush=True)


if __name__ == "__main__":
    main()
