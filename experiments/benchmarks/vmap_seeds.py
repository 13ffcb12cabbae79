"""Seeds in parallel: ``run_vmapped`` (all seeds in one vmapped program) against running the same
seeds one by one with ``run`` (the ``sdekc run --seeds ...`` default), side by side in one process.

    python experiments/benchmarks/vmap_seeds.py [--seeds 0 1 2] [--epochs 5] [--max-iters 10]

Both sides run SDEKC on all of USPS (9,298 images) with the same reduced budget and no
pretraining cache. Compilation is included on both sides, as a user sees it: the sequential side
compiles for its first seed and reuses the programs for the others through the persistent
compilation cache (as ``sdekc run`` does), the vmapped side compiles its batched programs once.

A vmapped program rounds differently from the seed-by-seed ones, so the two sides agree to float
tolerance over the first steps and statistically after that, not bit for bit. Printed side by
side: the wall time of each side and phase and the speed-up, and per seed the ACC of both sides,
the first-epoch pretraining-loss difference and the fraction of equal labels (as named, and after
the best matching of the clusters).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import agreement, fmt, summarise_agreement, write_json  # noqa: E402
from sdekc_jax.cache import PretrainCache  # noqa: E402
from sdekc_jax.data import load_dataset  # noqa: E402
from sdekc_jax.methods import run, run_vmapped  # noqa: E402


def _side(r) -> dict:
    return {"labels": r.labels, "pretrain_loss": r.history["pretrain_loss"], "embedding": r.embedding,
            "params": r.params, "n_iter": r.n_iter}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="sdekc")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--max-iters", type=int, default=10)
    ap.add_argument("--n", type=int, default=None, help="use the first n images (default: all)")
    ap.add_argument("--json", help="write the result to this JSON file")
    args = ap.parse_args(argv)
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="vmap-bench-xla-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    x, y = load_dataset("usps")
    if args.n:
        x, y = x[:args.n], y[:args.n]
    kw = dict(pretrain_epochs=args.epochs, max_iters=args.max_iters, verbose=False)
    t0 = time.perf_counter()
    seq = [run(args.method, x, 10, seed=s, cache=PretrainCache(None), **kw) for s in args.seeds]
    t_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    vm = run_vmapped(args.method, x, 10, seeds=args.seeds, cache=PretrainCache(None), **kw)
    t_vm = time.perf_counter() - t0
    per_seed = [{"seed": s, **agreement(_side(a), _side(b), y)} for s, a, b in zip(args.seeds, seq, vm)]
    summary = summarise_agreement(per_seed)
    res = {"method": args.method, "n": int(x.shape[0]), "seeds": args.seeds, "epochs": args.epochs,
           "max_iters": args.max_iters, "devices": str(jax.devices()),
           "sequential_s": t_seq, "vmapped_s": t_vm, "speedup": t_seq / t_vm,
           "sequential_pretrain_s": sum(r.timings["pretrain"] for r in seq),
           "sequential_cluster_s": sum(r.timings["cluster"] for r in seq),
           "vmapped_pretrain_s": vm[0].timings["pretrain_total"], "vmapped_cluster_s": vm[0].timings["cluster_total"],
           "labels_equal": [r["labels_equal"] for r in per_seed], "agreement": per_seed, "agreement_summary": summary,
           "n_iter": [[a.n_iter for a in seq], [b.n_iter for b in vm]],
           "acc": [[r["acc"][0] for r in per_seed], [r["acc"][1] for r in per_seed]]}
    print(f"{args.method} on {res['n']} USPS images, seeds {args.seeds}, {args.epochs} epochs, <= {args.max_iters} "
          f"iterations, {jax.devices()}")
    print("| | total s | pretraining s | clustering s |\n|---|---|---|---|")
    print(f"| one by one | {t_seq:.1f} | {res['sequential_pretrain_s']:.1f} | {res['sequential_cluster_s']:.1f} |")
    print(f"| vmapped | {t_vm:.1f} | {res['vmapped_pretrain_s']:.1f} | {res['vmapped_cluster_s']:.1f} |")
    print(f"speed-up {res['speedup']:.2f}x (pretraining {res['sequential_pretrain_s'] / res['vmapped_pretrain_s']:.2f}x, "
          f"clustering {res['sequential_cluster_s'] / res['vmapped_cluster_s']:.2f}x); iterations {res['n_iter']}")
    print("\n| seed | ACC one by one | ACC vmapped | first-epoch loss |diff| | equal labels | equal after matching |")
    print("|---|---|---|---|---|---|")
    for r in per_seed:
        print(f"| {r['seed']} | {r['acc'][0]:.4f} | {r['acc'][1]:.4f} | {fmt(r['pretrain_loss_first_epoch_abs_diff'])} | "
              f"{r['label_agreement']:.4f} | {r['label_agreement_matched']:.4f} |")
    print(f"ACC one by one {summary['acc_mean'][0]:.4f} ± {summary['acc_std'][0]:.4f}, vmapped "
          f"{summary['acc_mean'][1]:.4f} ± {summary['acc_std'][1]:.4f} (paired difference {summary['acc_diff_mean']:+.4f} ± "
          f"{summary['acc_diff_std']:.4f}); largest first-epoch loss difference "
          f"{fmt(summary['max_first_epoch_loss_abs_diff'])}; labels equal in {summary['runs_with_equal_labels']}/"
          f"{summary['runs']} seeds")
    write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
