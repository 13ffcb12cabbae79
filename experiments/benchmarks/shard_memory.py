"""Peak memory per process of a clustering phase with the data replicated against sharded by rows.

Two processes on this machine join one ``jax.distributed`` run (127.0.0.1, gloo, one CPU device
each: a 2-device mesh spanning two hosts' worth of processes), and run the clustering phase of
SDEKC (no pretraining: a freshly initialised autoencoder; the first K-means, ``--max-iters``
iterations of Algorithm 1, the final embedding) on ``--n`` synthetic 16x16 images
(:class:`sdekc_jax.pretrain.SyntheticImages`), once with ``data="replicated"`` and once with
``data="sharded"`` (``sdekc_jax.parallel``). Replicated, each process materialises the whole data
set; sharded, each reads and holds only the rows of its device. Each process reports its peak
resident memory (``ru_maxrss``) before the fit (JAX and XLA loaded) and after, and its wall time;
both processes must end with the same labels.

    python experiments/benchmarks/shard_memory.py [--n 999424] [--max-iters 2] \\
        [--json results/scale/shard-memory.json]

The default n is 244 blocks of 4096 images: the two shards start on a block of the generator,
so both modes cluster exactly the same images.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_json  # noqa: E402

MODES = ("replicated", "sharded")


def worker(args) -> None:
    import jax
    import jax.numpy  # noqa: F401  (jax.numpy.array)

    from sdekc_jax.parallel import data_mesh, data_parallel, initialize_distributed

    initialize_distributed(f"127.0.0.1:{args.port}", 2, args.process_id)
    import numpy as np

    from sdekc_jax.cache import PretrainCache
    from sdekc_jax.config import RunConfig
    from sdekc_jax.pretrain import SyntheticImages
    from sdekc_jax.run import fit

    synth = SyntheticImages(args.n)
    cfg = RunConfig(n_clusters=10, image_shape=(16, 16, 1), pretrain_epochs=0, max_iters=args.max_iters, tol=0.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    with data_parallel(data_mesh(), data=args.mode):
        x = synth if args.mode == "sharded" else synth[0:args.n]  # replicated: every process makes all of it
        fitted = fit(cfg, x, jax.random.key(0), jax.numpy.array([0.001, 0.999]), cache=PretrainCache(None), verbose=False,
                     fingerprint=f"synthetic-{args.n}")
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    labels = np.asarray(fitted.result.labels)
    print("RESULT " + json.dumps({"mode": args.mode, "process": args.process_id, "peak_mib": peak,
                                  "peak_before_fit_mib": before, "wall_s": wall, "n_iter": int(fitted.result.n_iter),
                                  "devices": jax.device_count()}), flush=True)
    np.save(args.labels_out, labels)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_mode(mode: str, n: int, max_iters: int, timeout: float, tmp: str) -> list[dict]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", "--mode", mode, "--n", str(n),
                               "--max-iters", str(max_iters), "--port", str(port), "--process-id", str(i),
                               "--labels-out", os.path.join(tmp, f"{mode}-{i}.npy")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    rows = []
    for p, (out, err) in zip(procs, outs):
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if p.returncode or not lines:
            raise SystemExit(f"{mode}: a process failed (exit {p.returncode}):\n{err[-3000:]}")
        rows.append(json.loads(lines[-1][len("RESULT "):]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=244 * 4096)
    ap.add_argument("--max-iters", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                    help="measure these modes (with --json: merged into the file's other modes)")
    ap.add_argument("--json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--labels-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.n < 20 or args.max_iters < 1:
        raise SystemExit("--n must be >= 20 and --max-iters >= 1")
    gib = args.n * 16 * 16 * 4 / 2**30
    print(f"clustering phase, {args.n} synthetic 16x16 images ({gib:.2f} GiB in float32), {args.max_iters} "
          f"iterations, two processes x one CPU device", flush=True)
    result = {"n": args.n, "data_gib": gib, "max_iters": args.max_iters, "processes": 2, "modes": {}}
    tmp = tempfile.mkdtemp()
    if set(args.modes) != set(MODES):  # the other modes from the file (their labels are not kept: no agreement)
        if not (args.json and os.path.exists(args.json)):
            raise SystemExit("--modes with one mode merges into an existing --json file")
        with open(args.json) as f:
            old = json.load(f)
        if (old["n"], old["max_iters"]) != (args.n, args.max_iters):
            raise SystemExit(f"{args.json} was measured with other --n / --max-iters")
        result["modes"] = {m: old["modes"][m] for m in MODES if m not in args.modes}
        result["label_agreement_replicated_vs_sharded"] = old.get("label_agreement_replicated_vs_sharded")
        result["remeasured"] = list(args.modes)
    for mode in args.modes:
        rows = run_mode(mode, args.n, args.max_iters, args.timeout, tmp)
        result["modes"][mode] = rows
        print(f"{mode}: " + ", ".join(f"process {r['process']} peak {r['peak_mib']:.0f} MiB "
                                      f"(before the fit {r['peak_before_fit_mib']:.0f}), {r['wall_s']:.0f} s"
                                      for r in rows), flush=True)
    import numpy as np
    labels = {(m, i): np.load(os.path.join(tmp, f"{m}-{i}.npy")) for m in args.modes for i in range(2)}
    result["processes_agree"] = all(np.array_equal(labels[(m, 0)], labels[(m, 1)]) for m in args.modes)
    if set(args.modes) == set(MODES):  # the same program up to float reassociation of the sums over the shards
        result["label_agreement_replicated_vs_sharded"] = float(
            np.mean(labels[("replicated", 0)] == labels[("sharded", 0)]))
    rep, sh = (max(r["peak_mib"] for r in result["modes"][m]) for m in MODES)
    result["peak_ratio_sharded_over_replicated"] = sh / rep
    print("| data | peak MiB per process | wall s |\n|---|---|---|")
    for mode in MODES:
        rows = result["modes"][mode]
        print(f"| {mode} | {max(r['peak_mib'] for r in rows):.0f} | {max(r['wall_s'] for r in rows):.0f} |")
    print(f"sharded / replicated peak: {sh / rep:.2f}; both processes hold the same labels: "
          f"{result['processes_agree']}; labels equal across the modes: "
          f"{result['label_agreement_replicated_vs_sharded']}", flush=True)
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
