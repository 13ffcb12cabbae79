"""The paper's figures: t-SNE of embeddings (Figs 7-11) and clustering curves, for one data set.

    python experiments/figures.py --dataset usps --data-root ../shared/data --out results/figures-usps

Runs raw pixels, AE (the pretrained CAE of DEKM, i.e. ``cae-kmeans``'s embedding), DEC, DEKM and
SDEKC on all the data with their sources' budgets (``--max-pretrain-epochs`` /
``--max-cluster-steps`` cap them, ``--n-samples`` trains on the first N images only; both for quick
checks), then embeds the first ``--n-points`` (2,000) points with scikit-learn's ``TSNE``.

Writes to ``--out`` (each file atomically):

* ``tsne-<panel>.png`` per panel and ``tsne.png`` (all panels), points coloured by true label,
  with a legend; the title carries the method's ACC/NMI on all the data;
* ``curves.png``: ACC, NMI and the fraction of points that changed cluster at each clustering
  iteration, SDEKC vs DEKM (iteration 0 is K-means on the pretrained embedding; dashed: each
  method's stop threshold, DEKM.py's 0.005 and the paper's 0.001);
* ``figures.json``: the numbers behind every plot (per-iteration curves, metrics, settings) and
  ``tsne.npz``: the 2-D t-SNE coordinates and labels, so plots can be redrawn without rerunning.

Pretrained autoencoders come from the pretraining cache, so after ``experiments/table3.py`` has
run the same seed the figure run only repeats the clustering phases.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import table3  # noqa: E402
from sdekc_jax.cache import PretrainCache, default_cache_dir  # noqa: E402
from sdekc_jax.cli import _enable_compilation_cache  # noqa: E402
from sdekc_jax.io import atomic_write_bytes, atomic_write_json  # noqa: E402
from sdekc_jax.methods import get_method, run  # noqa: E402
from sdekc_jax.metrics import cluster_acc, evaluate, nmi  # noqa: E402

# (panel name, method whose embedding is shown, title)
PANELS = (
    ("raw", "kmeans", "raw pixels"),
    ("ae", "cae-kmeans", "AE (pretrained CAE)"),
    ("dec", "dec", "DEC"),
    ("dekm", "dekm", "DEKM"),
    ("sdekc", "sdekc", "SDEKC"),
)
CURVE_METHODS = ("dekm", "sdekc")


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # an optional dependency: say how to get it
        raise SystemExit("experiments/figures.py needs matplotlib: pip install 'sdekc_jax[figures]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def tsne(z: np.ndarray, seed: int, perplexity: float = 30.0) -> tuple[np.ndarray, float]:
    """2-D t-SNE of ``z`` (n, d): scikit-learn's defaults (PCA init, auto learning rate)."""
    from sklearn.manifold import TSNE
    z = np.asarray(z, np.float64).reshape(len(z), -1)
    perplexity = min(perplexity, (len(z) - 1) / 3)  # sklearn requires perplexity < n
    t = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    return t.fit_transform(z).astype(np.float32), float(t.kl_divergence_)


def curves(history: dict, y: np.ndarray) -> dict:
    """Per clustering iteration: ACC and NMI of that iteration's labels, fraction changed."""
    labels = history["labels"]
    n = labels.shape[1]
    changed = history["n_changed"].astype(np.float64) / n
    changed[0] = np.nan  # the first refresh has no previous labelling
    return {"iteration": list(range(len(labels))),
            "acc": [cluster_acc(y, lab) for lab in labels],
            "nmi": [nmi(y, lab) for lab in labels],
            "changed_fraction": [None if np.isnan(c) else float(c) for c in changed]}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def _scatter(ax, xy: np.ndarray, y: np.ndarray, title: str, class_names: list[str]) -> None:
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for c, name in enumerate(class_names):
        sel = y == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, color=cmap(c % cmap.N), label=name, rasterized=True)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_tsne(panels: list[tuple[str, str, np.ndarray]], y: np.ndarray, out: Path) -> list[str]:
    """One PNG per panel and one with all of them; returns the file names."""
    plt = _pyplot()
    names = [str(c) for c in range(int(y.max()) + 1)]
    files = []
    for name, title, xy in panels:
        fig, ax = plt.subplots(figsize=(4.2, 4))
        _scatter(ax, xy, y, title, names)
        ax.legend(title="label", fontsize=6, title_fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5))
        atomic_write_bytes(out / f"tsne-{name}.png", _png(fig))
        plt.close(fig)
        files.append(f"tsne-{name}.png")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (name, title, xy) in zip(np.atleast_1d(axes), panels):
        _scatter(ax, xy, y, title, names)
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="label", loc="center right", markerscale=3, fontsize=7)
    fig.subplots_adjust(right=0.93)
    atomic_write_bytes(out / "tsne.png", _png(fig))
    plt.close(fig)
    return files + ["tsne.png"]


def plot_curves(curve: dict[str, dict], out: Path, dataset: str) -> str:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    longest = max((len(c["iteration"]) for c in curve.values()), default=0)
    for method, c in curve.items():
        it = np.asarray(c["iteration"])
        style = dict(label=method.upper(), marker="." if longest < 60 else None)
        axes[0].plot(it, c["acc"], **style)
        axes[1].plot(it, c["nmi"], **style)
        ch = np.asarray([np.nan if v is None else v for v in c["changed_fraction"]], dtype=float)
        line, = axes[2].plot(it[1:], ch[1:], **style)
        if c.get("tol") is not None:  # the method's stop rule: fewer than tol * n points changed
            axes[2].axhline(c["tol"], color=line.get_color(), lw=0.8, ls="--")
    axes[2].set_yscale("symlog", linthresh=1e-4)  # log above 1e-4, linear down to 0 (a converged step may be 0)
    axes[2].set_ylim(bottom=0)
    for ax, t in zip(axes, ("ACC", "NMI", "fraction of points that changed cluster")):
        ax.set_xlabel("clustering iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations are whole numbers
        ax.set_title(f"{dataset}: {t}", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    atomic_write_bytes(out / "curves.png", _png(fig))
    plt.close(fig)
    return "curves.png"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="usps")
    p.add_argument("--data-root", default=None, help="folder with one sub-folder per data set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-points", type=int, default=2000, help="points shown in the t-SNE plots (the first N)")
    p.add_argument("--n-samples", type=int, default=None, help="train on the first N images only (quick checks)")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--max-pretrain-epochs", type=int, default=None)
    p.add_argument("--max-cluster-steps", type=int, default=None)
    p.add_argument("--out", default=None, help="output folder (default: a new results/figures-<date>-<time>)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--replot", action="store_true", help="only redraw the PNGs from <out>/figures.json and tsne.npz")
    args = p.parse_args(argv)
    if args.n_points < 10:
        p.error("--n-points must be at least 10")
    if args.replot and args.out is None:
        p.error("--replot redraws <out>/figures.json: pass --out")
    table3.check_data_root(args.data_root)
    args.out = args.out or table3.default_out("figures")
    _pyplot()  # fail before hours of training if matplotlib is missing

    out = Path(args.out)
    if args.replot:
        report = json.loads((out / "figures.json").read_text())
        saved = np.load(out / "tsne.npz")
        panels = [(name, f"{title}\nACC {report['panels'][name]['acc']:.3f} NMI {report['panels'][name]['nmi']:.3f}",
                   saved[f"tsne_{name}"]) for name, _, title in PANELS]
        plot_tsne(panels, saved["labels"], out)
        plot_curves(report["curves"], out, report["dataset"])
        return 0
    _enable_compilation_cache()
    out.mkdir(parents=True, exist_ok=True)
    x, y = table3.load(args.dataset, args.data_root)
    if args.n_samples is not None:
        x, y = x[:args.n_samples], y[:args.n_samples]
    k = int(y.max()) + 1
    n_show = min(args.n_points, len(x))
    cache = PretrainCache(args.cache_dir or default_cache_dir())
    report = {"dataset": args.dataset, "seed": args.seed, "n_samples": int(len(x)), "n_points": n_show,
              "perplexity": args.perplexity, "panels": {}, "curves": {}}
    embeddings, xy_all = {}, {}
    for name, method, title in PANELS:
        t0 = time.perf_counter()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {method}", file=sys.stderr, flush=True)
        over = table3.budget_overrides(get_method(method), args.dataset, args.max_pretrain_epochs, args.max_cluster_steps)
        r = run(method, x, k, seed=args.seed, dataset=args.dataset, cache=cache, verbose=args.progress,
                record_labels=method in CURVE_METHODS, **over)
        z = x[:n_show].reshape(n_show, -1) if r.embedding is None else r.embedding[:n_show]
        embeddings[name] = z
        xy, kl = tsne(z, args.seed, args.perplexity)
        xy_all[name] = xy
        m = evaluate(y, r.labels)
        report["panels"][name] = {"method": method, **m, "n_iter": r.n_iter, "converged": r.converged,
                                  "config": r.config, "tsne_kl": kl, "seconds": time.perf_counter() - t0}
        if method in CURVE_METHODS:
            report["curves"][method] = {**curves(r.history, y), "tol": r.config.get("tol")}
        print(f"    ACC {m['acc']:.4f} NMI {m['nmi']:.4f}  t-SNE KL {kl:.3f}", file=sys.stderr, flush=True)
    panels = [(name, f"{title}\nACC {report['panels'][name]['acc']:.3f} NMI {report['panels'][name]['nmi']:.3f}",
               xy_all[name]) for name, _, title in PANELS]
    report["files"] = plot_tsne(panels, y[:n_show], out) + [plot_curves(report["curves"], out, args.dataset)]
    buf = io.BytesIO()
    np.savez_compressed(buf, labels=y[:n_show], **{f"tsne_{k}": v for k, v in xy_all.items()})
    atomic_write_bytes(out / "tsne.npz", buf.getvalue())
    report["files"].append("tsne.npz")
    atomic_write_json(out / "figures.json", report)
    print(json.dumps({k: {m: round(v[m], 4) for m in ("acc", "nmi")} for k, v in report["panels"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(table3.main_with_clear_errors(main))
