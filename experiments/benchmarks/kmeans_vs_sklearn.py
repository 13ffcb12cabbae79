"""The jitted K-means vs scikit-learn's KMeans at equal work (same n_init), side by side.

Data: blobs and a real embedding stand-in (USPS pixels projected to d dims by PCA, tiled to n
points with small noise), n x d with k clusters. Each repeat runs JAX then scikit-learn (same
seed index), so both see the same machine load; prints median seconds (compile excluded for JAX,
reported separately), the speed-up and the ratio of mean inertias.

    python experiments/benchmarks/kmeans_vs_sklearn.py [--n 70000] [--d 10] [--k 10] [--n-init 10]
        [--repeats 3] [--json rows.json]
"""
from __future__ import annotations

import argparse
import json
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


def measure(name, x, k, n_init, repeats):
    """One row: median wall seconds of both sides over ``repeats`` interleaved runs."""
    xj = jax.device_put(x)
    t0 = time.perf_counter()
    kmeans(jax.random.key(0), xj, k, n_init=n_init).inertia.block_until_ready()
    first = time.perf_counter() - t0
    tj, ts, inertia_j, inertia_s, iters_j, iters_s = [], [], [], [], [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        res = kmeans(jax.random.key(r + 1), xj, k, n_init=n_init)
        res.inertia.block_until_ready()
        tj.append(time.perf_counter() - t0)
        inertia_j.append(float(res.inertia))
        iters_j.append(int(res.n_iter))
        t0 = time.perf_counter()
        sk = KMeans(k, n_init=n_init, random_state=r).fit(x)
        ts.append(time.perf_counter() - t0)
        inertia_s.append(float(sk.inertia_))
        iters_s.append(int(sk.n_iter_))
    tj_m, ts_m = float(np.median(tj)), float(np.median(ts))
    return {"data": name, "n": int(x.shape[0]), "d": int(x.shape[1]), "k": k, "n_init": n_init,
            "repeats": repeats, "sklearn_s": ts_m, "jax_s": tj_m, "speedup": ts_m / tj_m,
            "compile_s": max(first - tj_m, 0.0), "inertia_ratio": float(np.mean(inertia_j) / np.mean(inertia_s)),
            "jax_s_all": tj, "sklearn_s_all": ts, "jax_inertia": inertia_j, "sklearn_inertia": inertia_s,
            "jax_n_iter_best": iters_j, "sklearn_n_iter_best": iters_s}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=70000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n-init", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    print(f"n={args.n} d={args.d} k={args.k} n_init={args.n_init} repeats={args.repeats}; "
          f"devices {jax.devices()}")
    print("| data | sklearn s | jax s | speed-up | jax compile s | inertia jax / sklearn |")
    print("|---|---|---|---|---|---|")
    rows = []
    for name, x in datasets(args.n, args.d, args.k).items():
        row = measure(name, x, args.k, args.n_init, args.repeats)
        rows.append(row)
        print(f"| {name} | {row['sklearn_s']:.2f} | {row['jax_s']:.3f} | {row['speedup']:.2f}x | "
              f"{row['compile_s']:.1f} | {row['inertia_ratio']:.4f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
