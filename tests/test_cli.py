"""`sdekc run` end to end with a tiny budget on real USPS (embedded copy)."""
import json

import pytest

from sdekc_jax.cli import main


@pytest.mark.slow
def test_run_writes_results(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["run", "--dataset", "usps", "--subset", "test", "--seeds", "0", "1", "--pretrain-epochs", "1",
               "--max-iters", "2", "--steps-per-iter", "3", "--out", str(out), "--no-progress", "--quick"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"] == "usps" and res["method"] == "sdekc"
    assert res["config"]["skip_weights"] == [0.001, 0.999] and res["config"]["pretrain_epochs"] == 1
    assert [r["seed"] for r in res["runs"]] == [0, 1]
    for r in res["runs"]:
        assert set(r) >= {"seed", "acc", "nmi", "ari", "seconds", "n_iter"}
        assert 0.1 < r["acc"] <= 1 and 0 < r["nmi"] <= 1 and r["n_iter"] <= 2
    assert set(res["mean"]) == {"acc", "nmi", "ari"} and set(res["std"]) == {"acc", "nmi", "ari"}
    captured = capsys.readouterr()
    printed = captured.out
    assert "mean ± std" in printed and "0.8035" in printed  # the paper's USPS row beside ours
    assert not list(out.glob(".*.tmp"))  # atomic write leaves no temporary files
    # --quick: explicit flags win over its budget, and the output says the budget was reduced
    assert res["quick"]["n_images"] == 2007 and "not comparable" in res["quick"]["note"]
    assert "quick budget: not comparable to the paper's row" in printed
    assert captured.err.splitlines()[0] == f"output folder: {out}"  # printed first, before any work
    if not all(r["converged"] for r in res["runs"]):
        assert "did not converge" in captured.err


def test_quick_budget_is_about_a_minute_on_any_data_set():
    from sdekc_jax.cli import quick_budget
    assert quick_budget(9298, (16, 16, 1)) == {"n_images": 9298, "pretrain_epochs": 10, "max_iters": 20}  # USPS
    assert quick_budget(70000, (28, 28, 1)) == {"n_images": 10000, "pretrain_epochs": 3, "max_iters": 7}  # (Fashion-)MNIST
    assert quick_budget(1440, (28, 28, 1))["n_images"] == 1440  # COIL-20: all of it
    assert quick_budget(2462, (32, 32, 3))["max_iters"] == 5


def test_bad_dataset_and_unwritable_out(tmp_path):
    with pytest.raises(SystemExit):
        main(["run", "--dataset", "nope"])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit, match="not writable"):
        main(["run", "--out", str(blocker / "sub"), "--quick"])


def test_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    rc = main(["run", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--quick"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and str(tmp_path) in err


def test_precision_and_init_reach_the_run_config():
    from sdekc_jax.methods import get_method
    from sdekc_jax.methods.base import run_config

    m = get_method("sdekc")
    rc = run_config(m, m.config("usps", precision="bf16", init="dekm"), (16, 16, 1), 10)
    assert (rc.precision, rc.init) == ("bf16", "dekm")
    assert run_config(m, m.config("usps"), (16, 16, 1), 10).precision == "float32"
    with pytest.raises(ValueError, match="no setting"):
        get_method("kmeans").config("usps", precision="bf16")
