"""experiments/benchmarks/gpu_check.py on CPU: every part measures with tiny settings, a part that
fails is recorded and the next one runs, and a tiny budget skips the parts instead of running them."""
import importlib.util
import json
import sys
from pathlib import Path

import jax
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


gpu_check = _load()
TINY = ["--n-usps", "128", "--n-fmnist", "128", "--epochs", "1", "--max-iters", "2", "--seeds", "0", "1"]
# a smaller CAE than the paper's (fewer filters, 3x3 kernels) and a smaller K-means program: the test
# checks the plumbing, and compiling the paper's model for every part would take minutes on CPU
SMALL_MODEL = {"filters": (4, 8, 8), "kernels": (3, 3, 3), "kmeans_n_init": 1, "kmeans_scoring": "matmul"}


def _read(out: Path) -> dict:
    assert (out / "gpu_check.md").is_file()
    return json.loads((out / "gpu_check.json").read_text())


def _fake_epochs(cfg, x, epochs=3):
    return {"epoch_s": 1.0, "compile_s": 2.0, "samples_per_s": len(x) / 1.0, "timed_epochs_s": [1.0, 1.0], "loss": 0.1}


@pytest.mark.slow
def test_every_part_measures_with_tiny_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "MODEL", SMALL_MODEL)
    # the non-partitionable threefry: other random numbers, the same plumbing, and on XLA:CPU its
    # programs (the parameters' initialisation above all) compile several times faster
    with jax.threefry_partitionable(False):
        gpu_check.main([*TINY, "--budget-min", "30", "--out", str(tmp_path)])
    report = _read(tmp_path)
    assert report["finished"] and report["device"]["platform"] == "cpu" and report["total_s"] > 0
    assert report["calibration"]["status"] == "ok" and report["calibration"]["epoch_s"] > 0
    parts = report["parts"]
    assert list(parts) == list(gpu_check.PARTS)
    if gpu_check.fmnist_default() is None:  # no ../shared/data here: recorded, not run
        assert parts.pop("fmnist_full")["status"] == "skipped"
    for name, part in parts.items():
        assert part["status"] == "ok", (name, part.get("error"), part.get("reason"))
        for row in part["rows"]:
            for v in row.values():
                for u in v if isinstance(v, list) else [v]:
                    assert isinstance(u, (str, bool)) or u >= 0, (name, row)

    full = parts["usps_full"]["rows"][0]
    assert full["n"] == 128 and full["epochs"] == 1 and full["max_iters"] == 2 and 1 <= full["n_iter"] <= 2
    assert full["wall_s"] >= full["pretrain_s"] + full["cluster_s"] and 0 < full["acc"] <= 1
    seeds = parts["seeds"]
    assert [r["way"] for r in seeds["rows"]] == ["vmapped", "vmapped again", "one by one"]
    assert all(len(r["acc"]) == 2 for r in seeds["rows"]) and seeds["throughput_ratio"] > 0
    conv = parts["conv_impl"]
    assert [r["conv_impl"] for r in conv["rows"]] == ["lax", "gather"] and conv["auto_picks"] == "gather"
    assert all(r["epoch_s"] > 0 and len(r["timed_epochs_s"]) == 2 for r in conv["rows"])
    prec = parts["precision"]["rows"]
    assert [r["precision"] for r in prec] == ["float32", "bf16"] and all(0 < r["reduced_acc"] <= 1 for r in prec)
    if "fmnist_full" in parts:
        fm = parts["fmnist_full"]["rows"][0]
        assert fm["n"] == 128 and fm["epochs_done"] == 1 and 0 < fm["acc"] <= 1

    md = (tmp_path / "gpu_check.md").read_text()
    assert all(f"## {title}" in md for title in gpu_check.PARTS.values())
    assert "| way | wall_s |" in md and "| vmapped again |" in md


def test_a_failing_part_is_recorded_and_the_next_part_runs(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(gpu_check, "time_epochs", _fake_epochs)
    monkeypatch.setattr(gpu_check, "run_fit", boom)
    gpu_check.main([*TINY, "--fmnist-dir", str(tmp_path / "absent"), "--budget-min", "1000", "--out", str(tmp_path)])
    parts = _read(tmp_path)["parts"]
    assert {n: p["status"] for n, p in parts.items()} == {
        "usps_full": "error", "seeds": "error", "conv_impl": "ok", "precision": "error", "fmnist_full": "error"}
    assert parts["seeds"]["error"] == "RuntimeError: boom" and "boom" in parts["seeds"]["traceback"]
    assert "error: RuntimeError: boom" in (tmp_path / "gpu_check.md").read_text()


def test_a_tiny_budget_skips_the_parts_instead_of_running_them(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "time_epochs", _fake_epochs)  # calibration: 1 s per epoch
    monkeypatch.setattr(gpu_check, "run_fit", lambda *a, **k: pytest.fail("a part ran over the budget"))
    gpu_check.main([*TINY, "--budget-min", "0.001", "--out", str(tmp_path)])
    report = _read(tmp_path)
    assert report["finished"]
    for name, part in report["parts"].items():
        assert (part["status"], part["reason"]) == ("skipped", "budget"), name
    assert "skipped: budget" in (tmp_path / "gpu_check.md").read_text()


def test_the_estimates_scale_with_what_was_measured():
    costs = gpu_check.Costs(n=1000, epoch_s=2.0, epoch_compile_s=5.0)
    assert gpu_check.Costs(n=1000).fit_s(10, 10) is None  # nothing measured: no estimate
    assert costs.epoch(4000, 2 * 256) == pytest.approx(16.0)  # an epoch scales with n and the pixels
    one = costs.fit_s(10, 10)
    assert costs.fit_s(20, 10) == pytest.approx(one + 20.0) and costs.fit_s(10, 10, runs=3) > 2 * one
    budget = gpu_check.Budget(1.0)
    assert budget.skip_reason(None) is None and budget.skip_reason(1.0) is None
    assert budget.skip_reason(61.0) == "budget" and gpu_check.Budget(0.0).skip_reason(None) == "budget"
