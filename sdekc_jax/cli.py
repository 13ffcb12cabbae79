"""Command line: ``sdekc run --method NAME`` trains a method (default SDEKC) on a data set and reports
ACC/NMI/ARI beside the paper."""
from __future__ import annotations

import argparse
import datetime as _dt
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from .config import SKIP_PRESETS, paper_result

QUICK_MAX_IMAGES = 10_000


def quick_budget(n: int, image_shape) -> dict:
    """``--quick``: a budget of about a minute on 2 CPU cores on any data set. USPS (9,298 16x16
    images) gets 10 pretraining epochs and 20 clustering iterations; larger data sets use their
    first 10,000 images, and larger images fewer epochs and iterations, in proportion to the
    pixels per epoch (Fashion-MNIST: 10,000 images, 3 epochs, 7 iterations)."""
    n_q = min(int(n), QUICK_MAX_IMAGES)
    pixels = int(image_shape[0]) * int(image_shape[1])
    epochs = int(np.clip(round(10 * 9298 * 256 / (n_q * pixels)), 2, 10))
    iters = int(np.clip(round(20 * 256 / pixels), 5, 20))
    return {"n_images": n_q, "pretrain_epochs": epochs, "max_iters": iters}


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


def _table(dataset: str, method: str, runs: list[dict], mean: dict, std: dict, quick: bool = False) -> str:
    lines = ["| seed | ACC | NMI | ARI | seconds | iterations |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['seed']} | {r['acc']:.4f} | {r['nmi']:.4f} | {r['ari']:.4f} | {r['seconds']:.1f} | {r['n_iter']} |")
    lines.append(f"| mean ± std | {mean['acc']:.4f} ± {std['acc']:.4f} | {mean['nmi']:.4f} ± {std['nmi']:.4f} | "
                 f"{mean['ari']:.4f} ± {std['ari']:.4f} | {mean['seconds']:.1f} | |")
    paper, table = paper_result(method, dataset)
    lines.append(f"| paper ({table}) | {paper[0]:.4f} | {paper[1]:.4f} | | | |" if paper else
                 f"| paper | {table} | | | | |")
    if quick:
        lines.append("| (quick budget: not comparable to the paper's row) | | | | | |")
    return "\n".join(lines)


def select_classes(x: np.ndarray, y: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The images of the listed classes, relabelled 0..len(classes)-1 in the order given."""
    present = set(np.unique(y).tolist())
    missing = [c for c in classes if c not in present]
    if missing or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"--classes needs at least two distinct labels of the data set {sorted(present)}; got {classes}")
    keep = np.isin(y, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return x[keep], np.asarray([remap[int(v)] for v in y[keep]])


def cmd_run(args: argparse.Namespace) -> int:
    from .cache import PretrainCache, default_cache_dir
    from .data import load_dataset
    from .io import _to_builtin, atomic_write_bytes, atomic_write_json
    from .methods import get_method, run, run_vmapped
    from .metrics import evaluate

    method = get_method(args.method)
    defaults = method.config(args.dataset)
    overrides = {}
    for name in ("pretrain_epochs", "max_iters", "batch_size", "steps_per_iter", "tol", "embedding_dim", "skips"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    config = method.config(args.dataset, **overrides)  # validates the names before any work
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    if args.resume and args.out is None:
        raise ValueError("--resume continues the run in --out DIR: pass the output folder of the run to continue")
    out = Path(args.out or f"results/{args.dataset}-{args.method}-{stamp}")
    _check_out_dir(out)
    ckpt_root = out / "checkpoints"
    earlier = (out / "results.json").exists() or (ckpt_root.is_dir() and any(ckpt_root.iterdir()))
    if earlier and not args.resume:
        raise ValueError(f"output folder {out} holds an earlier run (results.json or checkpoints/); pass --resume to "
                         f"continue it, or choose another --out")
    _enable_compilation_cache()
    cache_dir = default_cache_dir() if args.pretrain_cache is None else (
        None if args.pretrain_cache.lower() == "off" else args.pretrain_cache)
    cache = PretrainCache(cache_dir)

    print(f"output folder: {out}", file=sys.stderr)
    x, y = load_dataset(args.dataset, args.data_dir, args.subset)
    if args.classes is not None:
        x, y = select_classes(x, y, args.classes)
    quick = None
    if args.quick:
        quick = quick_budget(x.shape[0], x.shape[1:])
        x, y = x[:quick["n_images"]], y[:quick["n_images"]]
        for name in ("pretrain_epochs", "max_iters"):
            if name in defaults and getattr(args, name) is None:  # an explicit flag wins
                overrides[name] = quick[name]
        config = method.config(args.dataset, **overrides)
        print(f"quick budget ({quick['n_images']} images, {overrides.get('pretrain_epochs', 0)} pretraining epochs, "
              f"{overrides.get('max_iters', '-')} iterations): not comparable to the paper's row", file=sys.stderr)
    k = int(y.max()) + 1
    print(f"{args.dataset} ({args.subset}): {x.shape[0]} images {x.shape[1:]}, {k} clusters; "
          f"{args.method} ({args.arch}) config {config}", file=sys.stderr)
    header = {"dataset": args.dataset, "method": args.method, "arch": args.arch, "subset": args.subset,
              "classes": args.classes, "n_samples": int(x.shape[0]),
              "quick": None if quick is None else {**quick, "note": "quick budget: not comparable to the paper's row"}}
    runs = []
    if args.resume and (out / "results.json").exists():
        previous = json.loads((out / "results.json").read_text())
        differ = [k_ for k_ in header if previous.get(k_) != header[k_]]
        now = json.loads(json.dumps(config, default=_to_builtin))
        differ += [f"config.{k_}" for k_ in now if previous.get("config", {}).get(k_) != now[k_]]
        if differ:
            raise ValueError(f"--resume: {out / 'results.json'} was written with other settings "
                             f"({', '.join(differ)}); use the same command line, or another --out")
        runs = [r_ for r_ in previous["runs"] if r_["seed"] in args.seeds]
        done = sorted(r_["seed"] for r_ in runs)
        if done:
            print(f"resuming {out}: seeds {done} are finished", file=sys.stderr)
    def record(seed: int, r, seed_ckpt: Path | None) -> None:
        m = evaluate(y, r.labels)
        buf = io.BytesIO()
        np.save(buf, np.asarray(r.labels, np.int32))
        atomic_write_bytes(out / f"labels-seed{seed}.npy", buf.getvalue())
        seconds = r.timings["pretrain"] + r.timings["cluster"]
        runs.append({"seed": seed, **m, "seconds": seconds, "n_iter": r.n_iter, "converged": r.converged,
                     "pretrain_seconds": r.timings["pretrain"], "cluster_seconds": r.timings["cluster"],
                     "pretrain_cache_hit": r.pretrain_cache_hit,
                     **({"vmapped_seeds": r.timings["vmapped_seeds"]} if "vmapped_seeds" in r.timings else {})})
        print(f"seed {seed}: ACC {m['acc']:.4f} NMI {m['nmi']:.4f} ARI {m['ari']:.4f} ({seconds:.1f} s"
              f"{' (its share of the vmapped run)' if 'vmapped_seeds' in r.timings else ''}, {r.n_iter} iterations"
              f"{', pretraining from the cache' if r.pretrain_cache_hit else ''})", file=sys.stderr)
        if not r.converged:
            print(f"seed {seed}: did not converge: stopped at the iteration cap ({r.n_iter}); the labels are those "
                  f"of the last iteration", file=sys.stderr)
        mean, std = _summary(runs)
        cfg = dict(r.config)
        if "skips" in cfg:
            cfg["skip_preset"] = cfg["skips"] if isinstance(cfg["skips"], str) else None
            cfg["skip_weights"] = SKIP_PRESETS.get(cfg["skips"]) if isinstance(cfg["skips"], str) else cfg["skips"]
        atomic_write_json(out / "results.json", {
            **header, "config": cfg, "runs": runs, "mean": {k_: mean[k_] for k_ in ("acc", "nmi", "ari")},
            "std": {k_: std[k_] for k_ in ("acc", "nmi", "ari")},
        })
        if seed_ckpt is not None:
            shutil.rmtree(seed_ckpt, ignore_errors=True)  # the seed's result is saved: its checkpoints are done

    todo = [seed for seed in dict.fromkeys(args.seeds) if not any(r_["seed"] == seed for r_ in runs)]
    if args.vmap_seeds and todo:
        # one program for all unfinished seeds; its checkpoints are shared (and name the seeds)
        vm_ckpt = ckpt_root / ("vmap-seeds-" + "-".join(map(str, todo)))
        results = run_vmapped(args.method, x, k, seeds=todo, dataset=args.dataset, arch=args.arch, cache=cache,
                              verbose=not args.no_progress, checkpoint_dir=str(vm_ckpt),
                              checkpoint_every=args.checkpoint_every, **overrides)
        for seed, r in zip(todo, results):
            record(seed, r, None)
        shutil.rmtree(vm_ckpt, ignore_errors=True)
    for seed in ([] if args.vmap_seeds else todo):
        seed_ckpt = ckpt_root / f"seed{seed}"
        r = run(args.method, x, k, seed=seed, dataset=args.dataset, arch=args.arch, cache=cache,
                verbose=not args.no_progress, checkpoint_dir=str(seed_ckpt), checkpoint_every=args.checkpoint_every,
                **overrides)
        record(seed, r, seed_ckpt)
    if ckpt_root.is_dir() and not any(ckpt_root.iterdir()):
        ckpt_root.rmdir()
    runs.sort(key=lambda r_: args.seeds.index(r_["seed"]))
    mean, std = _summary(runs)
    print(_table(args.dataset, args.method, runs, mean, std, quick=quick is not None))
    print(f"\nwrote {out / 'results.json'}", file=sys.stderr)
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None ones (their help text says what None means)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .methods import METHODS

    p = argparse.ArgumentParser(prog="sdekc", description="SDEKC: deep embedded K-means clustering with skip connections (JAX)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and evaluate a method on a data set",
                       formatter_class=_HelpFormatter,
                       epilog="methods: " + "; ".join(f"{m.name}: {m.description}" for m in METHODS.values()))
    r.add_argument("--dataset", default="usps", choices=sorted(DATASETS))
    r.add_argument("--data-dir", default=None, help="folder with the data set's files (default: embedded copy / standard places)")
    r.add_argument("--subset", default="all", choices=["all", "train", "test"])
    r.add_argument("--classes", type=int, nargs="+", default=None,
                   help="keep only these labels (e.g. 0 1: a two-class set for --arch binary)")
    r.add_argument("--method", default="sdekc", choices=list(METHODS), help="see the list below")
    r.add_argument("--arch", default="default", choices=["default", "binary"],
                   help="binary: the Table 2 preset (conv 4-2-1, 3x3, tanh, 2-unit embedding); CAE methods only")
    r.add_argument("--skips", default=None, choices=sorted(SKIP_PRESETS),
                   help="CAE methods: skip weights (default: the method's; sdekc/sidcec: swapped=(0.001 enc, 0.999 dec); "
                        "paper-text=(0.999, 0.001); none=no skips)")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--pretrain-epochs", type=int, default=None, help="default: the method's (sdekc: 200)")
    r.add_argument("--max-iters", type=int, default=None,
                   help="clustering iterations (DEC family: refreshes of P) (default: the method's; sdekc: 1000)")
    r.add_argument("--batch-size", type=int, default=None, help="default: the method's (256)")
    r.add_argument("--steps-per-iter", type=int, default=None,
                   help="optimiser steps per iteration (DEC family: update_interval) (default: the method's; sdekc: 40)")
    r.add_argument("--tol", type=float, default=None, help="stop below this fraction of changed labels (default: the method's)")
    r.add_argument("--embedding-dim", type=int, default=None, help="default: the method's")
    r.add_argument("--quick", action="store_true",
                   help="a budget of about a minute on 2 CPU cores on any data set: at most 10,000 images, fewer "
                        "pretraining epochs and iterations (USPS: 10 and 20); not comparable to the paper")
    r.add_argument("--pretrain-cache", default=None,
                   help="folder of cached pretrained autoencoders, or 'off' (default: $SDEKC_JAX_PRETRAIN_CACHE or "
                        "~/.cache/sdekc_jax/pretrained)")
    r.add_argument("--out", default=None, help="output folder (default results/<dataset>-<method>-<timestamp>)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out: finished seeds are kept, an unfinished one continues from its "
                        "last checkpoint (same command line required)")
    r.add_argument("--vmap-seeds", action="store_true",
                   help="train all --seeds as one vmapped program (jax.vmap of the same run over the seeds' keys; "
                        "the results agree with seed-by-seed runs statistically, not bit for bit; seeds found in the "
                        "pretraining cache are read from it, the others are pretrained together and stored)")
    r.add_argument("--checkpoint-every", type=int, default=1,
                   help="save pretraining every N epochs and the clustering loop every N chunks of iterations "
                        "(in <out>/checkpoints/seed<k>/, removed when the seed's result is saved)")
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
