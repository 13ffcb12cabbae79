"""Target 1: pretraining throughput of the SDEKC CAE in JAX vs two PyTorch CPU models.

Two comparators: the exact twin (``torch_reference.TorchCAE``), which receives a copy of the JAX
parameters and must give the same reconstructions and embeddings (max |difference| <= 1e-4)
before anything is timed, and the natural PyTorch CAE (``torch_reference.NaturalCAE``: the same
layers and FLOPs written the usual way, symmetric padding and ``output_padding``), what a user
would pick instead. All train on the same data (MSE, Adam 1e-3, batch 256, every sample once per
epoch), epochs alternating JAX / twin / natural so that all see the same machine load; the
median epoch is reported, and the goal ratio is JAX against the faster PyTorch model. JAX's
compile time (the first epoch minus a steady one) is reported separately.

    python experiments/benchmarks/pretrain_vs_torch.py [--n 4096] [--epochs 3] [--shapes 28x28x1 16x16x1]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from _common import write_json  # noqa: E402

from sdekc_jax.config import RunConfig  # noqa: E402
from sdekc_jax.pretrain import init_state  # noqa: E402
from sdekc_jax.run import make_steps  # noqa: E402


def measure(shape, n, epochs, batch_size=256, seed=0):
    import torch  # lazily: the module imports without PyTorch
    from torch_reference import NaturalCAE, TorchCAE, load_jax_params, max_output_difference, pretrain_torch, to_nchw

    cfg = RunConfig(n_clusters=10, image_shape=shape, batch_size=batch_size)
    steps = make_steps(cfg)  # the run's own pretraining epoch (lax.scan over mini-batches, Adam 1e-3)
    x = jax.random.uniform(jax.random.key(seed), (n,) + shape)
    params = steps.init(jax.random.key(seed + 1))
    tmodel = load_jax_params(TorchCAE(shape), params)  # the twin has SDEKC's skips (0.001, 0.999)
    diff = max_output_difference(params, tmodel, x[:64])
    if not diff <= 1e-4:
        raise AssertionError(f"the PyTorch twin differs from the JAX model by {diff:.2e} (> 1e-4); not timing")
    xt = to_nchw(x)
    w = jnp.asarray(tmodel.skip_weights, jnp.float32)
    state = init_state(params, steps.pretrain_tx)
    jitted = jax.jit(steps.pretrain_epoch, donate_argnums=(0,))
    epoch_fn = lambda state, x, key, epoch: jitted(state, x, key, epoch, w)
    t0 = time.perf_counter()
    state, loss = epoch_fn(state, x, jax.random.key(seed + 2), 0)
    loss.block_until_ready()
    first = time.perf_counter() - t0
    torch.manual_seed(seed)
    natural = NaturalCAE(shape)
    pretrain_torch(tmodel, xt[:batch_size], 1)  # warm-up
    pretrain_torch(natural, xt[:batch_size], 1)
    tj, tt, tn = [], [], []
    for e in range(epochs):
        t0 = time.perf_counter()
        state, loss = epoch_fn(state, x, jax.random.key(seed + 2), e + 1)
        loss.block_until_ready()
        tj.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pretrain_torch(tmodel, xt, 1, batch_size=batch_size, seed=e)
        tt.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pretrain_torch(natural, xt, 1, batch_size=batch_size, seed=e)
        tn.append(time.perf_counter() - t0)
    tj, tt, tn = float(np.median(tj)), float(np.median(tt)), float(np.median(tn))
    return {"image": "x".join(map(str, shape)), "n": n, "batch_size": batch_size, "max_abs_output_diff": diff,
            "jax_samples_per_s": n / tj, "torch_samples_per_s": n / tt, "torch_natural_samples_per_s": n / tn,
            "speedup": tt / tj, "speedup_vs_natural": tn / tj, "speedup_vs_faster": min(tt, tn) / tj,
            "jax_compile_s": max(first - tj, 0.0), "torch_threads": torch.get_num_threads()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4096, help="samples per epoch")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per side")
    ap.add_argument("--shapes", nargs="+", default=["28x28x1", "16x16x1"])
    ap.add_argument("--json", help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    import torch

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| image | max output diff (twin) | PyTorch twin samples/s | PyTorch natural samples/s | JAX samples/s | "
          "JAX / twin | JAX / natural | JAX / faster PyTorch | JAX compile s |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for s in args.shapes:
        r = measure(tuple(int(v) for v in s.split("x")), args.n, args.epochs)
        rows.append(r)
        print(f"| {r['image']} | {r['max_abs_output_diff']:.1e} | {r['torch_samples_per_s']:.0f} | "
              f"{r['torch_natural_samples_per_s']:.0f} | {r['jax_samples_per_s']:.0f} | {r['speedup']:.2f}x | "
              f"{r['speedup_vs_natural']:.2f}x | {r['speedup_vs_faster']:.2f}x | {r['jax_compile_s']:.1f} |", flush=True)
    write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
