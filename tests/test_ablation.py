"""The skip-weight / embedding-size sweep: its configuration as validated data, its report."""
import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import ablation_skips as ab  # noqa: E402
import table3  # noqa: E402


def test_default_sweep_is_the_issue_grid():
    cfg = ab.SweepConfig().validate()
    confs = cfg.configurations()
    assert confs[:7] == [(None, 10), (0.001, 10), (0.01, 10), (0.1, 10), (0.5, 10), (0.9, 10), (0.999, 10)]
    assert sorted(confs[7:], key=str) == sorted([(w, d) for d in (5, 20, 40) for w in (None, 0.001)], key=str)
    assert len(set(confs)) == len(confs) == 13 and cfg.seeds == (0, 1, 2)
    # an embedding size equal to the skip sweep's is not run twice
    assert len(ab.SweepConfig(embedding_dims=(10, 20)).validate().configurations()) == 7 + 2


@pytest.mark.parametrize("bad, match", [
    (dict(w_enc=(0.0,)), "strictly between 0 and 1"),
    (dict(w_enc=(1.0,)), "strictly between 0 and 1"),
    (dict(w_enc=(1.5,)), "strictly between 0 and 1"),
    (dict(w_enc=(math.nan,)), "strictly between 0 and 1"),
    (dict(w_enc=(True,)), "strictly between 0 and 1"),
    (dict(embedding_skips=(None, 2.0)), "strictly between 0 and 1"),
    (dict(w_enc=(0.1, 0.1)), "repeated"),
    (dict(seeds=(0, 0)), "repeated"),
    (dict(embedding_dims=(0,)), "positive integers"),
    (dict(embedding_dims=(2.5,)), "positive integers"),
    (dict(seeds=(-1,)), "non-negative"),
    (dict(seeds=()), "at least one seed"),
    (dict(w_enc=(), no_skips=False, embedding_dims=()), "empty"),
    (dict(embedding_skips=()), "at least one skip setting"),
])
def test_bad_sweeps_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        ab.SweepConfig(**bad).validate()


def test_command_line_builds_the_sweep():
    args = ab.build_parser().parse_args(["--w-enc", "0.2", "--embedding-dims", "--embedding-skips", "none", "0.3",
                                         "--seeds", "4"])
    assert args.w_enc == [0.2] and args.embedding_dims == [] and args.embedding_skips == [None, 0.3] and args.seeds == [4]
    with pytest.raises(ValueError, match="strictly between"):
        ab.main(["--w-enc", "0", "--embedding-dims", "--out", "/nonexistent-unused"])


def cell(w, d, seed, acc, pre_acc):
    return {"w_enc": w, "w_dec": None if w is None else 1 - w, "embedding_dim": d, "seed": seed, "acc": acc,
            "nmi": acc - 0.1, "ari": acc - 0.2, "pre_acc": pre_acc, "pre_nmi": pre_acc - 0.1, "n_iter": 20,
            "budget": "pretrain 200 epochs, ≤39960 steps"}


def test_report_means_and_paired_gains_are_hand_computable(tmp_path):
    cells = {}
    for seed, (a0, a1) in enumerate([(0.70, 0.74), (0.80, 0.79)]):
        cells[ab.cell_key(None, 10, seed)] = cell(None, 10, seed, a0, 0.6)
        cells[ab.cell_key(0.001, 10, seed)] = cell(0.001, 10, seed, a1, 0.65)
    cells[ab.cell_key(0.5, 10, 0)] = {"w_enc": 0.5, "embedding_dim": 10, "seed": 0, "error": "FloatingPointError: x"}
    rows = ab.summarise(cells)
    assert rows["w_enc=0.001|d=10"]["acc"] == pytest.approx((0.765, 0.025))
    gain = ab.paired_gain(cells, 0.001, 10, "acc")
    assert gain[0] == pytest.approx(0.015) and gain[1] == pytest.approx(0.025) and gain[2] == 2
    md = ab.markdown(cells)
    assert "| 0.001, 0.999 | 10 | 0,1 | 0.6500 ± 0.0000 |" in md and "+0.0150 ± 0.0250 (2)" in md
    assert "w_enc=0.5|d=10|0: FloatingPointError" in md
    if ab.plot(cells, tmp_path / "a.png"):
        assert (tmp_path / "a.png").stat().st_size > 1000


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(SystemExit, match="not writable"):
        table3.open_grid(str(ro / "sub"), "ablation")


def test_out_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(SystemExit, match="not writable"):
        table3.open_grid(str(f), "ablation")


def test_vmapped_group_agrees_with_the_cells_run_one_by_one(tmp_path):
    """--vmapped runs the cells of an embedding size as one program (sweep.skip_sweep, via
    run_group) with the settings of the cell run alone (run_cell; one of the two, to save compile
    time: a mix-up of runs would show there too). A vmapped program rounds differently, so the
    cell agrees with the cell alone to tolerance, not bit for bit: same settings, budget and
    iterations, the same pretraining loss to float tolerance, metrics within a few labels."""
    from sdekc_jax import load_dataset
    from sdekc_jax.cache import PretrainCache
    x, y = load_dataset("usps", None, "test")
    x, y = x[:400], y[:400]
    over = {"pretrain_epochs": 1, "max_iters": 2, "steps_per_iter": 2}
    vm = ab.run_group([(None, 0), (0.001, 0)], 10, x, y, overrides=over, progress=False,
                      checkpoint_dir=tmp_path / "group")
    assert not (tmp_path / "group").exists()  # removed once the group is done
    assert sorted(vm) == ["none|d=10|0", "w_enc=0.001|d=10|0"]
    alone = ab.run_cell(0.001, 10, 0, x, y, cache=PretrainCache(None), overrides=over, progress=False,
                        checkpoint_dir=tmp_path / "ck")
    cell = vm["w_enc=0.001|d=10|0"]
    assert cell["vmapped_group"] == 2 and "error" not in cell and "error" not in alone
    for m in ("n_iter", "config", "budget"):
        assert cell[m] == alone[m], m
    # tolerances well below the gap between the two settings (1 epoch: the MSEs are 8e-5 apart,
    # relatively), so a mix-up of the runs would still show
    mse = cell["final_pretrain_mse"]
    assert mse == pytest.approx(alone["final_pretrain_mse"], rel=1e-5)
    assert abs(vm["none|d=10|0"]["final_pretrain_mse"] - mse) > 1e-5 * mse
    for m in ("pre_acc", "pre_nmi", "acc", "nmi", "ari"):  # 400 points: 0.02 is 8 of them
        assert 0 <= cell[m] <= 1 and cell[m] == pytest.approx(alone[m], abs=0.02), m
    assert vm["none|d=10|0"]["config"]["skips"] == "none" and cell["config"]["skips"] == (0.001, 0.999)
