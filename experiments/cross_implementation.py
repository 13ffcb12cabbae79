"""Cross-implementation experiment (issue 19): where does our USPS gap to PyTorch come from?

Each cell pairs one *pretraining* with one *clustering phase*, for SDEKC or DEKM, one seed, full
budgets (200 pretraining epochs, Algorithm 1 until its tolerance):

pretraining
  ``jax``           ours: ``sdekc_jax``'s initialisation and pretraining (the method's run, from
                    the pretraining cache);
  ``torch``         the PyTorch twin (``benchmarks/torch_reference.TorchCAE``: our network,
                    Keras' padding), PyTorch's default initialisation, ``torch.optim.Adam``, its
                    own batch order (``pretrain_torch``);
  ``jax-torchinit`` PyTorch's initial draw (the twin's, for the same seed) copied into our
                    pytree, then pretrained by ``sdekc_jax`` (isolates the initialisation);
  ``torch-natural`` the natural PyTorch CAE (``NaturalCAE``: symmetric ``padding=k // 2`` and
                    ``output_padding``, where Keras and we pad 16 -> 8 as (1, 2)), pretrained
                    like ``torch``; its initial draw is the twin's (same seed, same parameter
                    shapes and order), so ``torch-natural`` − ``torch`` is the padding's effect.
                    Clustered by ``torch`` only: its function has no counterpart in our pytree;
clustering
  ``jax``           ours (``make_steps(cfg)``: ``cluster_init`` / ``advance`` / ``finish``, the
                    run's own cluster key; ``advance`` runs as one program, not in the host
                    driver's chunks, so ``jax`` x ``jax`` rounds differently from the method's
                    run: the same distribution, not the same bits);
  ``torch``         ``torch_reference.sdekc_torch``: Algorithm 1 as DEKM.py writes it (scikit-
                    learn ``KMeans(n_init=10)`` per refresh, NumPy ``eigh``, PyTorch Adam).

A pretrained network crosses between the frameworks through ``load_jax_params`` /
``export_params`` (checked equal to 1e-4 on the data before it is used). So, per seed, a
column difference is the clustering phase's effect on one pretrained network, and a row
difference is the pretraining's, clustered the same way.

    python experiments/cross_implementation.py --data-root ../shared/data --out results/cross-implementation
    python experiments/cross_implementation.py --methods sdekc --seeds 0 2 4 --data-root ../shared/data \
        --out results/cross-implementation      # e.g. two processes, one per core

Each finished cell is written at once to ``<out>/cells/<method>-<pretraining>-<clustering>-s<seed>.json``
(so several processes may share ``--out``) and skipped on the next run; a pretrained PyTorch
network is saved to ``<out>/params/`` and reused. ``<out>/cross_implementation.md`` is rewritten
after every cell. Needs PyTorch and scikit-learn.
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
sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))

import table3  # noqa: E402
from sdekc_jax.cache import PretrainCache, default_cache_dir  # noqa: E402
from sdekc_jax.cli import _enable_compilation_cache  # noqa: E402
from sdekc_jax.config import paper_result  # noqa: E402
from sdekc_jax.io import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402
from sdekc_jax.methods import get_method, run  # noqa: E402
from sdekc_jax.methods.base import run_config  # noqa: E402
from sdekc_jax.metrics import evaluate  # noqa: E402
from sdekc_jax.validation import resolve_skips  # noqa: E402

PRETRAININGS = ("jax", "torch", "jax-torchinit", "torch-natural")
CLUSTERINGS = ("jax", "torch")
METHODS = ("sdekc", "dekm")


def cell_name(method: str, pretraining: str, clustering: str, seed: int) -> str:
    return f"{method}-{pretraining}-{clustering}-s{seed}"


def full_config(method_name: str, dataset: str, image_shape, k: int, **overrides):
    method = get_method(method_name)
    cfg = method.config(dataset, **overrides)
    return run_config(method, cfg, image_shape, k), resolve_skips(cfg.get("skips"))


def jax_pretrained(method_name: str, x, k: int, seed: int, dataset: str, cache, pretrain_epochs=None):
    """Our pretrained network for (method, seed): the method's run stopped at its first refresh
    (which takes no steps), so its parameters are the pretrained ones; from the cache when there."""
    r = run(method_name, x, k, seed=seed, dataset=dataset, cache=cache, verbose=False, max_iters=1,
            pretrain_epochs=pretrain_epochs)
    return r.params, float(np.asarray(r.history["pretrain_loss"])[-1]) if len(r.history.get("pretrain_loss", [])) else None


def jax_pretrain_from(cfg, params, x, seed: int, skip_weights, log):
    """``params`` pretrained by our pretraining epoch (the run's own pretraining key)."""
    import jax
    import jax.numpy as jnp

    from sdekc_jax.pretrain import init_state
    from sdekc_jax.run import make_steps, split_key

    steps = make_steps(cfg)
    _, k_pre, _ = split_key(jax.random.key(seed))
    xj = jnp.asarray(x, jnp.float32)
    w = None if skip_weights is None else jnp.asarray(skip_weights, jnp.float32)
    epoch = jax.jit(lambda s, e: steps.pretrain_epoch(s, xj, k_pre, e, w), donate_argnums=(0,))
    state = init_state(jax.tree.map(jnp.asarray, params), steps.pretrain_tx)
    losses = []
    for e in range(cfg.pretrain_epochs):
        state, loss = epoch(state, jnp.int32(e))
        losses.append(float(loss))
        if e % 20 == 19 or e == cfg.pretrain_epochs - 1:
            log(f"  jax pretraining epoch {e + 1}/{cfg.pretrain_epochs}: MSE {losses[-1]:.5f}")
    return jax.device_get(state["params"]), losses


def jax_cluster(cfg, params, x, seed: int, skip_weights):
    """Our clustering phase from ``params`` with the run's own cluster key: (labels, first
    labels, n_iter, converged)."""
    import jax
    import jax.numpy as jnp

    from sdekc_jax.run import make_steps, split_key

    steps = make_steps(cfg)
    _, _, k_cl = split_key(jax.random.key(seed))
    xj = jnp.asarray(x, jnp.float32)
    w = None if skip_weights is None else jnp.asarray(skip_weights, jnp.float32)
    p = jax.tree.map(jnp.asarray, params)
    st = jax.jit(steps.cluster_init)(p, xj, k_cl, w)
    st = jax.jit(steps.advance, static_argnums=(3,))(st, xj, w, cfg.max_iters)
    r = jax.jit(steps.finish)(p, st, xj)
    return np.asarray(r.labels), np.asarray(r.first_labels), int(r.n_iter), bool(r.converged)


def torch_model(image_shape, skip_weights, seed: int, natural: bool = False):
    import torch
    from torch_reference import NaturalCAE, TorchCAE

    torch.manual_seed(seed)  # PyTorch's default initialisation, drawn from the seed
    cls = NaturalCAE if natural else TorchCAE
    return cls(image_shape, skip_weights=None if skip_weights is None else tuple(float(v) for v in skip_weights))


def natural_pretrained(path: Path, cfg, image_shape, skip_weights, seed: int, xt, log):
    """The natural PyTorch CAE pretrained like the twin (saved to / reused from ``path``)."""
    import torch
    from torch_reference import pretrain_torch

    model = torch_model(image_shape, skip_weights, seed, natural=True)
    if path.exists():
        saved = torch.load(path)
        model.load_state_dict(saved["state"])
        return model, [float(v) for v in saved["losses"]]
    log(f"seed {seed}: natural PyTorch CAE pretraining, {cfg.pretrain_epochs} epochs")
    losses = pretrain_torch(model, xt, cfg.pretrain_epochs, batch_size=cfg.batch_size, lr=cfg.learning_rate, seed=seed)
    buf = io.BytesIO()
    torch.save({"state": model.state_dict(), "losses": losses}, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return model, losses


def check_same_function(params, model, x) -> float:
    from torch_reference import max_output_difference

    diff = max_output_difference(params, model, x[:256])
    if not diff <= 1e-4:
        raise AssertionError(f"the PyTorch network and the JAX pytree differ by {diff:.2e} (> 1e-4)")
    return diff


def save_params(path: Path, params, losses) -> None:
    from flax import serialization

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, serialization.msgpack_serialize({"params": params, "losses": np.asarray(losses, np.float32)}))


def load_params(path: Path):
    from flax import serialization

    d = serialization.msgpack_restore(path.read_bytes())
    return d["params"], [float(v) for v in d["losses"]]


def markdown(cells: list[dict], dataset: str) -> str:
    lines = ["# Cross-implementation cells", "",
             "ACC per seed; rows of a method: one seed; columns: pretraining × clustering (see the runner's doc).", ""]
    combos = [(p, c) for p in PRETRAININGS for c in CLUSTERINGS]
    for m in METHODS:
        done = {(c["pretraining"], c["clustering"], c["seed"]): c for c in cells if c["method"] == m}
        if not done:
            continue
        paper, table = paper_result(m, dataset)
        present = [pc for pc in combos if any(key[:2] == pc for key in done)]
        seeds = sorted({key[2] for key in done})
        lines += [f"## {m} on {dataset}" + (f" (paper, {table}: ACC {paper[0]:.4f}, NMI {paper[1]:.4f})" if paper else ""),
                  "", "| seed | " + " | ".join(f"{p} × {c}" for p, c in present) + f" | pretraining MSE ({' / '.join(PRETRAININGS)}) |",
                  "|---|" + "---|" * len(present) + "---|"]
        for s in seeds:
            row = [f"{done[(p, c, s)]['acc']:.4f}" if (p, c, s) in done else "" for p, c in present]
            mse = {p: next((done[(p, c, s)]["pretrain_final_mse"] for c in CLUSTERINGS if (p, c, s) in done), None)
                   for p in PRETRAININGS}
            lines.append(f"| {s} | " + " | ".join(row) + " | "
                         + " / ".join("" if v is None else f"{v:.5f}" for v in mse.values()) + " |")
        lines.append("")
        for p, c in present:
            a = [done[(p, c, s)]["acc"] for s in seeds if (p, c, s) in done]
            n = [done[(p, c, s)]["nmi"] for s in seeds if (p, c, s) in done]
            gap = f", {np.mean(a) - paper[0]:+.4f} vs the paper" if paper else ""
            lines.append(f"- **{p} × {c}** ({len(a)} seeds): ACC {np.mean(a):.4f} ± {np.std(a):.4f}, "
                         f"NMI {np.mean(n):.4f} ± {np.std(n):.4f}{gap}")
        first = {(p, s): done[(p, "jax", s)]["first_acc"] for p, c, s in done if c == "jax"}
        for p in PRETRAININGS:
            a = [first[(p, s)] for s in seeds if (p, s) in first]
            if a:
                lines.append(f"- K-means on the **{p}**-pretrained embedding (the first refresh, {len(a)} seeds): "
                             f"ACC {np.mean(a):.4f} ± {np.std(a):.4f}")
        pairs = [("clustering torch − jax, on jax pretraining", ("jax", "torch"), ("jax", "jax")),
                 ("clustering torch − jax, on torch pretraining", ("torch", "torch"), ("torch", "jax")),
                 ("pretraining torch − jax, clustered by jax", ("torch", "jax"), ("jax", "jax")),
                 ("pretraining torch − jax, clustered by torch", ("torch", "torch"), ("jax", "torch")),
                 ("initialisation PyTorch's − ours (both pretrained by jax), clustered by jax",
                  ("jax-torchinit", "jax"), ("jax", "jax")),
                 ("pretraining torch − jax from the same initial draw, clustered by jax",
                  ("torch", "jax"), ("jax-torchinit", "jax")),
                 ("padding PyTorch's symmetric − Keras' (1, 2), same initial draw, clustered by torch",
                  ("torch-natural", "torch"), ("torch", "torch")),
                 ("natural PyTorch CAE − ours, clustered by torch", ("torch-natural", "torch"), ("jax", "torch"))]
        for label, a, b in pairs:
            d = [done[a + (s,)]["acc"] - done[b + (s,)]["acc"] for s in seeds if a + (s,) in done and b + (s,) in done]
            if d:
                se = np.std(d, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
                lines.append(f"- paired ΔACC, {label} ({len(d)} seeds): {np.mean(d):+.4f} ± {np.std(d):.4f} "
                             f"(sd; standard error {se:.4f}; {sum(v > 0 for v in d)} of {len(d)} up)")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--pretrainings", nargs="+", default=list(PRETRAININGS), choices=PRETRAININGS)
    p.add_argument("--clusterings", nargs="+", default=list(CLUSTERINGS), choices=CLUSTERINGS)
    p.add_argument("--dataset", default="usps")
    p.add_argument("--pretrain-epochs", type=int, default=None, help="override the methods' 200 (a smoke test)")
    p.add_argument("--max-iters", type=int, default=None, help="override the clustering phase's cap (a smoke test)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch's intra-op threads (default 1)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import torch

    from torch_reference import export_params, load_jax_params, pretrain_torch, sdekc_torch, to_nchw

    torch.set_num_threads(args.threads)
    _enable_compilation_cache()
    x, y = table3.load(args.dataset, args.data_root)
    x, y = np.asarray(x, np.float32), np.asarray(y)
    k = int(y.max()) + 1
    xt = to_nchw(x)
    cache = PretrainCache(args.cache_dir or default_cache_dir())
    out = Path(args.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)

    def report():
        cells = [json.loads(f.read_text()) for f in sorted((out / "cells").glob("*.json"))]
        atomic_write_text(out / "cross_implementation.md", markdown(cells, args.dataset))

    overrides = {k_: v for k_, v in (("pretrain_epochs", args.pretrain_epochs), ("max_iters", args.max_iters)) if v}
    for pre in args.pretrainings:  # the cheap cells first: every seed's jax-pretrained cells, then torch's
        for m in args.methods:
            cfg, skips = full_config(m, args.dataset, x.shape[1:], k, **overrides)
            for seed in args.seeds:
                todo = [c for c in args.clusterings if not (out / "cells" / f"{cell_name(m, pre, c, seed)}.json").exists()
                        and not (pre == "torch-natural" and c == "jax")]
                if not todo:
                    continue
                t0 = time.perf_counter()
                saved = out / "params" / f"{m}-{pre}-s{seed}.msgpack"
                if pre == "torch-natural":
                    natural, losses = natural_pretrained(out / "params" / f"{m}-{pre}-s{seed}.pt", cfg, x.shape[1:],
                                                         skips, seed, xt, log)
                elif pre == "jax":
                    params, mse = jax_pretrained(m, x, k, seed, args.dataset, cache, args.pretrain_epochs)
                    losses = [mse]
                elif saved.exists():
                    params, losses = load_params(saved)
                elif pre == "torch":
                    model = torch_model(x.shape[1:], skips, seed)
                    log(f"{m} seed {seed}: PyTorch pretraining, {cfg.pretrain_epochs} epochs")
                    losses = pretrain_torch(model, xt, cfg.pretrain_epochs, batch_size=cfg.batch_size,
                                            lr=cfg.learning_rate, seed=seed)
                    params = export_params(model)
                    save_params(saved, params, losses)
                else:  # jax-torchinit
                    params0 = export_params(torch_model(x.shape[1:], skips, seed))
                    log(f"{m} seed {seed}: our pretraining from PyTorch's initial draw")
                    params, losses = jax_pretrain_from(cfg, params0, x, seed, skips, log)
                    save_params(saved, params, losses)
                pre_s = time.perf_counter() - t0
                if pre == "torch-natural":
                    model, diff = natural, None
                else:  # the PyTorch copy, checked once (only the torch clustering trains it, once)
                    model = load_jax_params(torch_model(x.shape[1:], skips, seed), params)
                    diff = check_same_function(params, model, x)
                for c in todo:
                    t1 = time.perf_counter()
                    first_acc = None
                    if c == "jax":
                        labels, first, n_iter, converged = jax_cluster(cfg, params, x, seed, skips)
                        first_acc = evaluate(y, first)["acc"]
                    else:
                        labels, n_iter = sdekc_torch(model, xt, k, max_iters=cfg.max_iters, steps_per_iter=cfg.steps_per_iter,
                                                     batch_size=cfg.batch_size, lr=cfg.cluster_lr, tol=cfg.tol,
                                                     n_init=cfg.kmeans_n_init, seed=seed)
                        converged = n_iter < cfg.max_iters
                    cell = {"method": m, "pretraining": pre, "clustering": c, "seed": seed, **evaluate(y, labels),
                            "first_acc": first_acc, "n_iter": n_iter, "converged": converged,
                            "pretrain_final_mse": losses[-1], "pretrain_s": pre_s,
                            "cluster_s": time.perf_counter() - t1, "cross_check_max_diff": diff,
                            "pretrain_epochs": cfg.pretrain_epochs, "max_iters": cfg.max_iters, "tol": cfg.tol}
                    atomic_write_json(out / "cells" / f"{cell_name(m, pre, c, seed)}.json", cell)
                    report()
                    log(f"{cell_name(m, pre, c, seed)}: ACC {cell['acc']:.4f} ({n_iter} iterations)")
    report()
    print((out / "cross_implementation.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
