"""Why one seed of a K-means-on-embedding method lands far from the others (issue 19, item 5).

    python experiments/kmeans_restarts.py --method arae-kmeans --seeds 0 1 --data-root ../shared/data \
        --out results/arae-restarts

For each seed: the method's run (its pretrained autoencoder read from the pretraining cache, or
pretrained and stored), then K-means on that run's embedding restarted ``--restarts`` times, one
k-means++ restart per key. The report separates the two possible causes of a bad seed:

* **the K-means draw**: if the lowest-inertia restart on the bad seed's embedding scores like the
  good seeds, the embedding was fine and the method's ``kmeans_n_init`` restarts missed the better
  optimum; the report gives how often a group of ``kmeans_n_init`` restarts does;
* **the embedding**: if even the lowest-inertia restart scores low, the pretrained embedding itself
  merges or splits classes; the report lists the true classes that share a cluster.

``<out>/kmeans_restarts.json`` holds every restart's inertia and ACC; ``<out>/kmeans_restarts.md``
the summary. Nothing is resumable: a seed whose pretraining is cached takes seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import table3  # noqa: E402
from sdekc_jax.cache import PretrainCache, default_cache_dir  # noqa: E402
from sdekc_jax.cli import _enable_compilation_cache  # noqa: E402
from sdekc_jax.methods import get_method, run  # noqa: E402
from sdekc_jax.metrics import cluster_acc, evaluate  # noqa: E402


def restarts(z: np.ndarray, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n, N), inertia (n,)) of ``n`` single k-means++ restarts on ``z``, one key each."""
    import jax

    from sdekc_jax.kmeans import kmeans
    keys = jax.random.split(jax.random.key(10_000 + seed), n)
    one = jax.jit(lambda key, z: kmeans(key, z, k, n_init=1))
    out = [one(key, z) for key in keys]
    return np.stack([np.asarray(r.labels) for r in out]), np.asarray([float(r.inertia) for r in out])


def shared_clusters(y: np.ndarray, labels: np.ndarray, k: int, share: float = 0.3) -> list[tuple[int, int, int]]:
    """(class a, class b, cluster) where classes a and b both have at least ``share`` of their
    points in one cluster: the classes an embedding's K-means merges."""
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (y, labels), 1)
    frac = counts / counts.sum(1, keepdims=True)
    return [(a, b, c) for c in range(k) for a in range(k) for b in range(a + 1, k)
            if frac[a, c] >= share and frac[b, c] >= share]


def analyse(y: np.ndarray, z: np.ndarray, k: int, n_init: int, n_restarts: int, seed: int) -> dict:
    labels, inertia = restarts(z, k, n_restarts, seed)
    acc = np.asarray([cluster_acc(y, lab) for lab in labels])
    best = int(np.argmin(inertia))
    groups = inertia[: n_restarts // n_init * n_init].reshape(-1, n_init)  # as many n_init-restart K-means
    picked = acc[np.arange(groups.shape[0]) * n_init + np.argmin(groups, axis=1)]
    return {"inertia": inertia.tolist(), "acc": acc.tolist(), "best_inertia": float(inertia[best]),
            "best_inertia_acc": float(acc[best]), "best_shared": shared_clusters(y, labels[best], k),
            "group_acc": picked.tolist(), "n_init": n_init}


def markdown(cells: dict, method: str) -> str:
    lines = [f"# {method}: K-means restarts on each seed's embedding", "",
             "| seed | run ACC | run inertia | restarts | lowest-inertia restart: ACC | its shared classes | "
             "ACC of a K-means of n_init restarts: min / median / max (groups) | run's shared classes |",
             "|---|---|---|---|---|---|---|---|"]
    for seed, c in sorted(cells.items(), key=lambda kv: int(kv[0])):
        a = c["analysis"]
        g = np.asarray(a["group_acc"])
        fmt = lambda s: ", ".join(f"{p}+{q}→{r}" for p, q, r in s) or "none"
        groups = f"{g.min():.4f} / {np.median(g):.4f} / {g.max():.4f} ({len(g)} of {a['n_init']})" if len(g) \
            else f"(fewer restarts than {a['n_init']})"
        lines.append(f"| {seed} | {c['acc']:.4f} | {c['inertia']:.1f} | {len(a['acc'])} | {a['best_inertia_acc']:.4f} "
                     f"(inertia {a['best_inertia']:.1f}) | {fmt(a['best_shared'])} | {groups} | {fmt(c['shared'])} |")
    lines += ["", "Shared classes `a+b→c`: true classes a and b each have at least 30% of their points in "
              "cluster c (the K-means merges them)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="arae-kmeans")
    p.add_argument("--dataset", default="usps")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--restarts", type=int, default=200, help="single k-means++ restarts per seed (default 200)")
    p.add_argument("--pretrain-epochs", type=int, default=None, help="override the method's (for a smoke test)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    method = get_method(args.method)
    if method.clustering != "kmeans":
        p.error(f"--method must be a K-means-on-embedding method, got {args.method!r} ({method.clustering})")
    if args.restarts < 1:
        p.error(f"--restarts must be >= 1, got {args.restarts}")
    _enable_compilation_cache()
    x, y = table3.load(args.dataset, args.data_root)
    y = np.asarray(y)
    k = int(y.max()) + 1
    cache = PretrainCache(args.cache_dir or default_cache_dir())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells = {}
    for seed in args.seeds:
        r = run(args.method, x, k, seed=seed, dataset=args.dataset, cache=cache, verbose=False,
                pretrain_epochs=args.pretrain_epochs)
        z = np.asarray(r.embedding)
        inertia = float(((z - np.asarray(r.centers)[np.asarray(r.labels)]) ** 2).sum())
        n_init = int(r.config["kmeans_n_init"])
        cells[str(seed)] = {**evaluate(y, r.labels), "inertia": inertia, "shared": shared_clusters(y, np.asarray(r.labels), k),
                            "pretrain_cache_hit": r.pretrain_cache_hit,
                            "analysis": analyse(y, z, k, n_init, args.restarts, seed)}
        (out / "kmeans_restarts.json").write_text(json.dumps({"method": args.method, "dataset": args.dataset,
                                                               "cells": cells}, indent=1))
        (out / "kmeans_restarts.md").write_text(markdown(cells, args.method))
        print(f"seed {seed}: ACC {cells[str(seed)]['acc']:.4f}, lowest-inertia restart "
              f"{cells[str(seed)]['analysis']['best_inertia_acc']:.4f}", file=sys.stderr, flush=True)
    print(markdown(cells, args.method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
