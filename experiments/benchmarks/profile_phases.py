"""Where the end-to-end time goes: the phases of one SDEKC run, JAX against the natural PyTorch CAE,
side by side in one process on the same data (issue 18's profile).

Per phase, after one untimed warm-up call (JAX compiles there; the compile times are reported
apart):

* ``pretrain_epoch``: one pretraining epoch on all the data (Adam, batch 256): JAX's jitted epoch
  (``make_steps(cfg).pretrain_epoch``), PyTorch's ``pretrain_torch`` for one epoch;
* ``embed_all``: the embedding of all the data, in batches of 1,024;
* ``kmeans``: K-means with 10 restarts on that embedding: ours (``sdekc_jax.kmeans``) and
  scikit-learn's ``KMeans(n_init=10)``, which the PyTorch reference uses;
* ``iteration``: one whole clustering iteration (embed all, K-means, S_w, eigh, targets, 40 Adam
  steps): JAX's compiled ``advance`` over ``--iters`` iterations, PyTorch's ``sdekc_torch`` loop;
* ``steps_40`` = iteration − embed_all − kmeans (derived: the 40 mini-batch steps with S_w, eigh
  and the targets).

The end-to-end estimate of each side is ``200 * pretrain_epoch + n_iter * iteration``.

    python experiments/benchmarks/profile_phases.py [--iters 3] [--repeats 3] [--json F]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_json  # noqa: E402
from sdekc_jax.config import RunConfig  # noqa: E402
from sdekc_jax.data import load_dataset  # noqa: E402
from sdekc_jax.kmeans import kmeans  # noqa: E402
from sdekc_jax.run import make_steps  # noqa: E402

W = (0.001, 0.999)


def best(fn, repeats):
    """(best seconds over ``repeats`` calls, seconds of the first, untimed-warm-up call)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), first


def profile_jax(x, k, iters, repeats):
    cfg = RunConfig(n_clusters=k, image_shape=x.shape[1:], max_iters=iters + 1, tol=0.0)
    steps = make_steps(cfg)
    xj, w = jnp.asarray(x), jnp.asarray(W, jnp.float32)
    params = jax.jit(steps.init)(jax.random.key(0))
    epoch = jax.jit(steps.pretrain_epoch)
    state = steps.pretrain_init(params)
    out = {}
    out["pretrain_epoch"], first = best(lambda: epoch(state, xj, jax.random.key(1), 0, w)[1], repeats)
    out["compile_pretrain_epoch"] = first - out["pretrain_epoch"]
    embed = jax.jit(steps.embed_all)
    out["embed_all"], first = best(lambda: embed(params["encoder"], xj), repeats)
    z = embed(params["encoder"], xj)
    km = jax.jit(lambda key, z: kmeans(key, z, k, n_init=10))
    out["kmeans"], _ = best(lambda: km(jax.random.key(2), z).centers, repeats)
    init, advance = jax.jit(steps.cluster_init), jax.jit(steps.advance)
    st = init(params, xj, jax.random.key(3), w)
    times = []
    for r in range(2):  # the first call compiles
        s = init(params, xj, jax.random.key(3 + r), w)
        jax.block_until_ready(s)
        t0 = time.perf_counter()
        s = advance(s, xj, w, jnp.int32(iters))
        jax.block_until_ready(s)
        times.append(time.perf_counter() - t0)
    del st
    out["iteration"] = times[-1] / iters
    out["steps_40"] = out["iteration"] - out["embed_all"] - out["kmeans"]
    return out


def profile_torch(x, k, iters, repeats):
    import torch
    from sklearn.cluster import KMeans
    from torch_reference import NaturalCAE, embed_torch, pretrain_torch, sdekc_torch, to_nchw

    torch.manual_seed(0)
    xt = to_nchw(x)
    model = NaturalCAE(x.shape[1:], k)
    out = {"threads": torch.get_num_threads()}
    out["pretrain_epoch"], _ = best(lambda: pretrain_torch(model, xt, 1), repeats)
    out["embed_all"], _ = best(lambda: embed_torch(model, xt), repeats)
    z = embed_torch(model, xt)
    out["kmeans"], _ = best(lambda: KMeans(k, n_init=10, random_state=0).fit(z).labels_, repeats)
    t0 = time.perf_counter()
    sdekc_torch(model, xt, k, max_iters=iters + 1, fixed_iters=True)  # the last iteration: embed + K-means only
    out["iteration"] = (time.perf_counter() - t0 - out["embed_all"] - out["kmeans"]) / iters
    out["steps_40"] = out["iteration"] - out["embed_all"] - out["kmeans"]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="usps")
    ap.add_argument("--iters", type=int, default=3, help="clustering iterations timed per side")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per phase (the best is kept)")
    ap.add_argument("--n-iter", type=int, default=30, help="iterations of a full run, for the end-to-end estimate")
    ap.add_argument("--json", help="write the profile to this JSON file")
    args = ap.parse_args(argv)
    x, y = load_dataset(args.dataset)
    k = int(y.max()) + 1
    j = profile_jax(x, k, args.iters, args.repeats)
    t = profile_torch(x, k, args.iters, args.repeats)
    phases = ("pretrain_epoch", "embed_all", "kmeans", "steps_40", "iteration")
    print(f"{args.dataset}: {x.shape[0]} images {x.shape[1:]}, {k} clusters; seconds (best of {args.repeats})")
    print("| phase | JAX | PyTorch natural | JAX / PyTorch |")
    print("|---|---|---|---|")
    for p in phases:
        print(f"| {p} | {j[p]:.3f} | {t[p]:.3f} | {j[p] / t[p]:.2f} |")
    est = {s: 200 * r["pretrain_epoch"] + args.n_iter * r["iteration"] for s, r in (("jax", j), ("torch", t))}
    print(f"estimate, 200 epochs + {args.n_iter} iterations: JAX {est['jax']:.0f} s, PyTorch {est['torch']:.0f} s "
          f"({est['jax'] / est['torch']:.2f}); JAX compile of one epoch {j['compile_pretrain_epoch']:.1f} s")
    write_json(args.json, {"dataset": args.dataset, "jax": j, "torch_natural": t, "estimate": est,
                           "n_iter": args.n_iter})


if __name__ == "__main__":
    main()
