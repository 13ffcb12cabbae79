"""Table 2: IDCEC vs SIDCEC with the binary preset on a two-class data set, resumable.

    python experiments/table2.py --data-root ../shared/data --seeds 0 1 2 3 4 --out results/table2

The paper runs this on its seismic data (9,200 x 16x48, two classes). When ``<data-root>/seismic``
exists (``x.npy``/``y.npy`` or one ``.npz``, see ``sdekc_jax.data``) that is the data set;
otherwise the runner falls back to a two-class subset of another data set (``--dataset``,
``--classes``; default USPS digits 3 vs 5) and says so in the table. The seismic data is not public.

Both methods use ``--arch binary`` (conv 4-2-1 3x3 stride 2, tanh, 2-unit embedding; the
Table 2 architecture) and differ only by the two weighted skips. Cells are kept in
``<out>/table2.json`` (atomic writes) and skipped on the next run; ``<out>/table2.md`` has mean ±
std over the seeds per method and SIDCEC - IDCEC per metric.
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
from sdekc_jax.cli import _enable_compilation_cache, select_classes  # noqa: E402
from sdekc_jax.config import PAPER_TABLE2  # noqa: E402
from sdekc_jax.methods import get_method  # noqa: E402

METHODS = ("idcec", "sidcec")
FALLBACK = ("usps", [3, 5])


def choose_data(data_root: str | None, dataset: str | None, classes: list[int] | None) -> tuple[str, list[int] | None]:
    """(data set, classes): seismic when present under ``data_root`` and nothing else was asked."""
    if dataset is None:
        if data_root is not None and (Path(data_root) / "seismic").is_dir():
            return "seismic", classes
        return FALLBACK[0], classes if classes is not None else list(FALLBACK[1])
    return dataset, classes


def data_label(dataset: str, classes: list[int] | None) -> str:
    return dataset if classes is None else f"{dataset} {' vs '.join(map(str, classes))}"


def markdown(cells: dict) -> str:
    rows: dict[tuple[str, str], list[dict]] = {}
    for c in cells.values():
        if "error" not in c:
            rows.setdefault((c["data"], c["method"]), []).append(c)
    ms = lambda cs, k: (float(np.mean([c[k] for c in cs])), float(np.std([c[k] for c in cs])))
    lines = ["| data | method | seeds | ACC | NMI | ARI | seconds | budget | paper ACC / NMI |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (data, m), cs in sorted(rows.items(), key=lambda kv: (kv[0][0], METHODS.index(kv[0][1]) if kv[0][1] in METHODS else 9)):
        cols = " | ".join("{:.4f} ± {:.4f}".format(*ms(cs, k)) for k in ("acc", "nmi", "ari"))
        budget = "; ".join(sorted({c["budget"] for c in cs}))
        paper = PAPER_TABLE2.get(m, {}).get(data)
        p = f"{paper[0]:.4f} / {paper[1]:.4f}" if paper else "not in the paper"
        lines.append(f"| {data} | {m} | {len(cs)} | {cols} | {np.mean([c['seconds'] for c in cs]):.0f} | {budget} | {p} |")
    diffs = []
    for data in sorted({d for d, _ in rows}):
        a, b = rows.get((data, "idcec")), rows.get((data, "sidcec"))
        if a and b:
            seeds = sorted({c["seed"] for c in a} & {c["seed"] for c in b})
            if seeds:
                by = lambda cs: {c["seed"]: c for c in cs}
                d = {k: [by(b)[s][k] - by(a)[s][k] for s in seeds] for k in ("acc", "nmi")}
                diffs.append(f"- {data}: SIDCEC − IDCEC over {len(seeds)} paired seeds: ACC {np.mean(d['acc']):+.4f} "
                             f"± {np.std(d['acc']):.4f}, NMI {np.mean(d['nmi']):+.4f} ± {np.std(d['nmi']):.4f}")
    if diffs:
        lines += ["", *diffs]
    errors = [c for c in cells.values() if "error" in c]
    if errors:
        lines += ["", "Failed cells (retried on the next run):", ""]
        lines += [f"- {c['method']} / {c['data']} / seed {c['seed']}: {c['error']}" for c in errors]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help="folder with one sub-folder per data set (seismic is used when present)")
    p.add_argument("--dataset", default=None, help="data set to use instead of seismic (default fallback: usps)")
    p.add_argument("--classes", type=int, nargs="+", default=None,
                   help="two labels of --dataset to cluster (default for the usps fallback: 3 5)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    table3.add_common_args(p, "table2")
    args = p.parse_args(argv)

    table3.check_data_root(args.data_root)
    path, state = table3.open_grid(args.out, "table2")
    cells = state["cells"]
    if args.report:
        print(table3.save_grid(path, state, markdown))
        return 0
    dataset, classes = choose_data(args.data_root, args.dataset, args.classes)
    x, y = table3.load(dataset, args.data_root)
    if classes is not None:
        x, y = select_classes(x, y, classes)
    if int(y.max()) + 1 != 2:
        p.error(f"Table 2 is a two-class experiment; {dataset} has {int(y.max()) + 1} classes: pass --classes A B")
    label = data_label(dataset, classes)
    print(f"Table 2 on {label}: {x.shape[0]} images of {x.shape[1:]}", file=sys.stderr, flush=True)
    _enable_compilation_cache()
    cache = PretrainCache(args.cache_dir or default_cache_dir())
    for seed in args.seeds:
        for name in args.methods:
            key = f"{name}|{label}|{seed}"
            if key in cells and "error" not in cells[key]:
                continue
            over = table3.budget_overrides(get_method(name), dataset, args.max_pretrain_epochs, args.max_cluster_steps)
            cell = table3.run_cell(name, dataset, seed, x, y, cache=cache, progress=args.progress, overrides=over,
                                   log_key=key, checkpoint_dir=table3.checkpoint_path(path, key), arch="binary")
            cells[key] = {**cell, "data": label, "classes": classes, "arch": "binary", "n_samples": int(x.shape[0])}
            table3.save_grid(path, state, markdown)
    print(markdown(cells))
    return 0


if __name__ == "__main__":
    sys.exit(table3.main_with_clear_errors(main))
