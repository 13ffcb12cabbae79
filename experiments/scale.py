"""Scale: the clustering phase on a million embedded points, and pretraining on a streamed
million-image data set, with wall time and peak memory.

    python experiments/scale.py --out results/scale                  # both parts, n = 1,000,000
    python experiments/scale.py --parts cluster --n 100000 --out /tmp/scale

* ``cluster``: Algorithm 1 (``sdekc_jax.run.fit`` with ``clustering="dekm"``: embed all, K-means
  with 10 restarts, S_w, eigh, greedy targets, 40 Adam steps of batch 256 per iteration; stop at
  0.1% changed) on ``n`` synthetic points of dimension 10 drawn from 10 Gaussian blobs, through a
  trainable affine encoder (the dense autoencoder with no hidden layer, ``arch="dense",
  hidden=()``, not pretrained; the points are fed as 1x10 "images"), so every n-dependent part of
  the phase runs at full size while the encoder's own cost stays small. ACC against the blob
  labels is reported as a sanity check.
* ``pretrain``: the SDEKC network (CAE 16x16x1, the two skips) pretrained on
  :class:`sdekc_jax.pretrain.SyntheticImages` (``n`` images generated on demand, never all in
  memory), streamed in chunks of ``--chunk-size`` images (``pretrain(params, x, key,
  chunk_size=)``, the host driver of the run's pretraining epochs), for ``--epochs`` epochs.

Each part runs in its own subprocess, so its peak resident memory (``ru_maxrss``) is its own; the
table compares it with the size the whole data set would have as one float32 array.
``<out>/scale.json`` and ``<out>/scale.md`` are written after each part (atomically).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import table3  # noqa: E402
from sdekc_jax.io import atomic_write_json, atomic_write_text  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_cluster(n: int, max_iters: int, tol: float) -> dict:
    import jax
    import numpy as np

    from sdekc_jax.config import RunConfig
    from sdekc_jax.metrics import cluster_acc
    from sdekc_jax.run import fit

    d = k = 10
    kc, ka, kn = jax.random.split(jax.random.key(0), 3)
    centres = 1.5 * jax.random.normal(kc, (k, d))  # overlapping blobs: the phase takes several iterations
    y = jax.random.randint(ka, (n,), 0, k)
    x = np.asarray(centres[y] + jax.random.normal(kn, (n, d)), np.float32).reshape(n, 1, d, 1)
    # an affine encoder: the dense autoencoder without hidden layers, clustered without pretraining
    cfg = RunConfig(n_clusters=k, image_shape=(1, d, 1), arch="dense", hidden=(), embedding_dim=d, pretrain_epochs=0,
                    clustering="dekm", max_iters=max_iters, tol=tol)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    f = fit(cfg, x, jax.random.key(1), verbose=True)
    seconds = time.perf_counter() - t0
    r = f.result
    n_iter = int(r.n_iter)
    return {"part": "cluster", "n": n, "d": d, "k": k, "tol": tol, "max_iters": max_iters, "seconds": seconds,
            "n_iter": n_iter, "seconds_per_iteration": seconds / n_iter, "converged": bool(r.converged),
            "acc_vs_blobs": float(cluster_acc(np.asarray(y), np.asarray(r.labels))), "peak_rss_mb": peak_rss_mb(),
            "peak_rss_before_mb": rss0, "data_mb": n * d * 4 / 2**20}


def part_pretrain(n: int, epochs: int, chunk_size: int) -> dict:
    import jax

    from sdekc_jax.config import SKIP_PRESETS, RunConfig
    from sdekc_jax.models import init_params
    from sdekc_jax.pretrain import SyntheticImages, pretrain
    from sdekc_jax.run import split_key

    data = SyntheticImages(n, (16, 16, 1))
    cfg = RunConfig(n_clusters=10, image_shape=(16, 16, 1), pretrain_epochs=epochs, batch_size=256)
    k_init, k_pre, _ = split_key(jax.random.key(0))  # as a run of cfg with this key
    t0 = time.perf_counter()
    _, losses = pretrain(init_params(k_init, cfg), data, k_pre, skip_weights=SKIP_PRESETS["swapped"], epochs=epochs,
                         batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, chunk_size=chunk_size, verbose=True)
    seconds = time.perf_counter() - t0
    return {"part": "pretrain", "n": n, "epochs": epochs, "chunk_size": chunk_size, "seconds": seconds,
            "seconds_per_epoch": seconds / max(epochs, 1), "images_per_second": n * epochs / seconds,
            "losses": [float(v) for v in losses], "peak_rss_mb": peak_rss_mb(),
            "data_mb": n * 16 * 16 * 4 / 2**20, "chunk_mb": chunk_size * 16 * 16 * 4 / 2**20}


def markdown(rows: list[dict], meta: dict) -> str:
    commands = list(dict.fromkeys(r.get("command", meta["command"]) for r in rows))
    lines = [f"Measured on {meta['machine']} (jax {meta['jax']}, {meta['backend']}), {meta['date']}; "
             + "; ".join(f"`{c}`" for c in commands) + ".", ""]
    cl = [r for r in rows if r["part"] == "cluster"]
    pre = [r for r in rows if r["part"] == "pretrain"]
    if cl:
        lines += ["**Clustering phase** (Algorithm 1, affine encoder (not pretrained), d = k = 10, 40 steps of batch 256 per "
                  "iteration; seconds include compilation):", "",
                  "| n | stop at | iterations | converged | seconds | s / iteration | peak RSS MB | data MB | ACC vs blobs |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['n']:,} | {'tol ' + format(r.get('tol', 0.001), 'g') if r.get('tol', 0.001) > 0 else 'never (tol 0)'} "
                  f"| {r['n_iter']} | {r['converged']} | {r['seconds']:.1f} | "
                  f"{r['seconds_per_iteration']:.2f} | {r['peak_rss_mb']:.0f} | {r['data_mb']:.0f} | "
                  f"{r['acc_vs_blobs']:.4f} |" for r in cl] + [""]
    if pre:
        lines += ["**Streamed pretraining** (CAE 16x16x1 with the two skips, synthetic images generated on "
                  "demand, batch 256):", "",
                  "| n | epochs | chunk | seconds / epoch | images / s | peak RSS MB | whole data set MB | chunk MB "
                  "| loss per epoch |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['n']:,} | {r['epochs']} | {r['chunk_size']:,} | {r['seconds_per_epoch']:.0f} | "
                  f"{r['images_per_second']:.0f} | {r['peak_rss_mb']:.0f} | {r['data_mb']:.0f} | "
                  f"{r['chunk_mb']:.0f} | {', '.join(f'{v:.5f}' for v in r['losses'])} |" for r in pre] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["cluster", "pretrain"], choices=["cluster", "pretrain"])
    p.add_argument("--n", type=int, nargs="+", default=[1_000_000],
                   help="data set sizes (several: the peak memory of the streamed pretraining should not grow with n)")
    p.add_argument("--max-iters", type=int, default=1000, help="clustering iterations cap")
    p.add_argument("--tol", type=float, default=0.001, help="clustering stop tolerance (0: run --max-iters iterations)")
    p.add_argument("--epochs", type=int, default=1, help="pretraining epochs over the n streamed images")
    p.add_argument("--chunk-size", type=int, default=65536, help="images per streamed chunk")
    p.add_argument("--out", default=None, help="output folder (default: a new results/scale-<date>-<time>)")
    p.add_argument("--append", action="store_true", help="keep the rows already in <out>/scale.json")
    p.add_argument("--_part", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.n) < 10 or args.chunk_size < 1 or args.epochs < 1 or args.max_iters < 1:
        p.error("--n must be >= 10 and --chunk-size, --epochs, --max-iters >= 1")
    args.out = args.out or table3.default_out("scale")
    if args._part:  # child process: one part, its result as the last line
        row = (part_cluster(args.n[0], args.max_iters, args.tol) if args._part == "cluster"
               else part_pretrain(args.n[0], args.epochs, args.chunk_size))
        print("RESULT " + json.dumps(row), flush=True)
        return 0
    import jax
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.processor() or platform.machine()}, {len(jax.devices())} {jax.default_backend()} "
                       f"device(s), {__import__('os').cpu_count()} CPU cores", "jax": jax.__version__,
            "backend": jax.default_backend(), "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
    previous = out / "scale.json"
    rows = json.loads(previous.read_text())["rows"] if args.append and previous.exists() else []
    for part, n in [(part, n) for part in args.parts for n in args.n]:
        cmd = [sys.executable, __file__, "--_part", part, "--n", str(n), "--max-iters", str(args.max_iters), "--tol", str(args.tol),
               "--epochs", str(args.epochs), "--chunk-size", str(args.chunk_size)]
        print(f"[{time.strftime('%H:%M:%S')}] {part}, n = {n:,}", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"part {part} failed (exit {proc.returncode})")
        row = json.loads([l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])
        rows.append({**row, "command": "python " + " ".join(sys.argv)})
        atomic_write_json(out / "scale.json", {"meta": meta, "rows": rows})
        atomic_write_text(out / "scale.md", markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(table3.main_with_clear_errors(main))
