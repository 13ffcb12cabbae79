"""Command line: ``sdekc run --method NAME`` trains a method (default SDEKC) on a data set and reports
ACC/NMI/ARI beside the paper."""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import json
import os
import shlex
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
        probe = out / f".write-test-{os.getpid()}"  # one per process: several may share the folder
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
    lines = ["| seed | ACC | NMI | ARI | seconds | iterations | flags |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['seed']} | {r['acc']:.4f} | {r['nmi']:.4f} | {r['ari']:.4f} | {r['seconds']:.1f} | "
                     f"{r['n_iter']} | {'; '.join(r.get('flags', []))} |")
    flagged = sum(bool(r.get("flags")) for r in runs)
    lines.append(f"| mean ± std | {mean['acc']:.4f} ± {std['acc']:.4f} | {mean['nmi']:.4f} ± {std['nmi']:.4f} | "
                 f"{mean['ari']:.4f} ± {std['ari']:.4f} | {mean['seconds']:.1f} | | "
                 f"{f'{flagged} of {len(runs)} runs flagged' if flagged else ''} |")
    paper, table = paper_result(method, dataset)
    lines.append(f"| paper ({table}) | {paper[0]:.4f} | {paper[1]:.4f} | | | | |" if paper else
                 f"| paper | {table} | | | | | |")
    if quick:
        lines.append("| (quick budget: not comparable to the paper's row) | | | | | | |")
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


def _devices(flag: str | None, jax) -> list | None:
    """The devices of ``--devices`` (None: no mesh, one device). A multi-process run uses every
    device of every process unless told otherwise."""
    if flag is None and jax.process_count() == 1:
        return None
    available = jax.devices()
    n = len(available) if flag in (None, "all") else int(flag)
    if n > len(available):
        raise ValueError(f"--devices {n}: this run has {len(available)} devices ({jax.process_count()} processes); "
                         f"pass --devices all, or force more CPU devices with "
                         f"XLA_FLAGS=--xla_force_host_platform_device_count=N")
    if n < len(available) and jax.process_count() > 1:
        raise ValueError(f"--devices {n}: a multi-process run uses every device ({len(available)}); pass --devices all")
    return available[:n]


def cmd_run(args: argparse.Namespace) -> int:
    from .cache import PretrainCache, default_cache_dir
    from .data import load_dataset
    from .io import _to_builtin, atomic_write_bytes, atomic_write_json
    from .config import check_setting
    from .methods import get_method, run, run_vmapped
    from .metrics import evaluate, run_flags
    from .parallel import data_mesh, data_parallel, data_placement, initialize_distributed, split_runs
    from .validation import check_seeds

    method = get_method(args.method)
    defaults = method.config(args.dataset)
    # every value checked before any work, with the flag named (config.check_setting's ranges)
    args.seeds = check_seeds(args.seeds, "--seeds")
    check_setting("checkpoint_every", args.checkpoint_every, "--checkpoint-every")
    overrides = {}
    for name in ("pretrain_epochs", "max_iters", "batch_size", "steps_per_iter", "tol", "embedding_dim", "skips",
                 "precision"):
        if getattr(args, name) is not None:
            overrides[name] = check_setting(name, getattr(args, name), "--" + name.replace("_", "-"))
    config = method.config(args.dataset, **overrides)  # validates the names before any work
    if args.devices is not None and args.devices != "all" and not (args.devices.isdigit() and int(args.devices) >= 1):
        raise ValueError(f"--devices must be an integer >= 1 or 'all', got {args.devices!r}")
    if args.run_placement == "sharded" and not args.vmap_seeds:
        raise ValueError("--run-placement sharded splits the seeds of --vmap-seeds over the devices: add --vmap-seeds")
    initialize_distributed(args.coordinator, args.num_processes, args.process_id)  # before any other use of JAX
    import jax

    main_process = jax.process_index() == 0  # results and progress come from process 0 only
    say = print if main_process else (lambda *a, **k: None)
    devices = _devices(args.devices, jax)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.resume and args.out is None:
        raise ValueError("--resume continues the run in --out DIR: pass the output folder of the run to continue")
    if jax.process_count() > 1 and args.out is None:
        raise ValueError("a multi-process run needs --out DIR, the same folder for every process (for its checkpoints)")
    out = Path(args.out or f"results/{args.dataset}-{args.method}-{stamp}")
    _check_out_dir(out)
    args.out_dir = out  # for the interrupt message
    ckpt_root = out / "checkpoints"
    earlier = (out / "results.json").exists() or (ckpt_root.is_dir() and any(ckpt_root.iterdir()))
    if earlier and not args.resume:
        raise ValueError(f"output folder {out} holds an earlier run (results.json or checkpoints/); pass --resume to "
                         f"continue it, or choose another --out")
    _enable_compilation_cache()
    cache_dir = default_cache_dir() if args.pretrain_cache is None else (
        None if args.pretrain_cache.lower() == "off" else args.pretrain_cache)
    cache = PretrainCache(cache_dir)

    say(f"output folder: {out}", file=sys.stderr)
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
        say(f"quick budget ({quick['n_images']} images, {overrides.get('pretrain_epochs', 0)} pretraining epochs, "
              f"{overrides.get('max_iters', '-')} iterations): not comparable to the paper's row", file=sys.stderr)
    k = int(y.max()) + 1
    say(f"{args.dataset} ({args.subset}): {x.shape[0]} images {x.shape[1:]}, {k} clusters; "
          f"{args.method} ({args.arch}) config {config}", file=sys.stderr)
    header = {"dataset": args.dataset, "method": args.method, "arch": args.arch, "subset": args.subset,
              "classes": args.classes, "n_samples": int(x.shape[0]),
              "quick": None if quick is None else {**quick, "note": "quick budget: not comparable to the paper's row"}}
    runs = []
    if args.resume and (out / "results.json").exists():
        try:
            previous = json.loads((out / "results.json").read_text())
            if not isinstance(previous, dict) or not isinstance(previous.get("runs"), list):
                raise ValueError("no list of runs")
        except (OSError, ValueError) as e:  # never overwrite results we cannot read
            raise ValueError(f"--resume: {out / 'results.json'} is unreadable ({e}); it is left as it is: repair or "
                             f"move it, or choose another --out") from None
        differ = [k_ for k_ in header if previous.get(k_) != header[k_]]
        now = json.loads(json.dumps(config, default=_to_builtin))
        differ += [f"config.{k_}" for k_ in now if previous.get("config", {}).get(k_) != now[k_]]
        if differ:
            raise ValueError(f"--resume: {out / 'results.json'} was written with other settings "
                             f"({', '.join(differ)}); use the same command line, or another --out")
        runs = list(previous["runs"])  # every finished seed is kept, asked for again or not
        done = [r_["seed"] for r_ in runs]
        if done:
            say(f"resuming {out}: seeds {done} are finished and kept", file=sys.stderr)
    def record(seed: int, r, seed_ckpt: Path | None) -> None:
        m = evaluate(y, r.labels)
        buf = io.BytesIO()
        np.save(buf, np.asarray(r.labels, np.int32))
        if main_process:
            atomic_write_bytes(out / f"labels-seed{seed}.npy", buf.getvalue())
        seconds = r.timings["pretrain"] + r.timings["cluster"]
        flags = run_flags(r.labels, k, r.converged, clustering=method.clustering != "kmeans")
        runs.append({"seed": seed, **m, "seconds": seconds, "n_iter": r.n_iter, "converged": r.converged, **flags,
                     "pretrain_seconds": r.timings["pretrain"], "cluster_seconds": r.timings["cluster"],
                     "pretrain_cache_hit": r.pretrain_cache_hit,
                     **({"vmapped_seeds": r.timings["vmapped_seeds"]} if "vmapped_seeds" in r.timings else {})})
        say(f"seed {seed}: ACC {m['acc']:.4f} NMI {m['nmi']:.4f} ARI {m['ari']:.4f} ({seconds:.1f} s"
              f"{' (its share of the vmapped run)' if 'vmapped_seeds' in r.timings else ''}, {r.n_iter} iterations"
              f"{', pretraining from the cache' if r.pretrain_cache_hit else ''})", file=sys.stderr)
        if not r.converged:
            say(f"seed {seed}: did not converge: stopped at the iteration cap ({r.n_iter}); the labels are those "
                  f"of the last iteration", file=sys.stderr)
        if flags["clusters_used"] < k:
            say(f"seed {seed}: degenerate result: the labels use {flags['clusters_used']} of {k} clusters",
                  file=sys.stderr)
        mean, std = _summary(runs)
        cfg = dict(r.config)
        if "skips" in cfg:
            cfg["skip_preset"] = cfg["skips"] if isinstance(cfg["skips"], str) else None
            cfg["skip_weights"] = SKIP_PRESETS.get(cfg["skips"]) if isinstance(cfg["skips"], str) else cfg["skips"]
        if not main_process:
            return
        atomic_write_json(out / "results.json", {
            **header, "config": cfg, "run_config": r.run_config.to_dict() if r.run_config is not None else None,
            "runs": runs, "mean": {k_: mean[k_] for k_ in ("acc", "nmi", "ari")},
            "std": {k_: std[k_] for k_ in ("acc", "nmi", "ari")},
            "flagged_runs": sum(bool(r_.get("flags")) for r_ in runs),
            "parallel": {"devices": len(devices) if devices else 1, "processes": jax.process_count(),
                         **({"data": args.data_placement, "runs": run_layout} if devices else {})},
        })
        if seed_ckpt is not None:
            shutil.rmtree(seed_ckpt, ignore_errors=True)  # (process 0 only: the others returned above)  # the seed's result is saved: its checkpoints are done

    verbose = not args.no_progress and main_process
    mesh = (lambda: data_parallel(data_mesh(devices), data=args.data_placement, runs=args.run_placement)) \
        if devices else contextlib.nullcontext
    todo = [seed for seed in dict.fromkeys(args.seeds) if not any(r_["seed"] == seed for r_ in runs)]
    run_layout = None  # with --devices: "sharded" (the seeds split over the devices) or "replicated"
    if devices:
        with mesh():  # (raises here, before any work, if --run-placement sharded cannot split the seeds)
            split = args.vmap_seeds and bool(todo) and split_runs(len(todo), data_placement(4 * x.size) == "sharded")
        run_layout = "sharded" if split else "replicated"
        say(f"data-parallel over {len(devices)} devices ({jax.process_count()} processes): "
            f"{', '.join(sorted({d.platform for d in devices}))}"
            + (f"; the {len(todo)} seeds split over them" if split else ""), file=sys.stderr)
    if args.vmap_seeds and todo:
        # one program for all unfinished seeds; its checkpoints are shared (and name the seeds)
        vm_ckpt = ckpt_root / ("vmap-seeds-" + "-".join(map(str, todo)))
        with mesh():
            results = run_vmapped(args.method, x, k, seeds=todo, dataset=args.dataset, arch=args.arch, cache=cache,
                                  verbose=verbose, checkpoint_dir=str(vm_ckpt),
                                  checkpoint_every=args.checkpoint_every, **overrides)
        for seed, r in zip(todo, results):
            record(seed, r, None)
        if main_process:
            shutil.rmtree(vm_ckpt, ignore_errors=True)
    for seed in ([] if args.vmap_seeds else todo):
        seed_ckpt = ckpt_root / f"seed{seed}"
        with mesh():
            r = run(args.method, x, k, seed=seed, dataset=args.dataset, arch=args.arch, cache=cache,
                    verbose=verbose, checkpoint_dir=str(seed_ckpt), checkpoint_every=args.checkpoint_every, **overrides)
        record(seed, r, seed_ckpt)
    if main_process and ckpt_root.is_dir() and not any(ckpt_root.iterdir()):
        ckpt_root.rmdir()
    mean, std = _summary(runs)
    say(_table(args.dataset, args.method, runs, mean, std, quick=quick is not None))
    say(f"\nwrote {out / 'results.json'}", file=sys.stderr)
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
    r.add_argument("--precision", default=None, choices=["float32", "bf16"],
                   help="bf16: convolutions and dense layers compute in bfloat16 (parameters, optimiser state, "
                        "losses and K-means stay float32); methods with an autoencoder (default: float32)")
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
                   help="continue the run in --out: every finished seed is kept (other --seeds are added), an unfinished "
                        "one continues from its last checkpoint (same settings required)")
    r.add_argument("--vmap-seeds", action="store_true",
                   help="train all --seeds as one vmapped program (jax.vmap of the same run over the seeds' keys; "
                        "the results agree with seed-by-seed runs statistically, not bit for bit; seeds found in the "
                        "pretraining cache are read from it, the others are pretrained together and stored)")
    r.add_argument("--checkpoint-every", type=int, default=1,
                   help="save pretraining every N epochs and the clustering loop every N chunks of iterations "
                        "(in <out>/checkpoints/seed<k>/, removed when the seed's result is saved)")
    r.add_argument("--devices", default=None,
                   help="train data-parallel over N devices, or 'all' (each mini-batch and the embedding sharded "
                        "over them; default: one device, or every device of a multi-process run)")
    r.add_argument("--data-placement", choices=("auto", "replicated", "sharded"), default="auto",
                   help="with --devices: the data set on every device ('replicated': faster while it fits) or its "
                        "rows split over them ('sharded': each device holds n / devices rows); 'auto' (default): "
                        "sharded above 1 GiB of float32 data")
    r.add_argument("--run-placement", choices=("auto", "replicated", "sharded"), default="auto",
                   help="with --devices and --vmap-seeds: split the seeds over the devices ('sharded': each device "
                        "trains seeds / devices whole seeds, no communication in a training step; the seeds must "
                        "divide evenly and the data be replicated) or run every seed on every device with its "
                        "mini-batches sharded ('replicated'); 'auto' (default): split where the seeds divide evenly")
    r.add_argument("--coordinator", default=None,
                   help="join a multi-process run (jax.distributed): HOST:PORT of process 0, with --num-processes "
                        "and --process-id; 'auto' where JAX finds them itself (Cloud TPU). Results and progress "
                        "come from process 0")
    r.add_argument("--num-processes", type=int, default=None, help="the number of processes (with --coordinator)")
    r.add_argument("--process-id", type=int, default=None, help="this process's id, 0..N-1 (with --coordinator)")
    r.set_defaults(func=cmd_run)
    return p


def resume_command(argv: list[str], out: Path) -> str:
    """The command line that continues an interrupted ``sdekc`` command ``argv`` in ``out``."""
    argv = list(argv)
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        argv += ["--out", str(out)]
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["sdekc", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # one line: where the results are and how to go on
        out = getattr(args, "out_dir", None)
        if out is None:
            print("\ninterrupted before any result was saved", file=sys.stderr)
        else:
            print(f"\ninterrupted: finished seeds are in {out / 'results.json'}, the unfinished one continues from "
                  f"{out / 'checkpoints'}; go on with: {resume_command(argv, out)}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
