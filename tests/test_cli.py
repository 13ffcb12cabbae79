"""`sdekc run` end to end with a tiny budget on real USPS (embedded copy)."""
import json

import pytest

from sdekc_jax.cli import main


@pytest.mark.slow
def test_run_writes_results(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["run", "--dataset", "usps", "--subset", "test", "--seeds", "0", "1", "--pretrain-epochs", "1",
               "--max-iters", "2", "--steps-per-iter", "3", "--out", str(out), "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"] == "usps" and res["method"] == "sdekc"
    assert res["config"]["skip_weights"] == [0.001, 0.999] and res["config"]["pretrain_epochs"] == 1
    assert [r["seed"] for r in res["runs"]] == [0, 1]
    for r in res["runs"]:
        assert set(r) >= {"seed", "acc", "nmi", "ari", "seconds", "n_iter"}
        assert 0.1 < r["acc"] <= 1 and 0 < r["nmi"] <= 1 and r["n_iter"] <= 2
    assert set(res["mean"]) == {"acc", "nmi", "ari"} and set(res["std"]) == {"acc", "nmi", "ari"}
    printed = capsys.readouterr().out
    assert "mean ± std" in printed and "0.8035" in printed  # the paper's USPS row beside ours
    assert not list(out.glob(".*.tmp"))  # atomic write leaves no temporary files


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
