"""Paired experiments (issue 19): one protocol setting, ours against the DEKM reference code's,
for SDEKC and DEKM on real USPS, full budgets, seeds 0-4.

    python experiments/kmeans_schedule.py --data-root ../shared/data --out results/kmeans-schedule
    python experiments/kmeans_schedule.py --setting init --methods sdekc --data-root ../shared/data \
        --out results/dekm-init

``--setting kmeans_schedule`` (the default) compares the K-means schedules of Algorithm 1's
refresh; ``--setting init`` the initialisers (``RunConfig.init``: ``glorot`` ours, ``dekm``
DEKM.py's U(-0.05, 0.05) encoder convolutions) and ``--setting adam_eps`` Adam's epsilon
(``1e-08`` ours, ``1e-07`` Keras'), which change the pretrained autoencoder, so there a pair
shares its seed (every other initial draw) but not its pretraining. ``--setting
cluster_batch_order`` (``shuffled`` ours, ``stored`` DEKM.py's unshuffled walk) and ``--setting
cluster_loss`` (``mean`` ours, ``sum`` DEKM.py's) change only the clustering phase.

``warm`` (``RunConfig.kmeans_schedule="warm"``): 10 k-means++ restarts per refresh, restart 0
warm-started from the last centres. ``dekm``: DEKM.py's, 100 fresh restarts at the first refresh,
then twice the previous K-means' Lloyd iterations, no warm start. For a given method and seed
both schedules start from the same pretrained autoencoder (the pretraining cache), so the
difference of a pair is the schedule's alone. Resumable like ``table3.py`` (each finished cell is
written at once; a killed cell continues from its checkpoints). ``<out>/kmeans_schedule.md``:
per-seed ACC of both schedules, the paired differences, and the means beside the paper.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import table3  # noqa: E402
from sdekc_jax.cache import PretrainCache, default_cache_dir  # noqa: E402
from sdekc_jax.cli import _enable_compilation_cache  # noqa: E402
from sdekc_jax.config import BATCH_ORDERS, CLUSTER_LOSSES, INITS, KMEANS_SCHEDULES, paper_result  # noqa: E402
from sdekc_jax.methods import get_method  # noqa: E402

NAME = "kmeans_schedule"
# setting -> (ours, DEKM.py's) as written on the command line; the first is the default
SETTINGS = {"kmeans_schedule": KMEANS_SCHEDULES, "init": INITS, "cluster_batch_order": BATCH_ORDERS,
            "cluster_loss": CLUSTER_LOSSES, "adam_eps": ("1e-08", "1e-07")}
VALUE = {"adam_eps": float}  # a value as the method's setting (default: the string itself)
SHARED_PRETRAINING = ("kmeans_schedule", "cluster_batch_order", "cluster_loss")  # the clustering phase's settings


def markdown(cells: dict, dataset: str = "usps", setting: str = "kmeans_schedule") -> str:
    lines = []
    values = SETTINGS[setting]
    ours, theirs = values
    for m in sorted({c["method"] for c in cells.values()}):
        done = {(c["schedule"], c["seed"]): c for c in cells.values() if c["method"] == m and "error" not in c}
        seeds = sorted({s for _, s in done})
        paper, table = paper_result(m, dataset)
        lines += [f"## {m} on {dataset}" + (f" (paper, {table}: ACC {paper[0]:.4f}, NMI {paper[1]:.4f})" if paper else ""),
                  "", "| seed | " + " | ".join(f"ACC {s} | NMI {s} | iterations {s}" for s in values)
                  + f" | ΔACC ({theirs} − {ours}) | pretrain MSE |",
                  "|---|" + "---|---|---|" * len(values) + "---|---|"]
        for seed in seeds:
            row = []
            for s in values:
                c = done.get((s, seed))
                row += [f"{c['acc']:.4f}", f"{c['nmi']:.4f}", f"{c['n_iter']}{'' if c['converged'] else ' (cap)'}"] if c \
                    else ["", "", ""]
            both = [done.get((s, seed)) for s in values]
            d = f"{both[1]['acc'] - both[0]['acc']:+.4f}" if all(both) else ""
            mses = [f"{c['pretrain_final_mse']:.5f}" for c in both if c and c.get("pretrain_final_mse") is not None]
            mse = mses[0] if setting in SHARED_PRETRAINING else " / ".join(mses)  # shared, or one per value
            lines.append(f"| {seed} | " + " | ".join(row) + f" | {d} | {mse if mses else ''} |")
        stats = []
        for s in values:
            a = [done[(s, t)]["acc"] for t in seeds if (s, t) in done]
            n = [done[(s, t)]["nmi"] for t in seeds if (s, t) in done]
            if a:
                gap = f", {np.mean(a) - paper[0]:+.4f} vs the paper" if paper else ""
                stats.append(f"- **{s}** ({len(a)} seeds): ACC {np.mean(a):.4f} ± {np.std(a):.4f}, "
                             f"NMI {np.mean(n):.4f} ± {np.std(n):.4f}{gap}")
        pairs = [done[(theirs, t)]["acc"] - done[(ours, t)]["acc"] for t in seeds
                 if (theirs, t) in done and (ours, t) in done]
        if pairs:
            stats.append(f"- paired ΔACC ({theirs} − {ours}) over {len(pairs)} seeds: {np.mean(pairs):+.4f} ± "
                         f"{np.std(pairs, ddof=1) if len(pairs) > 1 else 0:.4f} (sd of the differences)")
        lines += [""] + stats + [""]
    errors = [c for c in cells.values() if "error" in c]
    if errors:
        lines += ["Failed cells (retried on the next run):", ""]
        lines += [f"- {c['method']} / {c['schedule']} / seed {c['seed']}: {c['error']}" for c in errors]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="usps")
    p.add_argument("--methods", nargs="+", default=["sdekc", "dekm"], choices=["sdekc", "dekm"])
    p.add_argument("--setting", default="kmeans_schedule", choices=list(SETTINGS),
                   help="the protocol setting compared (default: kmeans_schedule)")
    p.add_argument("--schedules", "--values", nargs="+", default=None,
                   help="the setting's values to run (default: both, ours first; e.g. kmeans_schedule: warm dekm)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--data-root", default=None, help="folder with one sub-folder per data set (default: the loader's)")
    table3.add_common_args(p, NAME.replace("_", "-"))
    args = p.parse_args(argv)
    values = args.schedules or list(SETTINGS[args.setting])
    if not set(values) <= set(SETTINGS[args.setting]):
        p.error(f"--values for --setting {args.setting} must be among {list(SETTINGS[args.setting])}, got {values}")
    name_out = NAME if args.setting == "kmeans_schedule" else f"paired_{args.setting}"

    _enable_compilation_cache()
    table3.check_data_root(args.data_root)
    path, state = table3.open_grid(args.out, name_out)
    cells = state["cells"]
    report = lambda c: markdown(c, args.dataset, args.setting)
    if args.report:
        print(table3.save_grid(path, state, report))
        return 0
    cache = PretrainCache(args.cache_dir or default_cache_dir())
    x, y = table3.load(args.dataset, args.data_root)
    for seed in args.seeds:  # seed-major; both schedules of a seed share its pretrained autoencoder
        for name in args.methods:
            for schedule in values:
                key = f"{name}|{schedule}|{seed}"
                if key in cells and "error" not in cells[key]:
                    continue
                over = table3.budget_overrides(get_method(name), args.dataset, args.max_pretrain_epochs,
                                               args.max_cluster_steps)
                cell = table3.run_cell(name, args.dataset, seed, x, y, cache=cache, progress=args.progress,
                                       overrides={**over, args.setting: VALUE.get(args.setting, str)(schedule)},
                                       log_key=key,
                                       checkpoint_dir=table3.checkpoint_path(path, key))
                cells[key] = {**cell, "schedule": schedule}
                table3.save_grid(path, state, report)
    print(report(cells))
    return 0


if __name__ == "__main__":
    sys.exit(table3.main_with_clear_errors(main))
