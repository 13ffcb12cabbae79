"""experiments/table2.py and experiments/figures.py: data choice, resumable cells, the plots' numbers."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sdekc_jax.methods import MethodResult

EXP = Path(__file__).resolve().parents[1] / "experiments"


def _load(name):
    sys.path.insert(0, str(EXP))
    spec = importlib.util.spec_from_file_location(name, EXP / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


table2 = _load("table2")
figures = _load("figures")


def _seismic(folder: Path, n=48):
    """Two classes of 16x48 'traces': energy in the top or the bottom half."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.normal(0, 0.1, (n, 16, 48))
    x[y == 0, :8] += 1.0
    x[y == 1, 8:] += 1.0
    folder.mkdir(parents=True)
    np.save(folder / "x.npy", x.astype(np.float32))
    np.save(folder / "y.npy", y + 1)  # labels 1/2: the loader remaps them to 0/1


def test_table2_prefers_seismic_and_falls_back_to_a_usps_pair(tmp_path):
    assert table2.choose_data(None, None, None) == ("usps", [3, 5])
    assert table2.choose_data(str(tmp_path), None, [0, 1]) == ("usps", [0, 1])
    (tmp_path / "seismic").mkdir()
    assert table2.choose_data(str(tmp_path), None, None) == ("seismic", None)
    assert table2.choose_data(str(tmp_path), "usps", [4, 9]) == ("usps", [4, 9])
    assert table2.data_label("usps", [3, 5]) == "usps 3 vs 5"


def test_table2_needs_two_classes(tmp_path):
    with pytest.raises(SystemExit):
        table2.main(["--dataset", "usps", "--out", str(tmp_path / "t2")])


@pytest.mark.slow
def test_table2_runs_both_methods_with_the_binary_preset_and_resumes(tmp_path, monkeypatch):
    _seismic(tmp_path / "data" / "seismic")
    out = tmp_path / "t2"
    args = ["--data-root", str(tmp_path / "data"), "--seeds", "0", "--max-pretrain-epochs", "2",
            "--max-cluster-steps", "20", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert table2.main(args) == 0
    cells = json.loads((out / "table2.json").read_text())["cells"]
    assert set(cells) == {"idcec|seismic|0", "sidcec|seismic|0"}
    for c in cells.values():
        assert "error" not in c, c
        assert c["arch"] == "binary" and c["n_samples"] == 48 and c["data"] == "seismic"
        assert c["config"]["pretrain_epochs"] == 2 and c["reduced_budget"]
        assert 0.5 <= c["acc"] <= 1.0
    assert cells["idcec|seismic|0"]["config"]["skips"] in (None, "none")
    assert cells["sidcec|seismic|0"]["config"]["skips"] not in (None, "none")
    md = (out / "table2.md").read_text()
    assert "| seismic | idcec | 1 |" in md and "| seismic | sidcec | 1 |" in md
    d = cells["sidcec|seismic|0"]["acc"] - cells["idcec|seismic|0"]["acc"]
    assert f"SIDCEC − IDCEC over 1 paired seeds: ACC {d:+.4f}" in md

    monkeypatch.setattr(table2.table3, "run_cell", lambda *a, **k: pytest.fail("finished cell recomputed"))
    assert table2.main(args) == 0


def test_curves_are_the_metrics_of_each_recorded_labelling():
    hist = {"labels": np.array([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 0, 0]]), "n_changed": np.array([4, 1, 0])}
    c = figures.curves(hist, np.array([0, 0, 1, 1]))
    assert c["iteration"] == [0, 1, 2]
    np.testing.assert_allclose(c["acc"], [1.0, 0.75, 1.0])
    assert c["nmi"][0] == pytest.approx(1.0) and c["nmi"][2] == pytest.approx(1.0) and c["nmi"][1] < 1
    assert c["changed_fraction"] == [None, 0.25, 0.0]


def test_figures_writes_every_plot_and_the_numbers_behind_them(tmp_path, monkeypatch):
    """The orchestration, with the methods replaced by fakes (training is tested elsewhere)."""
    calls = []

    def fake_run(method, x, k, *, seed, record_labels=False, **kw):
        calls.append((method, record_labels))
        n = len(x)
        rng = np.random.default_rng(len(calls))
        labels = rng.integers(0, k, n)
        emb = None if method == "kmeans" else rng.normal(size=(n, k)).astype(np.float32)
        hist = {}
        if record_labels:
            hist = {"labels": np.stack([rng.integers(0, k, n) for _ in range(3)] + [labels]),
                    "n_changed": np.array([n, 30, 5, 0])}
        return MethodResult(method, labels, emb, {"seed": seed}, 4, True, hist, {"pretrain": 0, "cluster": 0}, False)

    monkeypatch.setattr(figures, "run", fake_run)
    out = tmp_path / "fig"
    assert figures.main(["--n-samples", "90", "--n-points", "60", "--out", str(out)]) == 0
    assert calls == [("kmeans", False), ("cae-kmeans", False), ("dec", False), ("dekm", True), ("sdekc", True)]
    rep = json.loads((out / "figures.json").read_text())
    assert rep["n_samples"] == 90 and rep["n_points"] == 60
    assert set(rep["panels"]) == {"raw", "ae", "dec", "dekm", "sdekc"}
    assert set(rep["curves"]) == {"dekm", "sdekc"}
    assert rep["curves"]["dekm"]["changed_fraction"] == [None, 30 / 90, 5 / 90, 0.0]
    for f in ["tsne.png", "curves.png"] + [f"tsne-{p}.png" for p in rep["panels"]]:
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    z = np.load(out / "tsne.npz")
    assert z["labels"].shape == (60,)
    assert all(z[f"tsne_{p}"].shape == (60, 2) and np.isfinite(z[f"tsne_{p}"]).all() for p in rep["panels"])


def test_kmeans_schedule_runs_both_schedules_per_seed_reports_pairs_and_resumes(tmp_path, monkeypatch):
    ks = _load("kmeans_schedule")
    calls = []

    def fake_cell(name, dataset, seed, x, y, *, overrides, **kw):
        calls.append((name, overrides["kmeans_schedule"], seed))
        acc = 0.78 + 0.01 * seed + (0.005 if overrides["kmeans_schedule"] == "dekm" else 0.0)
        return {"method": name, "dataset": dataset, "seed": seed, "acc": acc, "nmi": 0.8, "ari": 0.7, "n_iter": 12,
                "converged": True, "pretrain_final_mse": 0.0125, "config": {}}

    monkeypatch.setattr(ks.table3, "run_cell", fake_cell)
    monkeypatch.setattr(ks.table3, "load", lambda d, r: (np.zeros((4, 16, 16, 1), np.float32), np.array([0, 1, 0, 1])))
    args = ["--seeds", "0", "1", "--methods", "dekm", "--out", str(tmp_path / "ks"), "--cache-dir", str(tmp_path / "c")]
    assert ks.main(args) == 0
    assert calls == [("dekm", "warm", 0), ("dekm", "dekm", 0), ("dekm", "warm", 1), ("dekm", "dekm", 1)]
    md = (tmp_path / "ks" / "kmeans_schedule.md").read_text()
    assert "paper, Table 3: ACC 0.7975" in md
    assert "| 0 | 0.7800 | 0.8000 | 12 | 0.7850 | 0.8000 | 12 | +0.0050 | 0.01250 |" in md
    assert "paired ΔACC (dekm − warm) over 2 seeds: +0.0050 ± 0.0000" in md
    assert "**warm** (2 seeds): ACC 0.7850 ± 0.0050" in md and "-0.0125 vs the paper" in md
    calls.clear()
    assert ks.main(args) == 0 and calls == []  # finished cells are not recomputed
    # --setting init: the initialisers, a grid of its own
    inits = []
    monkeypatch.setattr(ks.table3, "run_cell", lambda name, dataset, seed, x, y, *, overrides, **kw: (
        inits.append(overrides["init"]) or fake_cell(name, dataset, seed, x, y,
                                                     overrides={"kmeans_schedule": "warm"})))
    assert ks.main(["--setting", "init", "--seeds", "0", "--methods", "sdekc", "--out", str(tmp_path / "init"),
                    "--cache-dir", str(tmp_path / "c")]) == 0
    assert inits == ["glorot", "dekm"]
    md = (tmp_path / "init" / "paired_init.md").read_text()
    assert "ΔACC (dekm − glorot)" in md and "paper, Table 3: ACC 0.8035" in md
    with pytest.raises(SystemExit):
        ks.main(["--setting", "init", "--values", "warm", "--out", str(tmp_path / "bad")])


def test_experiment_scripts_refuse_a_bad_data_root_and_report_errors_in_one_line(tmp_path, capsys):
    table3 = _load("table3")
    with pytest.raises(SystemExit, match="--data-root /no/such/folder is not a folder"):
        figures.main(["--data-root", "/no/such/folder", "--out", str(tmp_path / "f")])
    with pytest.raises(SystemExit, match="has no folder 'usps'"):
        table3.load("usps", str(tmp_path))
    with pytest.raises(SystemExit, match="is not a folder"):
        table3.main(["--datasets", "usps", "--data-root", str(tmp_path / "typo"), "--out", str(tmp_path / "t")])

    capsys.readouterr()

    def bad(argv):
        raise ValueError("something the user can fix")

    assert table3.main_with_clear_errors(bad) == 2
    assert capsys.readouterr().err == "error: something the user can fix\n"
    out = table3.default_out("figures")
    assert out.startswith("results/figures-") and not (EXP.parent / out).exists()  # never a committed folder


def test_kmeans_restarts_names_merged_classes_and_picks_each_groups_lowest_inertia():
    """experiments/kmeans_restarts.py (the ARAE seed analysis): two true classes in one cluster are
    named; on three separated blobs, every restart's ACC is scored and each group of n_init
    restarts is represented by its lowest-inertia restart."""
    kr = _load("kmeans_restarts")
    y = np.array([0, 0, 1, 1, 2, 2])
    assert kr.shared_clusters(y, np.array([0, 0, 0, 0, 2, 1]), 3) == [(0, 1, 0)]
    assert kr.shared_clusters(y, np.array([1, 1, 0, 0, 2, 2]), 3) == []
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    z = (np.eye(3)[y] * 10 + rng.normal(0, 0.3, (90, 3))).astype(np.float32)
    a = kr.analyse(y, z, 3, n_init=2, n_restarts=4, seed=0)
    acc, inertia = np.asarray(a["acc"]), np.asarray(a["inertia"])
    assert len(acc) == 4 and len(a["group_acc"]) == 2
    assert a["best_inertia"] == inertia.min() and a["best_inertia_acc"] == 1.0 and a["best_shared"] == []
    assert a["group_acc"] == [acc[int(np.argmin(inertia[:2]))], acc[2 + int(np.argmin(inertia[2:]))]]
    assert "| 0 | 1.0000 |" in kr.markdown({"0": {"acc": 1.0, "inertia": 1.0, "shared": [], "analysis": a}}, "m")


def test_cross_implementation_report_pairs_cells_by_seed():
    """experiments/cross_implementation.py's report: one column per pretraining x clustering,
    paired differences over the seeds both cells have (hand-computed), the first refresh's ACC."""
    ci = _load("cross_implementation")
    acc = {("jax", "jax"): [0.78, 0.79], ("jax", "torch"): [0.79, 0.78], ("torch", "jax"): [0.80, 0.81],
           ("torch-natural", "torch"): [0.77, 0.80]}
    cells = [{"method": "sdekc", "pretraining": p, "clustering": c, "seed": s, "acc": a, "nmi": a, "first_acc": 0.7,
              "pretrain_final_mse": 0.0125} for (p, c), v in acc.items() for s, a in enumerate(v)]
    md = ci.markdown(cells, "usps")
    assert "| seed | jax × jax | jax × torch | torch × jax |" in md
    assert "| 1 | 0.7900 | 0.7800 | 0.8100 |" in md
    assert "pretraining torch − jax, clustered by jax (2 seeds): +0.0200 ± 0.0000" in md
    assert "clustering torch − jax, on jax pretraining (2 seeds): +0.0000 ± 0.0100" in md
    assert "on torch pretraining" not in md  # no torch x torch cell: that pair is left out
    assert "natural PyTorch CAE − ours, clustered by torch (2 seeds): +0.0000 ± 0.0200" in md
    assert "jax**-pretrained embedding (the first refresh, 2 seeds): ACC 0.7000" in md
    assert ci.cell_name("dekm", "torch", "jax", 3) == "dekm-torch-jax-s3"


def test_keras_reference_numpy_pieces_match_ours_and_hand_counts(tmp_path):
    """experiments/keras_reference.py (TensorFlow is imported only to run it): the changed-point
    count is blind to label names, ACC / NMI agree with ``sdekc_jax.metrics``, the greedy frame is
    the scatter's eigenbasis in ascending order, and the report sets the Keras cells beside ours."""
    from sdekc_jax.metrics import evaluate

    kr = _load("keras_reference")
    rng = np.random.default_rng(0)
    old = rng.integers(0, 4, 60)
    renamed = np.array([2, 0, 3, 1])[old]
    assert kr.n_changed(old, renamed, 4) == 0
    moved = renamed.copy()
    moved[[5, 9]] = (moved[[5, 9]] + 1) % 4
    assert kr.n_changed(old, moved, 4) == 2
    assert kr.n_changed(-np.ones(60, int), renamed, 4) == 60
    y = rng.integers(0, 4, 60)
    acc, nmi = kr.acc_nmi(y, moved)
    ref = evaluate(y, moved)
    assert acc == pytest.approx(ref["acc"]) and nmi == pytest.approx(ref["nmi"], abs=1e-9)

    h = rng.normal(size=(60, 3)).astype(np.float32) * np.array([1.0, 3.0, 0.3], np.float32)
    centres = np.stack([h[old == j].mean(0) for j in range(4)])
    v, hv, uv = kr.greedy_frame(h, old, centres)
    d = h - centres[old]
    scatter = v.T @ (d.T @ d) @ v
    assert np.allclose(v.T @ v, np.eye(3), atol=1e-5)
    assert np.allclose(scatter, np.diag(np.diag(scatter)), atol=1e-2 * np.abs(scatter).max())
    assert np.all(np.diff(np.diag(scatter)) > 0)  # ascending: the last coordinate scatters most
    assert np.allclose(hv, h @ v, atol=1e-5) and np.allclose(uv, centres @ v, atol=1e-5)

    cells = [{"method": "dekm", "seed": s, "acc": a, "nmi": a, "first_acc": 0.7, "n_refreshes": 15,
              "pretrain_final_mse": 0.012} for s, a in enumerate([0.80, 0.78, 0.82])]
    md = kr.markdown(cells, {("dekm", 0): 0.79, ("dekm", 1): 0.77, ("sdekc", 0): 0.5})
    assert "| 1 | 0.7800 | 0.7800 | 0.7000 | 15 | 0.01200 | 0.7700 |" in md
    assert "| 2 | 0.8200 | 0.8200 | 0.7000 | 15 | 0.01200 |  |" in md  # no run of ours for seed 2
    # means 0.80 and 0.78; standard error sqrt(0.02**2 / 3 + 0.01414**2 / 2) = 0.0153
    assert "Keras: ACC 0.8000 ± 0.0200" in md and "Keras − ours: +0.0200 (standard error 0.0153" in md
    assert "## sdekc" not in md

    # our cells may sit in several runner folders; a seed found twice must agree, a missing folder is an error
    for name, cells_here in (("a", {"dekm-jax-jax-s0": 0.79, "dekm-jax-torch-s0": 0.1}),
                             ("b", {"dekm-jax-jax-s5": 0.81, "dekm-jax-jax-s0": 0.79})):
        (tmp_path / name).mkdir()
        for stem, acc in cells_here.items():
            (tmp_path / name / f"{stem}.json").write_text(json.dumps({"method": "dekm", "seed": int(stem[-1]), "acc": acc}))
    assert kr.read_ours([tmp_path / "a", tmp_path / "b"]) == {("dekm", 0): 0.79, ("dekm", 5): 0.81}
    (tmp_path / "b" / "dekm-jax-jax-s0.json").write_text(json.dumps({"method": "dekm", "seed": 0, "acc": 0.5}))
    with pytest.raises(ValueError, match="another --ours folder"):
        kr.read_ours([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(FileNotFoundError):
        kr.read_ours([tmp_path / "nothere"])


@pytest.mark.parametrize("conv", ["lax", "gather"])
def test_a_keras_network_converts_to_our_function(conv):
    """keras_reference.to_sdekc_params: a Keras CAE (DEKM.py's layers, Keras 'same' padding, the
    two weighted skips, Conv2DTranspose's flipped taps) is our network's function to float
    rounding. The fixture is a small Keras network and its outputs, written by
    ``experiments/keras_reference.py --write-fixture`` (TensorFlow 2.15)."""
    import jax.numpy as jnp

    from sdekc_jax.models import reconstruct

    kr = _load("keras_reference")
    d = np.load(Path(__file__).parent / "data" / "keras_cae_small.npz")
    params = kr.to_sdekc_params([d[f"w{i}"] for i in range(16)])
    assert params["encoder"]["conv1"]["kernel"].shape == (5, 5, 4, 6)
    assert params["decoder"]["conv0"]["kernel"].shape == (3, 3, 8, 6)
    x_hat, z = reconstruct(params, jnp.asarray(d["x"]), (0.3, 0.7), conv=conv)
    np.testing.assert_allclose(np.asarray(z), d["z"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(x_hat), d["x_hat"], atol=1e-5)
    _, z_plain = reconstruct(params, jnp.asarray(d["x"]), None, conv=conv)
    np.testing.assert_allclose(np.asarray(z_plain), d["z"], atol=1e-5)  # the skips act after the embedding
    with pytest.raises(ValueError, match="16 weight arrays"):
        kr.to_sdekc_params([d["w0"]])
