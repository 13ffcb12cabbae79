"""Pretraining throughput of the SDEKC CAE: lax convolutions vs the default exact formulations.

Both sides run the run's own pretraining epoch (``make_steps(cfg).pretrain_epoch``: one lax.scan
over mini-batches, Adam, batch 256, the two skips) jitted, on the same random data in one
process; compile time is reported separately. The default side is ``RunConfig(conv_impl="auto")``,
which on CPU is the gather / overlap-add forms (``layers.conv_down_gather`` / ``conv_up_overlap``);
the reference side forces ``conv_impl="lax"`` (``layers.conv_down_lax`` / ``conv_up_lax``, XLA's
own convolutions, what GPUs and TPUs get under "auto").

    python experiments/benchmarks/conv_formulations.py [--n 2048] [--shapes 16x16x1 28x28x1]
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

from sdekc_jax.config import SKIP_PRESETS, RunConfig  # noqa: E402
from sdekc_jax.pretrain import init_state  # noqa: E402
from sdekc_jax.run import make_steps  # noqa: E402


def measure(cfg: RunConfig, x, repeats):
    w = jnp.asarray(SKIP_PRESETS["swapped"], jnp.float32)
    steps = make_steps(cfg)
    state = init_state(steps.init(jax.random.key(0)), steps.pretrain_tx)
    epoch = jax.jit(steps.pretrain_epoch)
    t0 = time.perf_counter()
    state, loss = epoch(state, x, jax.random.key(1), 0, w)
    loss.block_until_ready()
    first = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        state, loss = epoch(state, x, jax.random.key(1), r + 1, w)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
    run = float(np.median(times))
    return {"samples_per_s": x.shape[0] / run, "epoch_s": run, "compile_s": max(first - run, 0.0)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048, help="samples per epoch")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", nargs="+", default=["16x16x1", "28x28x1"])
    args = ap.parse_args(argv)
    print(f"devices: {jax.devices()}")
    print("| image | lax samples/s | default samples/s | ratio | lax compile s | default compile s |")
    print("|---|---|---|---|---|---|")
    rows = []
    for s in args.shapes:
        shape = tuple(int(v) for v in s.split("x"))
        cfg = RunConfig(n_clusters=10, image_shape=shape, batch_size=args.batch_size)
        x = jax.random.uniform(jax.random.key(2), (args.n,) + shape)
        fast = measure(cfg, x, args.repeats)
        ref = measure(cfg.replace(conv_impl="lax"), x, args.repeats)
        rows.append({"image": s, "lax": ref, "default": fast, "ratio": fast["samples_per_s"] / ref["samples_per_s"]})
        print(f"| {s} | {ref['samples_per_s']:.0f} | {fast['samples_per_s']:.0f} | "
              f"{fast['samples_per_s'] / ref['samples_per_s']:.1f}x | {ref['compile_s']:.1f} | {fast['compile_s']:.1f} |",
              flush=True)
    return rows


if __name__ == "__main__":
    main()
