"""Ablation: do the weighted skips help, and how much? A sweep over the skip weights and the
embedding size, on USPS, at the paper's budget, resumable.

    python experiments/ablation_skips.py --out results/ablation_skips
    python experiments/ablation_skips.py --seeds 0 --w-enc 0.001 0.5 --embedding-dims --max-pretrain-epochs 10

The grid (defaults):

* skip weights: no skips, and ``w_enc`` in {0.001, 0.01, 0.1, 0.5, 0.9, 0.999} with
  ``w_dec = 1 - w_enc`` (0.001 is our reading, SDEKC's default; 0.999 is the paper text's), at
  the embedding size of the paper (the number of clusters, 10);
* embedding size: ``--embedding-dims`` (default 5, 20, 40) for each of ``--embedding-skips``
  (default: none and 0.001, i.e. DEKM's and SDEKC's networks);
* seeds 0, 1, 2 for every configuration.

Every cell is SDEKC (Algorithm 1, the paper's protocol: 200 pretraining epochs, stop at 0.1%
changed, at most 1000 iterations) with only the skips / embedding size changed, so "no skips" is
the paper's protocol on DEKM's network. A cell records ACC/NMI/ARI *after pretraining* (the
K-means labelling of the pretrained embedding that Algorithm 1's first iteration computes) and
*after clustering* (the final labels). Cells go to ``<out>/ablation.json`` as they finish (atomic
writes; a killed run continues where it stopped, a cell in progress from its checkpoint);
``<out>/ablation.md`` (tables, with the paired difference to no skips) and ``<out>/ablation.png``
(ACC/NMI vs w_enc, and vs the embedding size) are rewritten after every cell. Seed-major order:
a partial run has every configuration of the seeds it finished. Pretrained autoencoders come from
the shared pretraining cache (Table 3's runs fill it for no skips and w_enc = 0.001).

``--vmapped``: the missing cells of each embedding size (all their skip settings and seeds) run as
one vmapped program (:func:`sdekc_jax.sweep.skip_sweep`, with the :class:`~sdekc_jax.config.RunConfig`
that ``methods.run("sdekc")`` builds for a cell), which is where accelerators gain. A vmapped
program rounds differently from the cells run one by one, so a cell agrees with the cell run alone
to float tolerance over the first steps and statistically after that, not bit for bit
(``tests/test_ablation.py``); the cell's seconds are then those of its whole group. A group
checkpoints like a cell (a killed group continues from its checkpoint, as long as the same cells
are missing, and ends exactly as an uninterrupted group) but does not use the pretraining cache.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import table3  # noqa: E402
from sdekc_jax.cache import PretrainCache, default_cache_dir  # noqa: E402
from sdekc_jax.cli import _enable_compilation_cache  # noqa: E402
from sdekc_jax.data import load_dataset  # noqa: E402
from sdekc_jax.methods import get_method, run, run_config  # noqa: E402
from sdekc_jax.metrics import evaluate  # noqa: E402
from sdekc_jax.sweep import skip_sweep  # noqa: E402

NAME = "ablation"
W_ENC = (0.001, 0.01, 0.1, 0.5, 0.9, 0.999)
EMBEDDING_DIMS = (5, 20, 40)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """The sweep as data. ``w_enc=None`` in a configuration means no skips."""
    w_enc: tuple[float, ...] = W_ENC
    no_skips: bool = True
    embedding_dims: tuple[int, ...] = EMBEDDING_DIMS
    embedding_skips: tuple[float | None, ...] = (None, 0.001)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_clusters: int = 10

    def validate(self) -> "SweepConfig":
        for w in self.w_enc + tuple(w for w in self.embedding_skips if w is not None):
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and 0.0 < w < 1.0):
                raise ValueError(f"w_enc must be a number strictly between 0 and 1 (w_dec = 1 - w_enc), got {w!r}; "
                                 "use no_skips / 'none' for the network without skips")
        for name, values in (("w_enc", self.w_enc), ("embedding_dims", self.embedding_dims),
                             ("embedding_skips", self.embedding_skips), ("seeds", self.seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has repeated values: {list(values)}")
        for d in self.embedding_dims:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
                raise ValueError(f"embedding sizes must be positive integers, got {d!r}")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
                raise ValueError(f"seeds must be non-negative integers, got {s!r}")
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if not (self.w_enc or self.no_skips or self.embedding_dims):
            raise ValueError("the sweep is empty: give w_enc values, no_skips or embedding sizes")
        if self.embedding_dims and not self.embedding_skips:
            raise ValueError("embedding sizes need at least one skip setting (embedding_skips)")
        return self

    def configurations(self) -> list[tuple[float | None, int]]:
        """``(w_enc or None, embedding size)`` of every configuration, skip sweep first."""
        k = self.n_clusters
        out = ([(None, k)] if self.no_skips else []) + [(float(w), k) for w in self.w_enc]
        out += [(w, int(d)) for d in self.embedding_dims for w in self.embedding_skips if (w, int(d)) not in out]
        return out


def config_key(w_enc: float | None, dim: int) -> str:
    return f"{'none' if w_enc is None else f'w_enc={w_enc:g}'}|d={dim}"


def cell_key(w_enc: float | None, dim: int, seed: int) -> str:
    return f"{config_key(w_enc, dim)}|{seed}"


def parse_w(value: str) -> float | None:
    return None if value == "none" else float(value)


def _base(w_enc, dim: int, seed: int) -> dict:
    return {"w_enc": w_enc, "w_dec": None if w_enc is None else 1.0 - w_enc, "embedding_dim": dim, "seed": seed}


def _finished_cell(base: dict, y, pre_labels, labels, *, n_iter: int, converged: bool, config: dict, seconds: dict,
                   cache_hit: bool, final_mse: float, t0: float, **extra) -> dict:
    """A finished cell: metrics after pretraining and after clustering, run records, budget."""
    method = get_method("sdekc")
    pre, post = evaluate(y, pre_labels), evaluate(y, labels)
    cell = {**base, **{f"pre_{k}": v for k, v in pre.items()}, **post, "n_iter": n_iter, "converged": converged,
            "pretrain_seconds": seconds["pretrain"], "cluster_seconds": seconds["cluster"],
            "pretrain_cache_hit": cache_hit, "final_pretrain_mse": final_mse, "config": config,
            "wall_seconds": time.perf_counter() - t0, **extra}
    cell["budget"] = table3.describe_budget(method, "usps", {k: config[k] for k in ("pretrain_epochs", "max_iters")
                                                             if config[k] != method.config("usps")[k]}, converged)
    return cell


def run_cell(w_enc, dim, seed, x, y, *, cache, overrides, progress, checkpoint_dir) -> dict:
    """SDEKC with the given skips and embedding size: metrics after pretraining and after clustering."""
    skips = "none" if w_enc is None else (w_enc, 1.0 - w_enc)
    t0 = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {cell_key(w_enc, dim, seed)} {overrides or 'paper budget'}",
          file=sys.stderr, flush=True)
    base = _base(w_enc, dim, seed)
    try:
        r = run("sdekc", x, int(y.max()) + 1, seed=seed, dataset="usps", cache=cache, verbose=progress,
                record_labels="first", checkpoint_dir=str(checkpoint_dir), skips=skips, embedding_dim=dim, **overrides)
    except Exception as e:  # keep going; the cell is retried next run
        traceback.print_exc()
        return {**base, "error": f"{type(e).__name__}: {e}"}
    cell = _finished_cell(base, y, r.history["labels"][0], r.labels, n_iter=r.n_iter, converged=r.converged,
                          config=r.config, seconds=r.timings, cache_hit=r.pretrain_cache_hit,
                          final_mse=float(r.history["pretrain_loss"][-1]), t0=t0)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    print(f"    after pretraining ACC {cell['pre_acc']:.4f} NMI {cell['pre_nmi']:.4f}; after clustering ACC "
          f"{cell['acc']:.4f} NMI {cell['nmi']:.4f} ({r.n_iter} it, pretrain {r.timings['pretrain']:.0f} s"
          f"{' cached' if r.pretrain_cache_hit else ''}, cluster {r.timings['cluster']:.0f} s)", file=sys.stderr, flush=True)
    return cell


def run_group(todo: list[tuple[float | None, int]], dim: int, x, y, *, overrides, progress,
              checkpoint_dir=None) -> dict:
    """The cells ``todo`` (``(w_enc or None, seed)``) of embedding size ``dim`` as one vmapped
    program (``sweep.skip_sweep``, the same settings as :func:`run_cell`): ``{cell_key: cell}``.
    ``checkpoint_dir``: the group's checkpoints (removed when it finishes)."""
    method = get_method("sdekc")
    k = int(y.max()) + 1
    t0 = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {len(todo)} runs of d={dim} in one vmapped program: "
          f"{', '.join(cell_key(w, dim, s) for w, s in todo)} {overrides or 'paper budget'}", file=sys.stderr, flush=True)
    cfgs = [method.config("usps", skips="none" if w is None else (w, 1.0 - w), embedding_dim=dim, **overrides)
            for w, _ in todo]
    bases = [_base(w, dim, s) for w, s in todo]
    try:
        # the RunConfig run_cell's methods.run("sdekc") builds (the skips aside, which are the sweep's data)
        rc = run_config(method, cfgs[0], tuple(x.shape[1:]), k)
        settings = {f: v for f, v in rc.to_dict().items() if f not in ("n_clusters", "image_shape", "embedding_dim")}
        r = skip_sweep(x, k, [(None if w is None else (w, 1.0 - w), s) for w, s in todo], embedding_dim=rc.embedding_dim,
                       verbose=progress, checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                       **settings)
    except Exception as e:  # keep going; the cells are retried next run
        traceback.print_exc()
        return {cell_key(w, dim, s): {**b, "error": f"{type(e).__name__}: {e}"} for (w, s), b in zip(todo, bases)}
    out = {}
    for i, ((w, s), base) in enumerate(zip(todo, bases)):
        cell = _finished_cell(base, y, r.pretrain_labels[i], r.labels[i], n_iter=int(r.n_iter[i]),
                              converged=bool(r.converged[i]), config=cfgs[i], seconds=r.seconds, cache_hit=False,
                              final_mse=float(r.history[i]["pretrain_loss"][-1]), t0=t0, vmapped_group=len(todo))
        print(f"    {cell_key(w, dim, s)}: after pretraining ACC {cell['pre_acc']:.4f} NMI {cell['pre_nmi']:.4f}; after "
              f"clustering ACC {cell['acc']:.4f} NMI {cell['nmi']:.4f} ({cell['n_iter']} it)", file=sys.stderr, flush=True)
        out[cell_key(w, dim, s)] = cell
    print(f"    group: pretrain {r.seconds['pretrain']:.0f} s, cluster {r.seconds['cluster']:.0f} s", file=sys.stderr,
          flush=True)
    if checkpoint_dir is not None:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return out


def summarise(cells: dict) -> dict:
    """``{config_key: {"w_enc", "embedding_dim", "n", metric: (mean, std)}}`` over finished seeds."""
    groups: dict = {}
    for c in cells.values():
        if "error" not in c:
            groups.setdefault(config_key(c["w_enc"], c["embedding_dim"]), []).append(c)
    out = {}
    for key, cs in groups.items():
        row = {"w_enc": cs[0]["w_enc"], "embedding_dim": cs[0]["embedding_dim"], "n": len(cs),
               "seeds": sorted(c["seed"] for c in cs)}
        for m in ("pre_acc", "pre_nmi", "acc", "nmi", "ari", "n_iter"):
            v = np.asarray([c[m] for c in cs], float)
            row[m] = (float(v.mean()), float(v.std()))
        out[key] = row
    return out


def paired_gain(cells: dict, w_enc: float | None, dim: int, metric: str) -> tuple[float, float, int] | None:
    """Mean ± std over shared seeds of ``metric(w_enc) - metric(no skips)`` at embedding size ``dim``."""
    if w_enc is None:
        return None
    diffs = [c[metric] - cells[cell_key(None, dim, c["seed"])][metric] for c in cells.values()
             if "error" not in c and c["w_enc"] == w_enc and c["embedding_dim"] == dim
             and "error" not in cells.get(cell_key(None, dim, c["seed"]), {"error": 1})]
    return (float(np.mean(diffs)), float(np.std(diffs)), len(diffs)) if diffs else None


def markdown(cells: dict) -> str:
    rows = summarise(cells)
    f = lambda ms: f"{ms[0]:.4f} ± {ms[1]:.4f}"
    lines = ["SDEKC on USPS (9,298 images), the paper's budget unless noted; mean ± std over the seeds listed. "
             "'after pretraining' is K-means on the pretrained embedding (Algorithm 1's first iteration); "
             "'Δ vs none' is the paired (same seed) difference of the final ACC to no skips at the same embedding size.",
             "", "| skips (w_enc, w_dec = 1 − w_enc) | embedding | seeds | ACC after pretraining | NMI after pretraining "
             "| ACC | NMI | ARI | iterations | Δ ACC vs none |", "|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(rows.values(), key=lambda r: (r["embedding_dim"], -1 if r["w_enc"] is None else r["w_enc"]))
    for r in order:
        g = paired_gain(cells, r["w_enc"], r["embedding_dim"], "acc")
        skips = "none" if r["w_enc"] is None else f"{r['w_enc']:g}, {1 - r['w_enc']:g}"
        lines.append(f"| {skips} | {r['embedding_dim']} | {','.join(map(str, r['seeds']))} | {f(r['pre_acc'])} | "
                     f"{f(r['pre_nmi'])} | {f(r['acc'])} | {f(r['nmi'])} | {f(r['ari'])} | {r['n_iter'][0]:.0f} | "
                     f"{'' if g is None else f'{g[0]:+.4f} ± {g[1]:.4f} ({g[2]})'} |")
    budgets = sorted({c["budget"] for c in cells.values() if "error" not in c})
    if budgets:
        lines += ["", "Budgets: " + "; ".join(budgets)]
    errors = [c for c in cells.values() if "error" in c]
    if errors:
        lines += ["", "Failed cells (retried on the next run):", ""]
        lines += [f"- {cell_key(c['w_enc'], c['embedding_dim'], c['seed'])}: {c['error']}" for c in errors]
    return "\n".join(lines) + "\n"


def plot(cells: dict, path: Path, n_clusters: int = 10) -> bool:
    """ACC/NMI after pretraining and after clustering vs w_enc (log axis; no skips as dashed
    lines) and vs the embedding size. Returns False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'sdekc-jax[figures]'): no plot", file=sys.stderr)
        return False
    rows = summarise(cells)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    sweep = sorted((r for r in rows.values() if r["w_enc"] is not None and r["embedding_dim"] == n_clusters),
                   key=lambda r: r["w_enc"])
    none = next((r for r in rows.values() if r["w_enc"] is None and r["embedding_dim"] == n_clusters), None)
    styles = {"pre_acc": ("ACC after pretraining", "C0", ":"), "pre_nmi": ("NMI after pretraining", "C1", ":"),
              "acc": ("ACC after clustering", "C0", "-"), "nmi": ("NMI after clustering", "C1", "-")}
    for m, (label, color, ls) in styles.items():
        if sweep:
            w = [r["w_enc"] for r in sweep]
            ax.errorbar(w, [r[m][0] for r in sweep], yerr=[r[m][1] for r in sweep], color=color, ls=ls, marker="o",
                        capsize=3, label=label)
        if none is not None:
            ax.axhline(none[m][0], color=color, ls="--" if ls == "-" else (0, (1, 4)), lw=1,
                       label=f"{label}, no skips")
    ax.set_xscale("log")
    ax.set_xlabel("w_enc (w_dec = 1 − w_enc)")
    ax.set_ylabel("score")
    ax.set_title(f"skip weights (embedding size {n_clusters})")
    ax.legend(fontsize=7)
    ax = axes[1]
    for w in sorted({r["w_enc"] for r in rows.values()}, key=lambda v: -1 if v is None else v):
        rs = sorted((r for r in rows.values() if r["w_enc"] == w), key=lambda r: r["embedding_dim"])
        if len(rs) < 2:
            continue
        label = "no skips" if w is None else f"w_enc={w:g}"
        ax.errorbar([r["embedding_dim"] for r in rs], [r["acc"][0] for r in rs], yerr=[r["acc"][1] for r in rs],
                    marker="o", capsize=3, label=f"ACC, {label}")
        ax.errorbar([r["embedding_dim"] for r in rs], [r["pre_acc"][0] for r in rs], yerr=[r["pre_acc"][1] for r in rs],
                    marker="x", ls=":", capsize=3, label=f"ACC after pretraining, {label}")
    ax.set_xscale("log", base=2)
    dims = sorted({r["embedding_dim"] for r in rows.values()})
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.minorticks_off()
    ax.set_xlabel("embedding size")
    ax.set_title("embedding size")
    if ax.has_data():
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no embedding size has two finished cells yet", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--w-enc", nargs="*", type=float, default=list(W_ENC), help="encoder-side skip weights (w_dec = 1 - w_enc)")
    p.add_argument("--no-none", action="store_true", help="leave out the network without skips")
    p.add_argument("--embedding-dims", nargs="*", type=int, default=list(EMBEDDING_DIMS))
    p.add_argument("--embedding-skips", nargs="+", type=parse_w, default=[None, 0.001],
                   help="skip settings of the embedding-size sweep: 'none' or w_enc values")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--data-dir", default=None, help="USPS folder (default: the copy embedded in the package)")
    p.add_argument("--vmapped", action="store_true",
                   help="run the missing cells of each embedding size as one vmapped program (sweep.skip_sweep)")
    table3.add_common_args(p, "ablation_skips")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    sweep = SweepConfig(tuple(args.w_enc), not args.no_none, tuple(args.embedding_dims),
                        tuple(args.embedding_skips), tuple(args.seeds)).validate()
    path, state = table3.open_grid(args.out, NAME)
    cells = state["cells"]

    def report(cells):
        plot(cells, path.with_suffix(".png"), sweep.n_clusters)
        return markdown(cells)

    if args.report:
        print(table3.save_grid(path, state, report))
        return 0
    _enable_compilation_cache()
    x, y = load_dataset("usps", args.data_dir, "all")
    cache = PretrainCache(args.cache_dir or default_cache_dir())
    over = table3.budget_overrides(get_method("sdekc"), "usps", args.max_pretrain_epochs, args.max_cluster_steps)
    configs = sweep.configurations()
    print(f"{len(configs)} configurations x {len(sweep.seeds)} seeds", file=sys.stderr, flush=True)
    done = lambda key: key in cells and "error" not in cells[key]
    if args.vmapped:  # one program per embedding size: all its skip settings and seeds
        for dim in dict.fromkeys(d for _, d in configs):
            todo = [(w, s) for s in sweep.seeds for w, d in configs if d == dim and not done(cell_key(w, d, s))]
            if todo:
                cells.update(run_group(todo, dim, x, y, overrides=over, progress=args.progress,
                                       checkpoint_dir=table3.checkpoint_path(path, f"vmapped|d={dim}")))
                table3.save_grid(path, state, report)
        print(table3.save_grid(path, state, report))
        return 0
    for seed in sweep.seeds:  # seed-major: a partial run has every configuration of its seeds
        for w_enc, dim in configs:
            key = cell_key(w_enc, dim, seed)
            if done(key):
                continue
            cells[key] = run_cell(w_enc, dim, seed, x, y, cache=cache, overrides=over, progress=args.progress,
                                  checkpoint_dir=table3.checkpoint_path(path, key))
            table3.save_grid(path, state, report)
    print(table3.save_grid(path, state, report))
    return 0


if __name__ == "__main__":
    sys.exit(table3.main_with_clear_errors(main))
