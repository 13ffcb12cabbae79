"""GPU check: the full MNIST-scale protocol on one accelerator, in one command.

70,000 images of 28x28x1 (Fashion-MNIST from the IDX files in ``--data-dir``; synthetic without it),
200 pretraining epochs at batch 256, then the clustering phase (Algorithm 1, at most
``--max-iters`` iterations): SDEKC with the two skips, run by ``sdekc_jax.run.fit`` (the driver
every entry point uses). Prints and writes (JSON) the device, the times of both phases (compile
included, as a user sees it), the number of iterations and, for real data, ACC/NMI. Several
``--seeds`` run as one vmapped program (``fit`` with the seeds' keys stacked), which is where an
accelerator gains; the per-seed numbers are then lists.

    pip install -e . "jax[cuda12]"      # on the GPU machine
    python experiments/benchmarks/gpu_check.py --data-dir ../shared/data/fashion-mnist --out $OUT/gpu_check.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sdekc_jax.config import SKIP_PRESETS, RunConfig  # noqa: E402
from sdekc_jax.metrics import evaluate  # noqa: E402
from sdekc_jax.run import fit  # noqa: E402


def load(data_dir, n):
    if data_dir:  # a folder that was asked for and is not there is an error, not a silent switch
        from sdekc_jax.data import load_dataset

        x, y = load_dataset("fashion-mnist", data_dir)
        return x[:n], y[:n], "fashion-mnist"
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    protos = rng.random((10, 28, 28, 1)).astype(np.float32)
    x = np.clip(protos[y] + 0.3 * rng.standard_normal((n, 28, 28, 1)).astype(np.float32), 0, 1)
    return x, y, "synthetic"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--n", type=int, default=70_000)
    ap.add_argument("--pretrain-epochs", type=int, default=200)
    ap.add_argument("--max-iters", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="several: one vmapped program")
    ap.add_argument("--out", default="gpu_check.json")
    args = ap.parse_args(argv)
    dev = jax.devices()[0]
    print(f"jax {jax.__version__}; device {dev.platform} {getattr(dev, 'device_kind', '')}", flush=True)
    x, y, name = load(args.data_dir, args.n)
    cfg = RunConfig(n_clusters=10, image_shape=x.shape[1:], pretrain_epochs=args.pretrain_epochs,
                    max_iters=args.max_iters)
    seeds = list(dict.fromkeys(args.seeds))
    key = jax.random.key(seeds[0]) if len(seeds) == 1 else jnp.stack([jax.random.key(s) for s in seeds])
    t0 = time.perf_counter()
    f = fit(cfg, x, key, jnp.asarray(SKIP_PRESETS["swapped"], jnp.float32), verbose=True)
    wall = time.perf_counter() - t0
    runs = [f.one(i) for i in range(len(seeds))]
    one = lambda vs: vs[0] if len(seeds) == 1 else vs
    row = {"device": f"{dev.platform} {getattr(dev, 'device_kind', '')}", "data": name, "n": int(len(x)),
           "pretrain_epochs": args.pretrain_epochs, "seeds": seeds, "vmapped": len(seeds) > 1, "wall_s": wall,
           "timings": f.timings, "n_iter": one([int(r.n_iter) for r in runs]),
           "converged": one([bool(r.converged) for r in runs]), "config": cfg.to_dict()}
    if name != "synthetic":
        ms = [evaluate(y, np.asarray(r.labels)) for r in runs]
        row.update(ms[0] if len(seeds) == 1 else {k: [m[k] for m in ms] for k in ms[0]})
    print(json.dumps(row, indent=1), flush=True)
    with open(args.out, "w") as f_out:
        json.dump(row, f_out, indent=1)


if __name__ == "__main__":
    main()
