"""Run every performance benchmark, side by side, and write ``results/benchmarks.json`` and
``results/benchmarks.md`` (the table the README's Performance section shows).

    python experiments/benchmarks/run_all.py            # everything (~25 min on 2 CPU cores)
    python experiments/benchmarks/run_all.py --no-e2e   # without the end-to-end run (~8 min)
    python experiments/benchmarks/run_all.py --e2e-json results/end-to-end/usps.json  # its row from a run alone

PyTorch is imported only by the comparisons that need it (targets 1 and 5, left out when it is
not installed). Every JAX side runs the package's own pieces (``sdekc_jax.run.make_steps`` /
``fit``, through ``sdekc run`` for the end-to-end target).

Targets (performance issue): 1. pretraining >= 1.2x PyTorch; 2. K-means >= 3x scikit-learn;
3. clustering phase >= 10x a host-loop reference; 4. linear in n, no (n, k, d) tensor;
5. end to end <= 0.8x PyTorch's wall time; 6. compile time reported separately.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clustering_scaling  # noqa: E402
import clustering_vs_hostloop  # noqa: E402
import end_to_end_vs_torch  # noqa: E402
import kmeans_vs_sklearn  # noqa: E402
import pretrain_vs_torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def _versions():
    import jax
    import sklearn

    torch_version = __import__("torch").__version__ if _has_torch() else "not installed"
    return {"python": platform.python_version(), "jax": jax.__version__, "torch": torch_version,
            "sklearn": sklearn.__version__, "cpu_count": os.cpu_count(), "platform": jax.devices()[0].platform,
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def _verdict(value, target, higher=True):
    ok = value >= target if higher else value <= target
    return "met" if ok else "not met"


def markdown(res: dict) -> str:
    lines = ["| target | measurement | JAX | reference | ratio | goal | |", "|---|---|---|---|---|---|---|"]
    for r in res.get("pretrain", []):
        lines.append(f"| 1 pretraining | CAE {r['image']}, batch 256, Adam (twin's outputs equal to "
                     f"{r['max_abs_output_diff']:.0e}) | {r['jax_samples_per_s']:.0f} samples/s | PyTorch twin "
                     f"{r['torch_samples_per_s']:.0f}, natural {r['torch_natural_samples_per_s']:.0f} samples/s | "
                     f"{r['speedup']:.2f}x, {r['speedup_vs_natural']:.2f}x (faster: {r['speedup_vs_faster']:.2f}x) | "
                     f">= 1.2x the faster | {_verdict(r['speedup_vs_faster'], 1.2)} |")
    for r in res.get("kmeans", []):
        lines.append(f"| 2 K-means | {r['data']}, 70,000 x 10, k 10, n_init 10 (inertia ratio "
                     f"{r['inertia_ratio']:.4f}) | {r['jax_s']:.2f} s | scikit-learn {r['sklearn_s']:.2f} s | "
                     f"{r['speedup']:.2f}x | >= 3x | {_verdict(r['speedup'], 3.0)} |")
    r = res.get("clustering")
    if r:
        lines.append(f"| 3 clustering phase | {r['dataset']} n={r['n']:,}, {r['iters']} iterations x "
                     f"{r['steps_per_iter']} steps | {r['jax_s_per_iter']:.3f} s/iter | host loop "
                     f"{r['reference_s_per_iter']:.3f} s/iter | {r['speedup']:.2f}x | >= 10x | "
                     f"{_verdict(r['speedup'], 10.0)} |")
    rows = res.get("scaling", [])
    if rows:
        per = [r["s_per_iter"] / r["n"] for r in rows]
        desc = ", ".join(f"n={r['n']:,}: {r['s_per_iter']:.2f} s/iter, {r['xla_temp_bytes_per_point']:.0f} B/point temp"
                         for r in rows)
        growth = per[-1] / per[0]
        lines.append(f"| 4 scaling | {desc} | | | time per point, largest / smallest n: {growth:.2f} | linear, "
                     f"no (n,k,d) ({rows[0]['nkd_tensor_bytes_per_point']} B/point) | "
                     f"{_verdict(max(r['xla_temp_bytes_per_point'] for r in rows), rows[0]['nkd_tensor_bytes_per_point'], False)} |")
    r = res.get("end_to_end")
    if r:
        lines.append(f"| 5 end to end | `sdekc run` {r['dataset']}, {r['pretrain_epochs']} epochs + clustering "
                     f"(ACC {r['jax']['acc']:.3f} / PyTorch twin {r['torch']['acc']:.3f}, natural "
                     f"{r['torch_natural']['acc']:.3f}) | {r['jax']['wall_s']:.0f} s | PyTorch twin "
                     f"{r['torch']['wall_s']:.0f} s, natural {r['torch_natural']['wall_s']:.0f} s | "
                     f"{r['time_ratio']:.2f}, {r['time_ratio_natural']:.2f} of the time (the faster: "
                     f"{r['time_ratio_vs_faster']:.2f}) | <= 1.0 of the faster | "
                     f"{_verdict(r['time_ratio_vs_faster'], 1.0, False)} |")
    comp = []
    for r in res.get("pretrain", []):
        comp.append(f"pretraining epoch {r['image']} {r['jax_compile_s']:.1f} s")
    for r in res.get("kmeans", []):
        comp.append(f"K-means {r['data']} {r['compile_s']:.1f} s")
    if res.get("clustering"):
        comp.append(f"clustering chunk {res['clustering']['jax_compile_s']:.1f} s")
    if comp:
        lines.append(f"| 6 compile time | reported apart from run time: {'; '.join(comp)} | | | | | |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run (the long one)")
    ap.add_argument("--e2e-json", help="take target 5's row from this end_to_end_vs_torch.py --json file (measured "
                                       "alone earlier) instead of running it")
    ap.add_argument("--out", default=os.path.join(ROOT, "results"))
    args = ap.parse_args(argv)
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "versions": _versions()}
    torch = _has_torch()
    if not torch:
        print("PyTorch is not installed: targets 1 and 5 (the PyTorch comparisons) are left out", flush=True)
    if torch:
        print("== 1. pretraining vs PyTorch", flush=True)
        res["pretrain"] = pretrain_vs_torch.main([])
    print("== 2. K-means vs scikit-learn", flush=True)
    res["kmeans"] = kmeans_vs_sklearn.main([])
    print("== 3. clustering phase vs host-loop reference", flush=True)
    res["clustering"] = clustering_vs_hostloop.main([])
    print("== 4. clustering phase scaling", flush=True)
    res["scaling"] = clustering_scaling.main([])
    if args.e2e_json:
        with open(args.e2e_json) as f:
            res["end_to_end"] = {**json.load(f), "source": args.e2e_json}
    elif not args.no_e2e and torch:
        print("== 5. end to end vs PyTorch", flush=True)
        res["end_to_end"] = end_to_end_vs_torch.main([])
    os.makedirs(args.out, exist_ok=True)
    from sdekc_jax.io import atomic_write_json

    atomic_write_json(os.path.join(args.out, "benchmarks.json"), res)
    table = markdown(res)
    command = "python experiments/benchmarks/run_all.py"
    if args.e2e_json:
        command = f"`{command} --e2e-json {args.e2e_json}` (target 5 measured alone, earlier)"
    else:
        command = f"`{command}{' --no-e2e' if args.no_e2e else ''}`"
    with open(os.path.join(args.out, "benchmarks.md"), "w") as f:
        f.write(f"Measured {res['date']} on {res['versions']['cpu_count']} CPU cores "
                f"(jax {res['versions']['jax']}, torch {res['versions']['torch']}, scikit-learn "
                f"{res['versions']['sklearn']}); command: {command}.\n\n" + table)
    print(table)
    return res


if __name__ == "__main__":
    main()
