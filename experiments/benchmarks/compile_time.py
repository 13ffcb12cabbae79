"""Compile time of the whole run (``jax.jit(make_run(cfg))``) against the host driver's programs
(``fit``: the init, one pretraining epoch, the clustering init, one chunk of iterations and the
final embedding), for SDEKC's paper configuration on USPS-sized data (16x16, 10 clusters).

    python experiments/benchmarks/compile_time.py [--n 9298] [--json results/compile/compile_time.json]

Compilation only (``lower(...).compile()``; the persistent compilation cache is off), measured
side by side in one process.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import sdekc_jax as sk  # noqa: E402
from sdekc_jax.pretrain import init_state  # noqa: E402
from sdekc_jax.run import make_steps, split_key  # noqa: E402


def compile_s(f, *args):
    t = time.perf_counter()
    jax.jit(f).lower(*args).compile()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=9298)
    ap.add_argument("--json")
    args = ap.parse_args()
    cfg = sk.RunConfig(n_clusters=10, image_shape=(16, 16, 1))
    x = jnp.zeros((args.n, 16, 16, 1), jnp.float32)
    w = jnp.array([0.001, 0.999])
    key = jax.random.key(0)
    whole = compile_s(sk.make_run(cfg), key, x, w)
    steps = make_steps(cfg)
    ki, kp, kc = split_key(key)
    params = jax.eval_shape(steps.init, ki)
    state = jax.eval_shape(lambda p: init_state(p, steps.pretrain_tx), params)
    cstate = jax.eval_shape(steps.cluster_init, params, x, kc, w)
    parts = {
        "init": compile_s(steps.init, ki),
        "pretrain_epoch": compile_s(steps.pretrain_epoch, state, x, kp, 0, w),
        "cluster_init": compile_s(steps.cluster_init, params, x, kc, w),
        "cluster_chunk": compile_s(steps.advance, cstate, x, w, jnp.int32(10)),
        "finish": compile_s(steps.finish, params, cstate, x),
    }
    res = {"n": args.n, "config": cfg.to_dict(), "jit_run_s": whole, "driver_s": sum(parts.values()),
           "driver_parts_s": parts, "jax": jax.__version__, "cpu": platform.processor() or platform.machine(),
           "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    print(f"jax.jit(make_run(cfg)): {whole:.1f} s; driver programs: {res['driver_s']:.1f} s "
          + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
