"""GPU check: the full MNIST-scale protocol on one accelerator, in one command.

70,000 images of 28x28x1 (Fashion-MNIST from the IDX files in ``--data-dir``; synthetic without it),
200 pretraining epochs at batch 256, then the clustering phase (Algorithm 1, at most
``--max-iters`` iterations). Prints and writes (JSON) the device, the times of both phases
(compile included, as a user sees it), the number of iterations and, for real data, ACC/NMI.

    pip install -e . "jax[cuda12]"      # on the GPU machine
    python experiments/benchmarks/gpu_check.py --data-dir ../shared/data/fashion-mnist --out $OUT/gpu_check.json
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from sdekc_jax.estimator import SDEKC
from sdekc_jax.metrics import evaluate


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
    ap.add_argument("--out", default="gpu_check.json")
    args = ap.parse_args(argv)
    dev = jax.devices()[0]
    print(f"jax {jax.__version__}; device {dev.platform} {getattr(dev, 'device_kind', '')}", flush=True)
    x, y, name = load(args.data_dir, args.n)
    t0 = time.perf_counter()
    est = SDEKC(10, pretrain_epochs=args.pretrain_epochs, max_iters=args.max_iters, seed=0, verbose=True).fit(x)
    wall = time.perf_counter() - t0
    row = {"device": f"{dev.platform} {getattr(dev, 'device_kind', '')}", "data": name, "n": int(len(x)),
           "pretrain_epochs": args.pretrain_epochs, "wall_s": wall, "timings": est.timings_,
           "n_iter": est.n_iter_, "converged": est.converged_}
    if name != "synthetic":
        row.update(evaluate(y, est.labels_))
    print(json.dumps(row, indent=1), flush=True)
    with open(args.out, "w") as f:
        json.dump(row, f, indent=1)


if __name__ == "__main__":
    main()
