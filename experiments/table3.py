"""Table 3: every method x data set x seed, resumable, beside the paper's numbers.

    python experiments/table3.py --data-root ../shared/data --seeds 0 1 2 3 4 --out results/table3
    python experiments/table3.py --datasets usps --methods dekm sdekc --max-pretrain-epochs 50

Without ``--datasets`` the grid covers every Table 3 data set found locally: each folder of
``--data-root`` named after a data set (``mnist``, ``usps``, ``fashion-mnist``, ``coil20``,
``frgc``), the USPS copy embedded in the package, and Debian's Fashion-MNIST when installed.

Each finished (method, data set, seed) cell is written at once to ``<out>/table3.json`` (atomic
write) and skipped on the next run, so a long grid can be completed over several runs; a cell
that fails is recorded with its error and retried next time. Budgets are caps on the sources'
defaults (``--max-pretrain-epochs``, ``--max-cluster-steps``); every cell records the budget it
actually used and whether that is below its method's default. ``<out>/table3.md`` is rewritten
after every cell: mean ± std over the seeds, with the paper's values where we have them.
Autoencoders shared by several methods are pretrained once (the pretraining cache). A cell in
progress checkpoints into ``<out>/checkpoints/``, so a run killed mid-cell continues that cell.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdekc_jax.cache import PretrainCache, default_cache_dir  # noqa: E402
from sdekc_jax.cli import _check_out_dir, _enable_compilation_cache  # noqa: E402
from sdekc_jax.config import TABLE3_DATASETS, paper_result  # noqa: E402
from sdekc_jax.data import DEBIAN_FASHION_MNIST_DIR, load_dataset  # noqa: E402
from sdekc_jax.io import atomic_write_json, atomic_write_text  # noqa: E402
from sdekc_jax.methods import METHODS, get_method, run  # noqa: E402
from sdekc_jax.metrics import evaluate, run_flags  # noqa: E402


def budget_overrides(method, dataset: str, max_pretrain_epochs: int | None, max_cluster_steps: int | None) -> dict:
    """Overrides that cap the method's default budget; {} when the caps don't bind."""
    cfg = method.config(dataset)
    out = {}
    if max_pretrain_epochs is not None and "pretrain_epochs" in cfg and cfg["pretrain_epochs"] > max_pretrain_epochs:
        out["pretrain_epochs"] = max_pretrain_epochs
    if max_cluster_steps is not None and "max_iters" in cfg:
        cap = math.ceil(max_cluster_steps / cfg["steps_per_iter"]) + 1  # +1: the final refresh takes no steps
        if cfg["max_iters"] > cap:
            out["max_iters"] = cap
    return out


def available_datasets(data_root: str | None) -> list[str]:
    """The Table 3 data sets that can be loaded here: those with a folder under ``data_root``,
    USPS (embedded in the package) and Fashion-MNIST when Debian's copy is installed."""
    found = []
    for name in TABLE3_DATASETS:
        if data_root is not None and (Path(data_root) / name).is_dir():
            found.append(name)
        elif name == "usps" or (name == "fashion-mnist" and DEBIAN_FASHION_MNIST_DIR.is_dir()):
            found.append(name)
    return found


def check_data_root(data_root: str | None) -> None:
    """A ``--data-root`` that was given must be a folder: a typo is an error, not a silent switch
    to the loaders' defaults."""
    if data_root is not None and not Path(data_root).is_dir():
        raise SystemExit(f"error: --data-root {data_root} is not a folder")


def load(dataset: str, data_root: str | None, required: bool = True):
    """``dataset`` from ``<data_root>/<dataset>``, or from the loader's default without
    ``data_root``. With a ``data_root`` that has no such folder: an error when ``required``,
    else the loader's default (the grids' automatic data-set list includes the embedded USPS)."""
    check_data_root(data_root)
    data_dir = None
    if data_root is not None:
        if (Path(data_root) / dataset).is_dir():
            data_dir = str(Path(data_root) / dataset)
        elif required:
            found = sorted(p.name for p in Path(data_root).iterdir() if p.is_dir())
            raise SystemExit(f"error: --data-root {data_root} has no folder {dataset!r} (it has: "
                             f"{', '.join(found) or 'none'})")
    return load_dataset(dataset, data_dir, "all")


def default_out(name: str) -> str:
    """A new folder ``results/<name>-<date>-<time>`` (default outputs never overwrite committed
    results; pass ``--out`` to resume or to choose)."""
    return f"results/{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def main_with_clear_errors(main_fn, argv=None) -> int:
    """``main_fn(argv)``, with a bad input reported as one line (``error: ...``, exit status 2)
    instead of a traceback."""
    try:
        status = main_fn(argv)
        return status if isinstance(status, int) else 0
    except (ValueError, FileNotFoundError, PermissionError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def markdown(cells: dict) -> str:
    rows = {}
    for c in cells.values():
        if "error" not in c:
            rows.setdefault((c["dataset"], c["method"]), []).append(c)
    order = list(METHODS)
    lines = ["| data set | method | seeds | ACC | NMI | ARI | seconds (pretrain + cluster) | budget | paper ACC / NMI | ΔACC |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (ds, m), cs in sorted(rows.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else 99)):
        f = lambda k: f"{np.mean([c[k] for c in cs]):.4f} ± {np.std([c[k] for c in cs]):.4f}"
        secs = np.mean([c["seconds"] for c in cs])
        budget = "; ".join(sorted({cell_budget(c)[0] for c in cs}))
        paper, _ = paper_result(m, ds)
        p = f"{paper[0]:.4f} / {paper[1]:.4f}" if paper else "not in the paper"
        d = f"{np.mean([c['acc'] for c in cs]) - paper[0]:+.4f}" if paper else ""
        lines.append(f"| {ds} | {m} | {len(cs)} | {f('acc')} | {f('nmi')} | {f('ari')} | {secs:.0f} | {budget} | {p} | {d} |")
    errors = [c for c in cells.values() if "error" in c]
    if errors:
        lines += ["", "Failed cells (retried on the next run):", ""]
        lines += [f"- {c['method']} / {c['dataset']} / seed {c['seed']}: {c['error']}" for c in errors]
    return "\n".join(lines) + "\n"


def cell_budget(cell: dict) -> tuple[str, bool]:
    """(description, reduced) of the budget a finished cell used, from its recorded config."""
    method = get_method(cell["method"])
    cfg = method.config(cell["dataset"])
    used = {k: cell["config"][k] for k in ("pretrain_epochs", "max_iters") if k in cfg and cell["config"][k] != cfg[k]}
    reduced = "pretrain_epochs" in used or ("max_iters" in used and not cell["converged"])
    return describe_budget(method, cell["dataset"], used, cell["converged"]), reduced


def describe_budget(method, dataset: str, used: dict, converged: bool = False) -> str:
    cfg = method.config(dataset)
    parts = []
    if "pretrain_epochs" in cfg:
        e = used.get("pretrain_epochs", cfg["pretrain_epochs"])
        parts.append(f"pretrain {e}" + (f"/{cfg['pretrain_epochs']} epochs" if e != cfg["pretrain_epochs"] else " epochs"))
    if "max_iters" in cfg:
        it = used.get("max_iters", cfg["max_iters"])
        steps = (it - 1) * cfg["steps_per_iter"]
        full = (cfg["max_iters"] - 1) * cfg["steps_per_iter"]
        capped = it != cfg["max_iters"]
        parts.append(f"≤{steps} steps" + (f" (of {full}; converged within the cap)" if capped and converged else
                                          f" (of {full})" if capped else ""))
    return ", ".join(parts) or "full"


def add_common_args(p, name: str) -> None:
    """The flags every grid runner shares (budgets, output, cache, progress, report)."""
    p.add_argument("--max-pretrain-epochs", type=int, default=None, help="cap on every method's pretraining epochs")
    p.add_argument("--max-cluster-steps", type=int, default=None, help="cap on the clustering phase's optimiser steps")
    p.add_argument("--out", default=None, help=f"output folder (default: a new results/{name}-<date>-<time>; "
                                                "pass the same --out to resume)")
    p.add_argument("--cache-dir", default=None, help="pretraining cache (default: SDEKC_JAX_PRETRAIN_CACHE or ~/.cache/sdekc_jax/pretrained)")
    p.add_argument("--progress", action="store_true", help="progress bars for each cell")
    p.add_argument("--report", action="store_true", help=f"only rewrite <out>/{name}.md from <out>/{name}.json")


def open_grid(out: str | None, name: str) -> tuple[Path, dict]:
    """``(<out>/<name>.json, its state)``; the state is ``{"cells": {}}`` for a new grid. ``out``
    None: a new folder (:func:`default_out`)."""
    folder = Path(out or default_out(name.replace("_", "-")))
    print(f"output folder: {folder}", file=sys.stderr, flush=True)
    _check_out_dir(folder)  # a clear error (not a traceback) when it cannot be written
    path = folder / f"{name}.json"
    return path, (json.loads(path.read_text()) if path.exists() else {"cells": {}})


def save_grid(path: Path, state: dict, markdown_fn) -> str:
    """Write the state and its Markdown report (both atomically); returns the report."""
    md = markdown_fn(state["cells"])
    atomic_write_json(path, state)
    atomic_write_text(path.with_suffix(".md"), md)
    return md


def checkpoint_path(grid_path: Path, key: str) -> Path:
    """``<out>/checkpoints/<method>-<data set>-<seed>/`` for the cell ``key``."""
    return grid_path.parent / "checkpoints" / "".join(c if c.isalnum() or c in "-_." else "-" for c in key)


def run_cell(name: str, dataset: str, seed: int, x, y, *, cache, progress: bool, overrides: dict, log_key: str,
             checkpoint_dir: Path | None = None, **run_kwargs) -> dict:
    """One (method, data set, seed) cell: its metrics, timings and config, or its error.

    With ``checkpoint_dir`` the cell checkpoints its pretraining and clustering there, so a grid
    killed in the middle of a long cell continues that cell where it stopped; the folder is
    removed once the cell has finished."""
    if checkpoint_dir is not None:
        run_kwargs["checkpoint_dir"] = str(checkpoint_dir)
    t0 = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {log_key} {overrides or 'default budget'}", file=sys.stderr, flush=True)
    k = int(y.max()) + 1
    try:
        r = run(name, x, k, seed=seed, dataset=dataset, cache=cache, verbose=progress, **run_kwargs, **overrides)
    except Exception as e:  # keep going; the cell is retried next run
        traceback.print_exc()
        return {"method": name, "dataset": dataset, "seed": seed, "error": f"{type(e).__name__}: {e}"}
    m = evaluate(y, r.labels)
    cell = {
        "method": name, "dataset": dataset, "seed": seed, **m,
        "seconds": r.timings["pretrain"] + r.timings["cluster"],
        "pretrain_seconds": r.timings["pretrain"], "cluster_seconds": r.timings["cluster"],
        "pretrain_cache_hit": r.pretrain_cache_hit, "n_iter": r.n_iter, "converged": r.converged,
        **run_flags(r.labels, k, r.converged, clustering=get_method(name).clustering != "kmeans"),
        "pretrain_final_mse": (float(r.history["pretrain_loss"][-1]) if len(r.history.get("pretrain_loss", ())) else None),
        "config": r.config,
        "wall_seconds": time.perf_counter() - t0,
    }
    # a step cap within which the run converged reduced nothing
    cell["budget"], cell["reduced_budget"] = cell_budget(cell)
    if checkpoint_dir is not None:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    print(f"    ACC {m['acc']:.4f} NMI {m['nmi']:.4f} ARI {m['ari']:.4f}  "
          f"pretrain {r.timings['pretrain']:.0f} s{' (cached)' if r.pretrain_cache_hit else ''}, "
          f"cluster {r.timings['cluster']:.0f} s, {r.n_iter} it{' converged' if r.converged else ''}"
          + "".join(f"; {f}" for f in cell["flags"]),
          file=sys.stderr, flush=True)
    return cell


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=None,
                   help="default: every Table 3 data set found (a folder under --data-root, the embedded USPS, "
                        "Debian's Fashion-MNIST)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--data-root", default=None, help="folder with one sub-folder per data set (default: each loader's default)")
    add_common_args(p, "table3")
    args = p.parse_args(argv)

    check_data_root(args.data_root)
    _enable_compilation_cache()
    path, state = open_grid(args.out, "table3")
    cells = state["cells"]
    if args.report:
        print(save_grid(path, state, markdown))
        return 0
    args_datasets = args.datasets  # named on the command line: each must be in --data-root when one is given
    if args.datasets is None:
        args.datasets = available_datasets(args.data_root)
        missing = [d for d in TABLE3_DATASETS if d not in args.datasets]
        print(f"data sets: {', '.join(args.datasets)}" + (f" (not found: {', '.join(missing)})" if missing else ""),
              file=sys.stderr, flush=True)
    cache = PretrainCache(args.cache_dir or default_cache_dir())
    for dataset in args.datasets:
        x, y = load(dataset, args.data_root, required=dataset in (args_datasets or ()))
        for seed in args.seeds:  # seed-major: a partial run covers every method
            for name in args.methods:
                key = f"{name}|{dataset}|{seed}"
                if key in cells and "error" not in cells[key]:
                    continue
                over = budget_overrides(get_method(name), dataset, args.max_pretrain_epochs, args.max_cluster_steps)
                cells[key] = run_cell(name, dataset, seed, x, y, cache=cache, progress=args.progress,
                                      overrides=over, log_key=key, checkpoint_dir=checkpoint_path(path, key))
                save_grid(path, state, markdown)
    print(markdown(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main_with_clear_errors(main))
