"""Which skip weight goes where? Both readings of the paper, and no skips, on real USPS.

For each reading: pretrain the CAE (paper protocol: 200 epochs, batch 256, Adam 1e-3), record
K-means on the embedding at a few epochs, then run the clustering phase (Algorithm 1) to
convergence (tol 0.1%, at most 1000 iterations). Writes results/skip_readings.json after every
configuration (atomically), so a partial run keeps what finished.

    python experiments/skip_readings.py [--epochs 200] [--seed 0] [--readings swapped paper-text none]

Everything runs through the methods' entry point (``sdekc_jax.methods.run``, i.e.
``sdekc_jax.run.fit``): the final result is ``run("sdekc", skips=reading)``; the point of the
curve at epoch ``e`` is ``run("cae-kmeans", skips=reading, pretrain_epochs=e)`` (K-means with
``--kmeans-n-init`` restarts on the embedding after ``e`` epochs). Epoch ``e`` of a run shuffles
with ``fold_in(key, e)``, so the first ``e`` epochs of the long run and the ``e``-epoch run are the
same computation: the curve shows the long run's network at epoch ``e``. That costs the curve's
epochs again (1 + 10 + 50 + 100 by default); the last point shares its pretraining with the
``sdekc`` run through the pretraining cache (``--cache-dir``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import table3  # noqa: E402
from sdekc_jax.cache import PretrainCache, default_cache_dir  # noqa: E402
from sdekc_jax.config import SKIP_PRESETS  # noqa: E402
from sdekc_jax.data import load_dataset  # noqa: E402
from sdekc_jax.io import atomic_write_json  # noqa: E402
from sdekc_jax.methods import run  # noqa: E402
from sdekc_jax.metrics import evaluate  # noqa: E402


def curve_epochs(epochs: int, asked: list[int]) -> list[int]:
    """The epochs of the curve: those asked for up to ``epochs``, and ``epochs`` itself."""
    return sorted({e for e in asked if 1 <= e < epochs} | {epochs})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--max-iters", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readings", nargs="+", default=["swapped", "paper-text", "none"], choices=sorted(SKIP_PRESETS))
    ap.add_argument("--curve", nargs="*", type=int, default=[1, 10, 50, 100],
                    help="epochs (besides --epochs) at which to record K-means on the embedding")
    ap.add_argument("--kmeans-n-init", type=int, default=10, help="K-means restarts of the curve's points")
    ap.add_argument("--cache-dir", default=None, help="pretraining cache (default: SDEKC_JAX_PRETRAIN_CACHE or "
                                                      "~/.cache/sdekc_jax/pretrained)")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", default=None, help="the JSON file (default: a new results/skip-readings-<date>-<time>.json; "
                                                "an existing file is continued)")
    args = ap.parse_args(argv)
    args.out = args.out or table3.default_out("skip-readings") + ".json"
    x, y = load_dataset("usps")
    k = 10
    cache = PretrainCache(args.cache_dir or default_cache_dir())
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    for reading in args.readings:
        curve = {}
        for e in curve_epochs(args.epochs, args.curve):
            r = run("cae-kmeans", x, k, seed=args.seed, skips=reading, pretrain_epochs=e,
                    kmeans_n_init=args.kmeans_n_init, cache=cache, verbose=args.progress)
            curve[e] = dict(evaluate(y, r.labels), mse=float(r.history["pretrain_loss"][-1]))
            print(f"[{reading}] epoch {e}: {curve[e]}", flush=True)
        t0 = time.time()
        res = run("sdekc", x, k, seed=args.seed, skips=reading, pretrain_epochs=args.epochs, max_iters=args.max_iters,
                  cache=cache, verbose=args.progress)
        wall = time.time() - t0
        final = evaluate(y, res.labels)
        print(f"[{reading}] SDEKC: {final} n_iter={res.n_iter} converged={res.converged}", flush=True)
        results[reading] = {
            "skip_weights": SKIP_PRESETS[reading], "seed": args.seed, "epochs": args.epochs, "pretrain_kmeans": curve,
            "final": final, "n_iter": res.n_iter, "converged": res.converged,
            "pretrain_seconds": res.timings["pretrain"], "cluster_seconds": res.timings["cluster"],
            "pretrain_cache_hit": res.pretrain_cache_hit, "wall_seconds": wall, "config": res.config,
        }
        atomic_write_json(out, results)
    return results


if __name__ == "__main__":
    sys.exit(table3.main_with_clear_errors(main))
