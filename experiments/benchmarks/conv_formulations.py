"""Pretraining throughput of the SDEKC CAE: lax convolutions vs the default exact formulations.

Both sides run the same jitted epoch function (one lax.scan over mini-batches, Adam, batch 256)
on the same random data in one process; compile time is reported separately.

    python experiments/benchmarks/conv_formulations.py [--n 2048] [--shapes 16x16x1 28x28x1]
"""
from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

from sdekc_jax.layers import conv_down_lax, conv_up_lax
from sdekc_jax.models import CAE
from sdekc_jax.pretrain import init_state, make_epoch_fn


def measure(model, x, batch_size, repeats):
    tx = optax.adam(1e-3)
    params = model.init(jax.random.key(0), x[:1])["params"]
    state = init_state(params, tx)
    epoch = make_epoch_fn(model, tx, batch_size)
    t0 = time.perf_counter()
    state, loss = epoch(state, x, jax.random.key(1), 0)
    loss.block_until_ready()
    first = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        state, loss = epoch(state, x, jax.random.key(1), r + 1)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
    run = float(np.median(times))
    return {"samples_per_s": x.shape[0] / run, "epoch_s": run, "compile_s": max(first - run, 0.0)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048, help="samples per epoch")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", nargs="+", default=["16x16x1", "28x28x1"])
    args = ap.parse_args()
    print(f"devices: {jax.devices()}")
    print("| image | lax samples/s | default samples/s | ratio | lax compile s | default compile s |")
    print("|---|---|---|---|---|---|")
    for s in args.shapes:
        shape = tuple(int(v) for v in s.split("x"))
        x = jax.random.uniform(jax.random.key(2), (args.n,) + shape)
        fast = measure(CAE(shape, 10), x, args.batch_size, args.repeats)
        ref = measure(CAE(shape, 10, conv_impl=conv_down_lax, conv_transpose_impl=conv_up_lax), x, args.batch_size,
                      args.repeats)
        print(f"| {s} | {ref['samples_per_s']:.0f} | {fast['samples_per_s']:.0f} | "
              f"{fast['samples_per_s'] / ref['samples_per_s']:.1f}x | {ref['compile_s']:.1f} | {fast['compile_s']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
