"""Command line: ``sdekc run`` trains SDEKC on a data set and reports ACC/NMI/ARI beside the paper."""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from pathlib import Path

import numpy as np

from .config import DEFAULT_SKIPS, PAPER_PROTOCOL, PAPER_RESULTS, SKIP_PRESETS

QUICK = dict(pretrain_epochs=10, max_iters=20)  # about a minute on 2 CPU cores for USPS


def _enable_compilation_cache() -> None:
    import jax

    cache = os.environ.get("SDEKC_JAX_CACHE", str(Path.home() / ".cache" / "sdekc_jax" / "xla"))
    if cache and cache.lower() != "off":
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _check_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise SystemExit(f"error: output folder {out} is not writable ({e.strerror}); pass --out DIR") from None


def _summary(runs: list[dict]) -> tuple[dict, dict]:
    keys = ("acc", "nmi", "ari", "seconds")
    mean = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    std = {k: float(np.std([r[k] for r in runs])) for k in keys}
    return mean, std


def _table(dataset: str, method: str, runs: list[dict], mean: dict, std: dict) -> str:
    lines = ["| seed | ACC | NMI | ARI | seconds | iterations |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['seed']} | {r['acc']:.4f} | {r['nmi']:.4f} | {r['ari']:.4f} | {r['seconds']:.1f} | {r['n_iter']} |")
    lines.append(f"| mean ± std | {mean['acc']:.4f} ± {std['acc']:.4f} | {mean['nmi']:.4f} ± {std['nmi']:.4f} | "
                 f"{mean['ari']:.4f} ± {std['ari']:.4f} | {mean['seconds']:.1f} | |")
    paper = PAPER_RESULTS.get(method, {}).get(dataset)
    lines.append(f"| paper (Table 3) | {paper[0]:.4f} | {paper[1]:.4f} | | | |" if paper else
                 f"| paper (Table 3) | not transcribed for {dataset} | | | | |")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .estimator import SDEKC
    from .io import atomic_write_json
    from .metrics import evaluate

    config = dict(PAPER_PROTOCOL)
    if args.quick:
        config.update(QUICK)
    for name in ("pretrain_epochs", "max_iters", "batch_size", "steps_per_iter", "tol"):
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    config["skip_weights"] = args.skips
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"results/{args.dataset}-{args.method}-{stamp}")
    _check_out_dir(out)
    _enable_compilation_cache()

    x, y = load_dataset(args.dataset, args.data_dir, args.subset)
    k = int(y.max()) + 1
    print(f"{args.dataset} ({args.subset}): {x.shape[0]} images {x.shape[1:]}, {k} clusters; config {config}", file=sys.stderr)
    runs = []
    for seed in args.seeds:
        est = SDEKC(k, seed=seed, verbose=not args.no_progress, **config)
        est.fit(x)
        m = evaluate(y, est.labels_)
        seconds = est.timings_["pretrain"] + est.timings_["cluster"]
        runs.append({"seed": seed, **m, "seconds": seconds, "n_iter": est.n_iter_, "converged": est.converged_,
                     "pretrain_seconds": est.timings_["pretrain"], "cluster_seconds": est.timings_["cluster"]})
        print(f"seed {seed}: ACC {m['acc']:.4f} NMI {m['nmi']:.4f} ARI {m['ari']:.4f} "
              f"({seconds:.1f} s, {est.n_iter_} iterations)", file=sys.stderr)
        mean, std = _summary(runs)
        atomic_write_json(out / "results.json", {
            "dataset": args.dataset, "method": args.method, "subset": args.subset,
            "config": {**config, "skip_weights": SKIP_PRESETS.get(args.skips), "skip_preset": args.skips},
            "runs": runs, "mean": {k_: mean[k_] for k_ in ("acc", "nmi", "ari")},
            "std": {k_: std[k_] for k_ in ("acc", "nmi", "ari")},
        })
    print(_table(args.dataset, args.method, runs, mean, std))
    print(f"\nwrote {out / 'results.json'}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS

    p = argparse.ArgumentParser(prog="sdekc", description="SDEKC: deep embedded K-means clustering with skip connections (JAX)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and evaluate on a data set", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--dataset", default="usps", choices=sorted(DATASETS))
    r.add_argument("--data-dir", default=None, help="folder with the data set's files (default: embedded copy / standard places)")
    r.add_argument("--subset", default="all", choices=["all", "train", "test"])
    r.add_argument("--method", default="sdekc", choices=["sdekc"])
    r.add_argument("--skips", default=DEFAULT_SKIPS, choices=sorted(SKIP_PRESETS),
                   help="skip weights: swapped=(0.001 enc, 0.999 dec), paper-text=(0.999, 0.001), none=DEKM's CAE")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--pretrain-epochs", type=int, default=None, help=f"default {PAPER_PROTOCOL['pretrain_epochs']}")
    r.add_argument("--max-iters", type=int, default=None, help=f"default {PAPER_PROTOCOL['max_iters']}")
    r.add_argument("--batch-size", type=int, default=None, help=f"default {PAPER_PROTOCOL['batch_size']}")
    r.add_argument("--steps-per-iter", type=int, default=None, help=f"default {PAPER_PROTOCOL['steps_per_iter']}")
    r.add_argument("--tol", type=float, default=None, help=f"default {PAPER_PROTOCOL['tol']}")
    r.add_argument("--quick", action="store_true", help=f"small budget ({QUICK}), about a minute on 2 CPU cores")
    r.add_argument("--out", default=None, help="output folder (default results/<dataset>-<method>-<timestamp>)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
