"""GPU check: what one accelerator gives SDEKC, in one command with a wall-clock budget.

Five parts, in this order; each is skipped (recorded with the reason "budget") when its estimate,
made from what has been measured so far, does not fit in what is left of ``--budget-min``:

1. ``usps_full``: SDEKC on all of USPS with the paper's protocol (200 pretraining epochs, at most
   1000 clustering iterations), run by ``sdekc_jax.run.fit``: wall time (compile included), both
   phases, seconds per epoch, iterations, ACC/NMI/ARI.
2. ``seeds``: ``--seeds`` (default 5) at a reduced budget as one vmapped program (``fit`` with the
   keys stacked; run twice: with and without its compile) against the same seeds one by one: the
   wall times, the throughput ratios, per-seed ACC.
3. ``conv_impl``: one pretraining epoch with ``conv_impl="lax"`` (what "auto" picks on GPU) against
   ``"gather"``: the 2nd and 3rd epochs timed, compile apart (jax issue 31662: transposed-conv
   gradients on CUDA).
4. ``precision``: float32 against ``precision="bf16"``: the epoch time as in 3, and a
   reduced-budget run's ACC for each.
5. ``fmnist_full``: Fashion-MNIST (70,000 x 28x28x1, ``--fmnist-dir``) with 200 epochs if they fit,
   else as many as fit; skipped when the data are not there.

Before part 1 one pretraining epoch is timed (``calibration``: the first estimates). The results
go to ``gpu_check.json`` and ``gpu_check.md`` (one table per part) under ``--out``, both written
atomically before and after every part, so a run stopped by a timeout keeps what it measured
(``"finished": false``, the part it was in as "running"). A part that raises is recorded with its
error; the next part runs.

On the GPU machine (one NVIDIA H200), from the repository root::

    pip install -e . && pip install -U "jax[cuda12]"
    python experiments/benchmarks/gpu_check.py --out $OUT/gpu

(``OUT`` is the folder the device tool brings back.) Where the machine has JAX with CUDA already
and nothing can be fetched, skip the installs: the script finds the package from its own path.
The default ``--fmnist-dir`` is ``../shared/data/fashion-mnist`` beside the repository, else
``shared/data/fashion-mnist`` inside it (the folder that travels to a device machine). On CPU the
script is tested with a tiny budget (tests/test_gpu_check.py), e.g.::

    python experiments/benchmarks/gpu_check.py --n-usps 128 --n-fmnist 128 --epochs 1 --max-iters 2 \\
        --seeds 0 1 --out /tmp/gpu
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sdekc_jax.config import SKIP_PRESETS, RunConfig  # noqa: E402
from sdekc_jax.data import load_dataset  # noqa: E402
from sdekc_jax.io import atomic_write_json, atomic_write_text  # noqa: E402
from sdekc_jax.metrics import evaluate  # noqa: E402
from sdekc_jax.pretrain import cached_jit  # noqa: E402
from sdekc_jax.run import fit, make_steps  # noqa: E402

PAPER_EPOCHS, PAPER_ITERS = 200, 1000
USPS_SHAPE, FMNIST_SHAPE = (16, 16, 1), (28, 28, 1)
FMNIST_N = 70_000
FMNIST_DIRS = (ROOT.parent / "shared" / "data" / "fashion-mnist", ROOT / "shared" / "data" / "fashion-mnist")
SKIPS = jnp.asarray(SKIP_PRESETS["swapped"], jnp.float32)  # (w_enc, w_dec) = (0.001, 0.999)
MODEL: dict = {}  # further RunConfig fields of every run: none (the paper's CAE); the test shrinks the model
PARTS = {"usps_full": "1. Full USPS protocol", "seeds": "2. Vmapped seeds vs one by one",
         "conv_impl": "3. lax vs gather convolutions", "precision": "4. float32 vs bf16",
         "fmnist_full": "5. Fashion-MNIST full protocol"}


class Budget:
    """The wall-clock budget of the whole script; :meth:`skip_reason` is the one budget check."""

    def __init__(self, minutes: float):
        self.seconds = 60.0 * minutes
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def skip_reason(self, estimate_s: float | None) -> str | None:
        """"budget" when nothing is left or the estimate (None: nothing measured to estimate from)
        is more than what is left; else None (run)."""
        left = self.left()
        return "budget" if left <= 0 or (estimate_s is not None and estimate_s > left) else None


@dataclasses.dataclass
class Costs:
    """What has been measured so far on the USPS images in use (``n`` of them), for the estimates.
    A fit of E epochs and I iterations on n' images of p pixels is estimated as its compile (three
    times the pretraining epoch's) plus E epochs and the expected iterations, each scaled by the
    images' size: an epoch by n'p, the optimiser steps of an iteration by p, its refresh (embedding
    and K-means of all points) by n'p."""
    n: int
    batch_size: int = 256
    steps_per_iter: int = 40
    epoch_s: float | None = None          # one pretraining epoch, steady state (calibration)
    epoch_compile_s: float | None = None  # compiling the pretraining epoch
    iter_s: float | None = None           # one clustering iteration, its compile amortised (part 1)
    n_iter: int | None = None             # part 1's iterations: what the other fits are expected to need

    @property
    def step_s(self) -> float:
        return self.epoch_s / math.ceil(self.n / self.batch_size)

    def epoch(self, n: int, pixels: int) -> float:
        return self.epoch_s * n * pixels / (self.n * np.prod(USPS_SHAPE))

    def iteration(self, n: int, pixels: int) -> float:
        steps = self.steps_per_iter * self.step_s
        # before part 1: a guess (the steps and as much again for the refresh)
        refresh = steps if self.iter_s is None else max(self.iter_s - steps, 0.0)
        px = pixels / np.prod(USPS_SHAPE)
        return steps * px + refresh * px * n / self.n

    def fit_s(self, epochs: int, iters: int, n: int | None = None, pixels: int = int(np.prod(USPS_SHAPE)),
              runs: int = 1) -> float | None:
        """Estimated seconds of ``runs`` fits (None before anything was measured)."""
        if self.epoch_s is None:
            return None
        n = self.n if n is None else n
        expected_iters = min(iters, 100 if self.n_iter is None else max(self.n_iter, 1))
        # compiling a fit: the pretraining epoch and the clustering programs, guessed as 3 epochs' worth
        return 3 * self.epoch_compile_s + runs * (epochs * self.epoch(n, pixels)
                                                  + expected_iters * self.iteration(n, pixels))


def device_info() -> dict:
    dev = jax.devices()[0]
    return {"platform": dev.platform, "device_kind": getattr(dev, "device_kind", ""), "count": jax.device_count(),
            "backend": jax.default_backend()}


def time_epochs(cfg: RunConfig, x, epochs: int = 3) -> dict:
    """One jitted pretraining epoch of ``cfg`` on ``x``, run ``epochs`` times: the first compiles,
    the others are timed (``epoch_s``: their mean); ``compile_s`` is the first's excess."""
    # the parameters and the optimiser state do not depend on the kernels or the precision: made by
    # the default config's steps, jitted as fit jits them (one compile serves part 1's fit too)
    base = make_steps(cfg.replace(conv_impl="auto", precision="float32"))
    state = cached_jit(base.pretrain_init)(cached_jit(base.init)(jax.random.key(0)))
    epoch = cached_jit(make_steps(cfg).pretrain_epoch, None, (0,))
    xj, key = jnp.asarray(x, jnp.float32), jax.random.key(1)
    times = []
    for e in range(epochs):
        t = time.perf_counter()
        state, loss = epoch(state, xj, key, e, SKIPS)
        loss.block_until_ready()
        times.append(time.perf_counter() - t)
    steady = float(np.mean(times[1:]))
    return {"epoch_s": steady, "compile_s": max(times[0] - steady, 0.0), "samples_per_s": len(x) / steady,
            "timed_epochs_s": times[1:], "loss": float(loss)}


def run_fit(cfg: RunConfig, x, y, seeds) -> dict:
    """``fit`` of ``cfg`` with one key (``seeds`` an int) or the keys of ``seeds`` stacked (one
    vmapped program): wall time, both phases, and per run the iterations, convergence and metrics."""
    key = jax.random.key(seeds) if np.ndim(seeds) == 0 else jnp.stack([jax.random.key(s) for s in seeds])
    t = time.perf_counter()
    f = fit(cfg, x, key, SKIPS, verbose=False)
    wall = time.perf_counter() - t
    runs = [f.one(i) for i in range(len(seeds))] if f.batched else [f.result]
    out = {"wall_s": wall, "pretrain_s": f.timings["pretrain"], "cluster_s": f.timings["cluster"],
           "s_per_epoch": f.timings["pretrain"] / cfg.pretrain_epochs if cfg.pretrain_epochs else None,
           "n_iter": [int(r.n_iter) for r in runs], "converged": [bool(r.converged) for r in runs]}
    metrics = [evaluate(y, np.asarray(r.labels)) for r in runs]
    out.update({k: [m[k] for m in metrics] for k in ("acc", "nmi", "ari")})
    if not f.batched:  # one run: scalars
        out.update({k: out[k][0] for k in ("n_iter", "converged", "acc", "nmi", "ari")})
    return out


# --- the parts ------------------------------------------------------------------------------------
# Each takes the context ``c`` and returns ``(estimate_s, run)``: ``run()`` measures and returns the
# part's rows (one table) and summary numbers.

@dataclasses.dataclass
class Context:
    args: argparse.Namespace
    budget: Budget
    costs: Costs
    usps: Callable[[], tuple]  # () -> (x, y), loaded once

    def full(self, **kw) -> RunConfig:
        """The paper's protocol on USPS (parts 1, 3, 4 and the calibration: one compiled epoch)."""
        return self.cfg(pretrain_epochs=self.epochs(PAPER_EPOCHS), max_iters=self.iters(PAPER_ITERS), **kw)

    def epochs(self, wanted: int) -> int:
        return wanted if self.args.epochs is None else min(wanted, self.args.epochs)

    def iters(self, wanted: int) -> int:
        return wanted if self.args.max_iters is None else min(wanted, self.args.max_iters)

    def cfg(self, image_shape=USPS_SHAPE, **kw) -> RunConfig:
        return RunConfig(n_clusters=10, image_shape=image_shape, **{**MODEL, **kw})

    def reduced(self) -> RunConfig:
        return self.cfg(pretrain_epochs=self.epochs(self.args.reduced_epochs),
                        max_iters=self.iters(self.args.reduced_iters))


def part_usps_full(c: Context):
    cfg = c.full()

    def run():
        x, y = c.usps()
        r = run_fit(cfg, x, y, c.args.seed)
        c.costs.iter_s, c.costs.n_iter = r["cluster_s"] / max(r["n_iter"], 1), r["n_iter"]
        # the calibration compiled this config's pretraining epoch (and initialisation) already
        return {"rows": [{"n": len(x), "epochs": cfg.pretrain_epochs, "max_iters": cfg.max_iters, **r}],
                "epoch_compiled_by_calibration_s": c.costs.epoch_compile_s}

    return c.costs.fit_s(cfg.pretrain_epochs, cfg.max_iters), run


def part_seeds(c: Context):
    cfg, seeds = c.reduced(), c.args.seeds
    one = c.costs.fit_s(cfg.pretrain_epochs, cfg.max_iters)

    def run():
        x, y = c.usps()
        vm = [run_fit(cfg, x, y, seeds) for _ in range(2)]  # the second: compiled already
        seq = [run_fit(cfg, x, y, s) for s in seeds]  # the first seed compiles
        keep = ("wall_s", "pretrain_s", "cluster_s", "acc", "n_iter")
        rows = [{"way": "vmapped", **{k: vm[0][k] for k in keep}},
                {"way": "vmapped again", **{k: vm[1][k] for k in keep}},
                {"way": "one by one", **{k: sum(r[k] for r in seq) for k in keep[:3]},
                 **{k: [r[k] for r in seq] for k in keep[3:]}}]
        seq_walls = [r["wall_s"] for r in seq]
        # the ratios: the seeds' throughput vmapped over one by one; "compiled": without the compiles
        return {"rows": rows, "seeds": seeds, "epochs": cfg.pretrain_epochs, "max_iters": cfg.max_iters,
                "sequential_wall_s_per_seed": seq_walls, "throughput_ratio": sum(seq_walls) / vm[0]["wall_s"],
                "throughput_ratio_compiled": (float(np.mean(seq_walls[1:])) * len(seeds) / vm[1]["wall_s"]
                                              if len(seeds) > 1 else None)}

    # the vmapped side estimated as no faster than the seeds one by one
    return None if one is None else 3 * len(seeds) * one, run


def _epochs_estimate(c: Context, variants: int) -> float | None:
    if c.costs.epoch_s is None:
        return None
    return variants * (c.costs.epoch_compile_s + 3 * c.costs.epoch_s)


def part_conv_impl(c: Context):
    def run():
        x, _ = c.usps()
        rows = [{"conv_impl": impl, **time_epochs(c.full(conv_impl=impl), x)} for impl in ("lax", "gather")]
        return {"rows": rows, "n": len(x), "auto_picks": "gather" if jax.default_backend() == "cpu" else "lax",
                "gather_over_lax_epoch_s": rows[1]["epoch_s"] / rows[0]["epoch_s"]}

    return _epochs_estimate(c, 2), run


def part_precision(c: Context):
    cfg = c.reduced()
    fits = c.costs.fit_s(cfg.pretrain_epochs, cfg.max_iters)
    epoch_timings = _epochs_estimate(c, 2)

    def run():
        x, y = c.usps()
        rows = []
        for precision in ("float32", "bf16"):
            timing = time_epochs(c.full(precision=precision), x)
            r = run_fit(cfg.replace(precision=precision), x, y, c.args.seed)
            rows.append({"precision": precision, **timing, "reduced_acc": r["acc"], "reduced_n_iter": r["n_iter"],
                         "reduced_wall_s": r["wall_s"]})
        return {"rows": rows, "n": len(x), "reduced_epochs": cfg.pretrain_epochs, "reduced_max_iters": cfg.max_iters,
                "bf16_over_float32_epoch_s": rows[1]["epoch_s"] / rows[0]["epoch_s"],
                "note": "float32 is the default config: its programs were compiled by earlier parts"}

    return None if epoch_timings is None else epoch_timings + 2 * fits, run


def part_fmnist_full(c: Context):
    n = FMNIST_N if c.args.n_fmnist is None else min(c.args.n_fmnist, FMNIST_N)
    pixels, iters = int(np.prod(FMNIST_SHAPE)), c.iters(PAPER_ITERS)
    cap = c.epochs(PAPER_EPOCHS)

    def epochs_that_fit() -> int:
        if c.costs.epoch_s is None:
            return cap
        room = c.budget.left() - c.costs.fit_s(0, iters, n, pixels)
        return int(max(0, min(cap, room // c.costs.epoch(n, pixels))))

    def run():
        x, y = load_dataset("fashion-mnist", c.args.fmnist_dir)
        x, y = x[:n], y[:n]
        k = epochs_that_fit()
        if k < 1:
            return {"skipped": "budget"}
        r = run_fit(c.cfg(FMNIST_SHAPE, pretrain_epochs=k, max_iters=iters), x, y, c.args.seed)
        return {"rows": [{"n": len(x), "epochs_done": k, "epochs_protocol": PAPER_EPOCHS, "max_iters": iters, **r}]}

    return c.costs.fit_s(1, iters, n, pixels), run


PART_FNS = {"usps_full": part_usps_full, "seeds": part_seeds, "conv_impl": part_conv_impl,
            "precision": part_precision, "fmnist_full": part_fmnist_full}


# --- the report -----------------------------------------------------------------------------------

def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(u) for u in v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(report: dict) -> str:
    d = report["device"]
    lines = [f"# GPU check: {d['platform']} {d['device_kind']}", "",
             f"jax {report['jax']}; budget {report['budget_min']:g} min; {report['total_s']:.1f} s so far; "
             f"finished: {report['finished']}", ""]
    cal = report.get("calibration")
    if cal:
        lines += [f"Calibration (one pretraining epoch, n={cal.get('n')}): " + (
            f"{_fmt(cal['epoch_s'])} s/epoch, compile {_fmt(cal['compile_s'])} s" if "epoch_s" in cal
            else f"{cal['status']}: {cal.get('error') or cal.get('reason')}"), ""]
    for name, title in PARTS.items():
        part = report["parts"].get(name)
        if part is None:
            continue
        lines.append(f"## {title}")
        lines.append("")
        if part["status"] != "ok":  # skipped, error, or running (a run stopped in this part)
            detail = part.get("error") or part.get("reason")
            lines.append(f"{part['status']}{': ' + detail if detail else ''} "
                         f"(estimate {_fmt(part['estimate_s'])} s, {part['left_s']:.1f} s left)")
        else:
            rows = part["rows"]
            cols = list(dict.fromkeys(k for r in rows for k in r))
            lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_fmt(r.get(k)) for k in cols) + " |" for r in rows]
            extra = {k: v for k, v in part.items() if k not in ("rows", "status", "left_s", "estimate_s")}
            lines += ["", "; ".join(f"{k} {_fmt(v)}" for k, v in extra.items())]
        lines.append("")
    return "\n".join(lines)


def fmnist_default() -> str | None:
    return next((str(p) for p in FMNIST_DIRS if p.is_dir()), None)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, default=8.0, help="wall-clock budget of the whole script (minutes)")
    ap.add_argument("--out", default="results/gpu", help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--usps-dir", help="USPS files (default: the embedded copy)")
    ap.add_argument("--fmnist-dir", default=fmnist_default(),
                    help="Fashion-MNIST IDX files (default: shared/data/fashion-mnist beside or inside the repository)")
    ap.add_argument("--n-usps", type=int, help="use the first N USPS images in every USPS part")
    ap.add_argument("--n-fmnist", type=int, help="use the first N Fashion-MNIST images")
    ap.add_argument("--epochs", type=int, help="cap every pretraining budget (tests)")
    ap.add_argument("--max-iters", type=int, help="cap every clustering budget (tests)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="part 2's seeds")
    ap.add_argument("--seed", type=int, default=0, help="the seed of the single runs")
    ap.add_argument("--reduced-epochs", "--seeds-epochs", type=int, default=20, help="parts 2 and 4")
    ap.add_argument("--reduced-iters", type=int, default=20, help="parts 2 and 4")
    args = ap.parse_args(argv)
    args.seeds = list(dict.fromkeys(args.seeds))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    budget = Budget(args.budget_min)
    out = Path(args.out)

    @functools.cache
    def usps():
        x, y = load_dataset("usps", args.usps_dir)
        return (x, y) if args.n_usps is None else (x[:args.n_usps], y[:args.n_usps])

    n_usps = 9298 if args.n_usps is None else args.n_usps  # the embedded copy's size, for the estimates
    c = Context(args, budget, Costs(n_usps), usps)
    report = {"script": "experiments/benchmarks/gpu_check.py", "device": device_info(), "jax": jax.__version__,
              "budget_min": args.budget_min, "args": vars(args), "finished": False, "total_s": 0.0,
              "calibration": None, "parts": {}}

    def write():
        report["total_s"] = budget.elapsed()
        atomic_write_json(out / "gpu_check.json", report)
        atomic_write_text(out / "gpu_check.md", markdown(report))

    print(f"[gpu_check] jax {jax.__version__}; {report['device']}; budget {args.budget_min:g} min", flush=True)
    write()
    report["calibration"] = record("calibration", budget, None, lambda: calibrate(c))
    write()
    for name, part_fn in PART_FNS.items():
        estimate, run = part_fn(c)
        report["parts"][name] = {"status": "running", "estimate_s": estimate, "left_s": budget.left()}
        write()
        unavailable = "no Fashion-MNIST data (--fmnist-dir)" if name == "fmnist_full" and not args.fmnist_dir else None
        report["parts"][name] = record(name, budget, estimate, run, unavailable)
        write()
    report["finished"] = True
    write()
    return report


def calibrate(c: Context) -> dict:
    x, _ = c.usps()
    r = time_epochs(c.full(), x)
    c.costs = dataclasses.replace(c.costs, n=len(x), epoch_s=r["epoch_s"], epoch_compile_s=r["compile_s"])
    return {"n": len(x), **r}


def record(name: str, budget: Budget, estimate: float | None, run, unavailable: str | None = None) -> dict:
    """Run one part unless it is unavailable or over budget; its entry: status "ok" (with what
    ``run`` returned), "skipped" (with the reason) or "error"; one printed line."""
    left = budget.left()
    entry = {"estimate_s": estimate, "left_s": left}
    reason = unavailable or budget.skip_reason(estimate)
    if reason is None:
        t = time.perf_counter()
        try:
            result = run()
            reason = result.pop("skipped", None)
            entry.update(result)
        except Exception as e:
            entry.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-3000:])
        entry["seconds"] = time.perf_counter() - t
    if reason is not None:
        entry.update(status="skipped", reason=reason)
    entry.setdefault("status", "ok")
    detail = {"ok": f"{entry.get('seconds', 0):.1f} s", "skipped": reason, "error": entry.get("error")}[entry["status"]]
    print(f"[gpu_check] {name}: {entry['status']} ({detail}; estimate {_fmt(estimate)} s, {left:.1f} s left)",
          flush=True)
    return entry


if __name__ == "__main__":
    main()
