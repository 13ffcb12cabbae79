"""Skip weights in parallel: ``sweep.skip_sweep`` (all settings in one vmapped program) against
``run("sdekc", skips=w)`` for each setting one by one, side by side in one process.

    python experiments/benchmarks/skip_sweep.py [--w-enc none 0.001 0.999] [--seed 0] [--epochs 5] [--max-iters 10]

Both sides run SDEKC on all of USPS (9,298 images; ``--n`` for fewer) with the method's settings
(the sweep gets the :class:`~sdekc_jax.config.RunConfig` that ``run("sdekc")`` used), the same
reduced budget and no pretraining cache; compilation is included on both sides (the skip weights
are data on both, so the one-by-one side compiles once and reuses its programs).

A vmapped program rounds differently from the runs one by one, so the sweep agrees with them to
float tolerance over the first steps and statistically after that, not bit for bit. Printed side
by side: the wall time of each side and phase and the speed-up, and per setting the ACC of both
sides, the first-epoch pretraining-loss difference and the fraction of equal labels (as named,
and after the best matching of the clusters).
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
from sdekc_jax.methods import run  # noqa: E402
from sdekc_jax.sweep import skip_sweep  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--w-enc", nargs="+", default=["none", "0.001", "0.999"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--max-iters", type=int, default=10)
    ap.add_argument("--n", type=int, default=None, help="use the first n images (default: all)")
    ap.add_argument("--json", help="write the result to this JSON file")
    args = ap.parse_args(argv)
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="skip-sweep-bench-xla-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    skips = [None if w == "none" else (float(w), 1.0 - float(w)) for w in args.w_enc]
    x, y = load_dataset("usps")
    if args.n:
        x, y = x[:args.n], y[:args.n]
    kw = dict(pretrain_epochs=args.epochs, max_iters=args.max_iters, verbose=False)

    t0 = time.perf_counter()
    seq = [run("sdekc", x, 10, seed=args.seed, skips="none" if w is None else w, cache=PretrainCache(None), **kw)
           for w in skips]  # (skips=None would mean "the method's default")
    t_seq = time.perf_counter() - t0
    rc = seq[0].run_config  # the settings run("sdekc") used; the skips are the sweep's data
    settings = {f: v for f, v in rc.to_dict().items() if f not in ("n_clusters", "image_shape", "embedding_dim")}
    t0 = time.perf_counter()
    sw = skip_sweep(x, 10, [(w, args.seed) for w in skips], embedding_dim=rc.embedding_dim, verbose=False, **settings)
    t_sw = time.perf_counter() - t0

    per_setting = []
    for i, (w, a) in enumerate(zip(skips, seq)):
        mine = {"labels": sw.labels[i], "pretrain_loss": sw.history[i]["pretrain_loss"], "embedding": sw.embedding[i],
                "params": jax.tree.map(lambda v: v[i], sw.params), "n_iter": sw.n_iter[i]}
        alone = {"labels": a.labels, "pretrain_loss": a.history["pretrain_loss"], "embedding": a.embedding,
                 "params": a.params, "n_iter": a.n_iter}
        per_setting.append({"skips": w, **agreement(alone, mine, y)})
    summary = summarise_agreement(per_setting)
    res = {"n": int(x.shape[0]), "skips": skips, "seed": args.seed, "epochs": args.epochs, "max_iters": args.max_iters,
           "devices": str(jax.devices()), "one_by_one_s": t_seq, "vmapped_s": t_sw, "speedup": t_seq / t_sw,
           "one_by_one_pretrain_s": sum(r.timings["pretrain"] for r in seq),
           "one_by_one_cluster_s": sum(r.timings["cluster"] for r in seq),
           "vmapped_pretrain_s": sw.seconds["pretrain"], "vmapped_cluster_s": sw.seconds["cluster"],
           "agreement": per_setting, "agreement_summary": summary,
           "n_iter": [[r.n_iter for r in seq], sw.n_iter.tolist()],
           "acc": [[r["acc"][0] for r in per_setting], [r["acc"][1] for r in per_setting]]}
    print(f"sdekc on {res['n']} USPS images, skips {skips}, seed {args.seed}, {args.epochs} epochs, "
          f"<= {args.max_iters} iterations, {jax.devices()}")
    print("| | total s | pretraining s | clustering s |\n|---|---|---|---|")
    print(f"| one by one | {t_seq:.1f} | {res['one_by_one_pretrain_s']:.1f} | {res['one_by_one_cluster_s']:.1f} |")
    print(f"| vmapped | {t_sw:.1f} | {res['vmapped_pretrain_s']:.1f} | {res['vmapped_cluster_s']:.1f} |")
    print(f"speed-up {res['speedup']:.2f}x; iterations {res['n_iter']}")
    print("\n| skips | ACC one by one | ACC vmapped | first-epoch loss |diff| | equal labels | equal after matching |")
    print("|---|---|---|---|---|---|")
    for r in per_setting:
        print(f"| {r['skips']} | {r['acc'][0]:.4f} | {r['acc'][1]:.4f} | {fmt(r['pretrain_loss_first_epoch_abs_diff'])} | "
              f"{r['label_agreement']:.4f} | {r['label_agreement_matched']:.4f} |")
    print(f"paired ACC difference (vmapped − one by one) {summary['acc_diff_mean']:+.4f} ± {summary['acc_diff_std']:.4f}; "
          f"largest first-epoch loss difference {fmt(summary['max_first_epoch_loss_abs_diff'])}; labels equal in "
          f"{summary['runs_with_equal_labels']}/{summary['runs']} settings")
    write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
