"""Skip weights in parallel: ``sweep.skip_sweep`` (all settings in one vmapped program) against
``run("sdekc", skips=w)`` for each setting one by one, side by side in one process.

    python experiments/benchmarks/skip_sweep.py [--w-enc none 0.001 0.999] [--seed 0] [--epochs 5] [--max-iters 10]

Both sides run SDEKC on all of USPS (9,298 images) with the method's settings, the same reduced
budget and no pretraining cache; compilation is included on both sides (the one-by-one side
compiles once per setting: the skip weights are constants of its programs). Prints the wall time
of each side and phase, the speed-up, and per setting whether labels, embedding, parameters and
histories are bit-identical to the one-by-one run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import write_json  # noqa: E402
from sdekc_jax.cache import PretrainCache  # noqa: E402
from sdekc_jax.data import load_dataset  # noqa: E402
from sdekc_jax.methods import get_method, run  # noqa: E402
from sdekc_jax.metrics import evaluate  # noqa: E402
from sdekc_jax.models import CAE  # noqa: E402
from sdekc_jax.pretrain import unstack_tree  # noqa: E402
from sdekc_jax.sweep import skip_sweep  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--w-enc", nargs="+", default=["none", "0.001", "0.999"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--max-iters", type=int, default=10)
    ap.add_argument("--json", help="write the result to this JSON file")
    args = ap.parse_args(argv)
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="skip-sweep-bench-xla-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    skips = [None if w == "none" else (float(w), 1.0 - float(w)) for w in args.w_enc]
    x, y = load_dataset("usps")
    cfg = get_method("sdekc").config()
    kw = dict(pretrain_epochs=args.epochs, max_iters=args.max_iters, verbose=False)

    t0 = time.perf_counter()
    seq = [run("sdekc", x, 10, seed=args.seed, skips="none" if w is None else w, cache=PretrainCache(None), **kw)
           for w in skips]  # (skips=None would mean "the method's default")
    t_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    sw = skip_sweep(CAE(tuple(x.shape[1:]), n_embed=10), x, 10, [(w, args.seed) for w in skips],
                    batch_size=cfg["batch_size"], learning_rate=cfg["learning_rate"], steps_per_iter=cfg["steps_per_iter"],
                    tol=cfg["tol"], kmeans_n_init=cfg["kmeans_n_init"], **kw)
    t_sw = time.perf_counter() - t0

    bitwise = []
    for i, a in enumerate(seq):
        mine = {k: v for k, v in unstack_tree(sw.params, i).items() if k != "dec_skips"}
        bitwise.append({
            "labels": bool(np.array_equal(a.labels, sw.labels[i])),
            "embedding": bool(np.array_equal(a.embedding, sw.embedding[i])),
            "params": all(bool(np.array_equal(np.asarray(u), np.asarray(v)))
                          for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(mine))),
            **{f"history.{k}": bool(np.array_equal(a.history[k], sw.history[i].get(k), equal_nan=True))
               for k in a.history}})
    res = {"n": int(x.shape[0]), "skips": skips, "seed": args.seed, "epochs": args.epochs, "max_iters": args.max_iters,
           "devices": str(jax.devices()), "one_by_one_s": t_seq, "vmapped_s": t_sw, "speedup": t_seq / t_sw,
           "one_by_one_pretrain_s": sum(r.timings["pretrain"] for r in seq),
           "one_by_one_cluster_s": sum(r.timings["cluster"] for r in seq),
           "vmapped_pretrain_s": sw.seconds["pretrain"], "vmapped_cluster_s": sw.seconds["cluster"],
           "bit_identical": bitwise, "n_iter": [[r.n_iter for r in seq], sw.n_iter.tolist()],
           "acc": [[evaluate(y, r.labels)["acc"] for r in seq], [evaluate(y, l)["acc"] for l in sw.labels]]}
    print(f"sdekc on {res['n']} USPS images, skips {skips}, seed {args.seed}, {args.epochs} epochs, "
          f"<= {args.max_iters} iterations, {jax.devices()}")
    print("| | total s | pretraining s | clustering s |\n|---|---|---|---|")
    print(f"| one by one | {t_seq:.1f} | {res['one_by_one_pretrain_s']:.1f} | {res['one_by_one_cluster_s']:.1f} |")
    print(f"| vmapped | {t_sw:.1f} | {res['vmapped_pretrain_s']:.1f} | {res['vmapped_cluster_s']:.1f} |")
    print(f"speed-up {res['speedup']:.2f}x; ACC one by one {np.round(res['acc'][0], 4).tolist()}, "
          f"vmapped {np.round(res['acc'][1], 4).tolist()}")
    for w, b in zip(skips, bitwise):
        print(f"skips {w} bit-identical:", ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in b.items()))
    write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
