"""Target 4: cost of the clustering phase against n (10k, 100k, 1M synthetic embeddings).

The clustering phase (the run's own ``advance`` from ``sdekc_jax.run.make_steps`` with
``clustering="dekm"``: embed all, K-means with 10 restarts, S_w, eigh, greedy targets,
``steps_per_iter`` Adam steps, as one ``lax.while_loop``) runs on synthetic data: n points of
dimension d drawn from k Gaussian blobs (fed as 1 x d "images"), embedded by a trainable affine
map (the dense autoencoder without hidden layers, ``arch="dense", hidden=()``, started near the
identity), so every part of Algorithm 1 runs while the encoder's own cost does not hide the
K-means / S_w / target costs that depend on n. The stop test never fires (``tol=0``), so every
measured call runs ``--iters`` iterations.

Reported per n: seconds per iteration (compile excluded; reported separately), the compiled
function's memory from XLA's ``memory_analysis`` (arguments + outputs + temporaries) and its
temporaries per point, and the process's peak resident memory. An (n, k, d) tensor would need
``4*k*d`` bytes per point; the temporaries per point show there is none.

    python experiments/benchmarks/clustering_scaling.py [--ns 10000 100000 1000000] [--iters 3]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_json  # noqa: E402
from sdekc_jax.config import RunConfig  # noqa: E402
from sdekc_jax.run import make_steps  # noqa: E402


def blobs(key, n, d, k):
    kc, ka, kn = jax.random.split(key, 3)
    centers = 5.0 * jax.random.normal(kc, (k, d))
    return centers[jax.random.randint(ka, (n,), 0, k)] + jax.random.normal(kn, (n, d))


def measure(n, d, k, iters, steps, batch_size=256, seed=0):
    x = blobs(jax.random.key(seed), n, d, k).reshape(n, 1, d, 1)
    # max_iters = iters + 1: the final iteration of a run takes no steps; the measured calls stop at `iters`
    cfg = RunConfig(n_clusters=k, image_shape=(1, d, 1), arch="dense", hidden=(), embedding_dim=d, pretrain_epochs=0,
                    clustering="dekm", max_iters=iters + 1, steps_per_iter=steps, batch_size=batch_size, tol=0.0,
                    kmeans_n_init=10)
    run_steps = make_steps(cfg)
    params = run_steps.init(jax.random.key(seed + 1))
    params["encoder"]["embed"]["kernel"] = jnp.eye(d) + 0.01 * jax.random.normal(jax.random.key(seed + 1), (d, d))
    init = jax.jit(run_steps.cluster_init)
    limit = jnp.int32(iters)
    state = init(params, x, jax.random.key(seed + 3))
    t0 = time.perf_counter()
    compiled = jax.jit(run_steps.advance).lower(state, x, None, limit).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    times = []
    for r in range(2):
        state = init(params, x, jax.random.key(seed + 3 + r))
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        state = compiled(state, x, None, limit)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    assert int(state["iteration"]) == iters
    temp = int(getattr(mem, "temp_size_in_bytes", 0))
    total = temp + int(getattr(mem, "argument_size_in_bytes", 0)) + int(getattr(mem, "output_size_in_bytes", 0))
    return {"n": n, "d": d, "k": k, "iters": iters, "s_per_iter": min(times) / iters, "compile_s": compile_s,
            "xla_total_mb": total / 2**20, "xla_temp_bytes_per_point": temp / n,
            "nkd_tensor_bytes_per_point": 4 * k * d,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--steps-per-iter", type=int, default=40)
    ap.add_argument("--json", help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; d={args.d} k={args.k}, {args.iters} iterations")
    print("| n | s / iteration | s / iteration per 10k points | XLA memory MB | XLA temp bytes / point "
          "| (n,k,d) bytes / point | peak RSS MB | compile s |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for n in sorted(args.ns):
        r = measure(n, args.d, args.k, args.iters, args.steps_per_iter)
        rows.append(r)
        print(f"| {n:,} | {r['s_per_iter']:.3f} | {r['s_per_iter'] / n * 1e4:.4f} | {r['xla_total_mb']:.1f} | "
              f"{r['xla_temp_bytes_per_point']:.0f} | {r['nkd_tensor_bytes_per_point']} | {r['peak_rss_mb']:.0f} | "
              f"{r['compile_s']:.1f} |", flush=True)
    write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
