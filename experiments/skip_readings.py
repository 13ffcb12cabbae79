"""Which skip weight goes where? Both readings of the paper, and no skips, on real USPS.

For each reading: pretrain the CAE (paper protocol: 200 epochs, batch 256, Adam 1e-3), record
K-means on the embedding at a few epochs, then run the clustering phase (Algorithm 1) to
convergence (tol 0.1%, at most 1000 iterations). Writes results/skip_readings.json after every
configuration (atomically), so a partial run keeps what finished.

    python experiments/skip_readings.py [--epochs 200] [--seed 0] [--readings swapped paper-text none]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from sdekc_jax.algorithm import cluster
from sdekc_jax.config import SKIP_PRESETS
from sdekc_jax.data import load_dataset
from sdekc_jax.io import atomic_write_json
from sdekc_jax.kmeans import kmeans
from sdekc_jax.metrics import evaluate
from sdekc_jax.models import CAE, embed_fn, encoder_params
from sdekc_jax.pretrain import pretrain


def kmeans_on_embedding(model, params, x, y, k, key):
    z = model.apply({"params": params}, x, method=CAE.embed)
    return evaluate(y, np.asarray(kmeans(key, z, k, n_init=10).labels))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--max-iters", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readings", nargs="+", default=["swapped", "paper-text", "none"], choices=sorted(SKIP_PRESETS))
    ap.add_argument("--out", default="results/skip_readings.json")
    args = ap.parse_args()
    x, y = load_dataset("usps")
    k = 10
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    for reading in args.readings:
        weights = SKIP_PRESETS[reading]
        model = CAE(x.shape[1:], k, skip_weights=weights)
        key = jax.random.key(args.seed)
        init_key, pre_key, cl_key, km_key = jax.random.split(key, 4)
        params = model.init(init_key, x[:1])["params"]
        curve = {}
        checkpoints = {1, 10, 50, 100, args.epochs}

        def on_epoch(epoch, state, loss):
            if epoch + 1 in checkpoints:
                curve[epoch + 1] = dict(kmeans_on_embedding(model, state["params"], x, y, k, km_key), mse=loss)
                print(f"[{reading}] epoch {epoch + 1}: {curve[epoch + 1]}", flush=True)

        t0 = time.time()
        params, _ = pretrain(model, params, x, pre_key, epochs=args.epochs, callback=on_epoch)
        t_pre = time.time() - t0
        t0 = time.time()
        res = cluster(embed_fn(model), encoder_params(params), x, k, cl_key, max_iters=args.max_iters)
        t_cl = time.time() - t0
        final = evaluate(y, res.labels)
        print(f"[{reading}] SDEKC: {final} n_iter={res.n_iter} converged={res.converged}", flush=True)
        results[reading] = {
            "skip_weights": weights, "seed": args.seed, "epochs": args.epochs, "pretrain_kmeans": curve,
            "final": final, "n_iter": res.n_iter, "converged": res.converged,
            "pretrain_seconds": t_pre, "cluster_seconds": t_cl,
        }
        atomic_write_json(out, results)


if __name__ == "__main__":
    main()
