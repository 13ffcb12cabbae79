"""Reliability (issue 22): every bad value refused in one line before any work, no silent
poisoning from damaged cache entries or checkpoints, resume that merges, flagged degenerate
runs, clean interrupts. Each test holds one guarantee of docs/reliability.md."""
import dataclasses
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax.cache import PretrainCache, PretrainCacheWarning
from sdekc_jax.checkpoint import Checkpointer, CheckpointCorrupt
from sdekc_jax.cli import main
from sdekc_jax.config import SEED_MAX, RunConfig, check_setting
from sdekc_jax.metrics import run_flags
from sdekc_jax.run import fit
from sdekc_jax.validation import check_images, check_seeds

SMALL = dict(n_clusters=4, image_shape=(8, 8, 1), filters=(4, 8, 8), kernels=(3, 3, 3), embedding_dim=3,
             pretrain_epochs=2, batch_size=32, max_iters=4, steps_per_iter=3, kmeans_n_init=2, tol=0.0)
W = jnp.asarray((0.001, 0.999), jnp.float32)
KMEANS = ["run", "--method", "kmeans", "--subset", "test", "--classes", "0", "1", "--no-progress",
          "--pretrain-cache", "off"]


def small_images(n=160):
    rng = np.random.default_rng(1)
    x = rng.normal(0.5, 0.2, size=(n, 8, 8, 1)) + (np.arange(n) % 4)[:, None, None, None] * 0.15
    return np.clip(x, 0, 1).astype(np.float32)


def snapshot(folder):
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def damage_checkpoint(folder, how):
    """Damage the file of an Orbax checkpoint that holds its arrays (the largest data file of the
    ``state`` item, the one a restore reads); the folder's snapshot after."""
    data = [f for f in folder.glob("*/state/d/*") if f.is_file()]
    assert data, sorted(map(str, folder.rglob("*")))
    damage(max(data, key=lambda f: f.stat().st_size), how)
    return snapshot(folder)


def damage(path, how):
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    if how == "zeroed block":
        data[mid:mid + 64] = bytes(64)
    elif how == "flipped byte":
        data[mid] ^= 0xFF
    else:  # truncation
        data = data[:mid]
    path.write_bytes(bytes(data))
    return bytes(data)


# --- one validation of every setting, before any work ------------------------------------------

@pytest.mark.parametrize("flags,named", [
    (["--embedding-dim", "0"], "--embedding-dim must be an integer >= 1"),
    (["--tol", "2"], "--tol must be a fraction in [0, 1)"),
    (["--tol", "nan"], "--tol must be a fraction in [0, 1)"),
    (["--max-iters", "0"], "--max-iters must be an integer >= 1"),
    (["--steps-per-iter", "-5"], "--steps-per-iter must be an integer >= 0"),
    (["--pretrain-epochs", "-1"], "--pretrain-epochs must be an integer >= 0"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be an integer >= 1"),
    (["--seeds", "4294967296"], f"--seeds must be an integer in [0, {SEED_MAX}]"),
    (["--seeds", "-1"], f"--seeds must be an integer in [0, {SEED_MAX}]"),
    (["--seeds", str(2**64)], f"--seeds must be an integer in [0, {SEED_MAX}]"),
    (["--seeds", "3", "1", "3"], "--seeds lists seed 3 twice"),
])
def test_the_cli_refuses_each_bad_value_in_one_line_before_any_work(tmp_path, capsys, flags, named):
    out = tmp_path / "out"
    assert main(["run", "--method", "sdekc", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and named in err, err
    assert not out.exists()  # nothing was created, loaded or trained


@pytest.mark.parametrize("name,bad", [("tol", 2.0), ("tol", float("nan")), ("max_iters", 0), ("embedding_dim", 0),
                                      ("steps_per_iter", -5), ("batch_size", 2.5), ("learning_rate", float("inf"))])
def test_every_entry_point_applies_the_same_range(name, bad):
    from sdekc_jax import SDEKC
    from sdekc_jax.methods import get_method

    with pytest.raises(ValueError, match=f"RunConfig.{name} must be"):
        RunConfig(**{name: bad})
    method_name = "learning_rate" if name == "learning_rate" else name
    with pytest.raises(ValueError, match=f"^{method_name} must be"):
        get_method("sdekc").config("usps", **{method_name: bad})
    x = np.random.default_rng(0).random((12, 16, 16), np.float32)
    with pytest.raises(ValueError, match=f"{name} must be"):
        SDEKC(4, verbose=False, **{name: bad}).fit(x)


def test_seeds_outside_the_prngs_range_are_refused_everywhere():
    from sdekc_jax import SDEKC
    from sdekc_jax.methods import run, run_vmapped
    from sdekc_jax.sweep import skip_sweep

    # what the range guards against: JAX's key of 2**32 is seed 0's, of -1 is 2**32 - 1's
    assert np.array_equal(jax.random.key_data(jax.random.key(2**32)), jax.random.key_data(jax.random.key(0)))
    assert np.array_equal(jax.random.key_data(jax.random.key(-1)), jax.random.key_data(jax.random.key(SEED_MAX)))
    assert check_seeds([0, SEED_MAX]) == [0, SEED_MAX]
    x = small_images(8)
    for bad in (2**32, -1, 2**64, True, 1.5):
        with pytest.raises(ValueError, match="must be an integer in"):
            check_setting("seed", bad)
        with pytest.raises(ValueError, match="seed must be an integer in"):
            SDEKC(4, seed=bad, verbose=False).fit(x)
        with pytest.raises(ValueError, match="seed must be an integer in"):
            run("kmeans", x, 4, seed=bad, verbose=False)
        with pytest.raises(ValueError, match="seed must be an integer in"):
            skip_sweep(x, 4, [(None, bad)], verbose=False)
    with pytest.raises(ValueError, match="lists seed 0 twice"):
        run_vmapped("kmeans", x, 4, seeds=[0, 0], verbose=False)


# --- inputs outside [0, 1] --------------------------------------------------------------------

def test_images_outside_zero_one_are_refused_with_the_fix():
    x = small_images(8)
    with pytest.raises(ValueError, match=r"values in \[\d+, \d+\], but .* in \[0, 1\]: divide by 255"):
        check_images(np.round(x * 255).astype(np.float32))
    with pytest.raises(ValueError, match=r"values in .*e\+30.*rescale"):
        check_images(x * 1e30)
    with pytest.raises(ValueError, match=r"values in \[-0.5.*rescale"):
        check_images(x - 0.5)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        check_images(bad)
    # uint8 is scaled; rounding slack around [0, 1] passes
    np.testing.assert_allclose(check_images(np.full((2, 8, 8), 255, np.uint8)), 1.0)
    assert check_images(np.clip(x, 0, 1) * 1.0005).max() > 1
    # the estimator and the runners refuse through check_images (the functional fit() takes any
    # array in the model's domain, as make_run does)
    from sdekc_jax import SDEKC
    from sdekc_jax.methods import run
    with pytest.raises(ValueError, match="divide by 255"):
        SDEKC(4, verbose=False).fit(np.round(np.random.default_rng(0).random((12, 16, 16)) * 255))
    with pytest.raises(ValueError, match="rescale"):
        run("kmeans", x * 1e30, 4, verbose=False)


# --- integrity: real entries and checkpoints, really damaged ------------------------------------

@pytest.mark.parametrize("how", ["zeroed block", "flipped byte", "truncation"])
def test_a_damaged_cache_entry_is_set_aside_and_recomputed(tmp_path, how):
    cfg, x, cache = RunConfig(**SMALL), small_images(), PretrainCache(tmp_path)
    first = fit(cfg, x, jax.random.key(0), W, cache=cache, verbose=False)
    (entry,) = tmp_path.glob("*.msgpack")
    damaged = damage(entry, how)
    with pytest.warns(PretrainCacheWarning, match="fails its checksum"):
        again = fit(cfg, x, jax.random.key(0), W, cache=cache, verbose=False)
    assert not again.pretrain_cache_hit  # the damaged parameters were not used...
    np.testing.assert_array_equal(again.result.labels, first.result.labels)  # ...they were recomputed
    assert (tmp_path / (entry.name + ".corrupt")).read_bytes() == damaged  # kept, not deleted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit(cfg, x, jax.random.key(0), W, cache=cache, verbose=False).pretrain_cache_hit  # rebuilt entry


def test_damaged_or_unchecked_cache_metadata_is_not_trusted(tmp_path):
    cfg, x, cache = RunConfig(**SMALL), small_images(), PretrainCache(tmp_path)
    fit(cfg, x, jax.random.key(0), W, cache=cache, verbose=False)
    (meta_path,) = tmp_path.glob("*.json")
    meta = json.loads(meta_path.read_text())
    meta["losses"][-1] *= 2  # a plausible edit: valid JSON, wrong numbers
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(PretrainCacheWarning, match="fails its checksum"):
        assert not fit(cfg, x, jax.random.key(0), W, cache=cache, verbose=False).pretrain_cache_hit
    meta = json.loads(meta_path.read_text())
    del meta["payload_sha256"]  # an entry from before checksums
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(PretrainCacheWarning, match="has no checksum"):
        assert not fit(cfg, x, jax.random.key(0), W, cache=cache, verbose=False).pretrain_cache_hit


@pytest.mark.parametrize("how", ["zeroed block", "flipped byte", "truncation"])
def test_a_damaged_checkpoint_refuses_the_run_and_stays_on_disk(tmp_path, how):
    cfg, x = RunConfig(**SMALL), small_images()
    first = fit(cfg, x, jax.random.key(0), W, checkpoint_dir=tmp_path, verbose=False)
    # a second fit continues from the (complete) checkpoints: the same labels, and its seconds
    # include the first piece's
    resumed = fit(cfg, x, jax.random.key(0), W, checkpoint_dir=tmp_path, verbose=False)
    np.testing.assert_array_equal(resumed.result.labels, first.result.labels)
    assert resumed.timings["pretrain"] >= 0.5 * first.timings["pretrain"] > 0
    for name in ("cluster", "pretrain"):
        damaged = damage_checkpoint(tmp_path / name, how)
        with pytest.raises(CheckpointCorrupt, match=f"checkpoint {tmp_path / name} .*the run is refused"):
            fit(cfg, x, jax.random.key(0), W, checkpoint_dir=tmp_path, verbose=False)
        assert snapshot(tmp_path / name) == damaged  # never deleted or rewritten


def test_checkpoint_seconds_add_up_across_pieces(tmp_path, monkeypatch):
    import sdekc_jax.checkpoint as ck_mod

    clock = [100.0]
    monkeypatch.setattr(ck_mod.time, "perf_counter", lambda: clock[0])
    tree = {"w": jnp.arange(3.0)}
    a = Checkpointer(tmp_path / "p", {"s": 1})
    clock[0] += 5.0
    a.save(tree, {"epoch": 1})
    clock[0] += 50.0  # killed here: this time is lost with the process
    b = Checkpointer(tmp_path / "p", {"s": 1})
    _, meta, _ = b.load(tree)
    assert meta["seconds"] == 5.0 and b.resumed_seconds == 5.0
    clock[0] += 3.0
    b.save(tree, {"epoch": 2})
    assert Checkpointer(tmp_path / "p", {"s": 1}).load(tree)[1]["seconds"] == 8.0


# --- resume merges, never drops -----------------------------------------------------------------

def test_resume_with_other_seeds_keeps_every_finished_seed(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main([*KMEANS, "--seeds", "0", "--out", out]) == 0
    first = json.loads((tmp_path / "o" / "results.json").read_text())
    assert main([*KMEANS, "--seeds", "1", "2", "--out", out, "--resume"]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [r["seed"] for r in res["runs"]] == [0, 1, 2]
    assert res["runs"][0] == first["runs"][0]  # seed 0's metrics, untouched
    assert all((tmp_path / "o" / f"labels-seed{s}.npy").is_file() for s in (0, 1, 2))
    assert res["mean"]["acc"] == pytest.approx(np.mean([r["acc"] for r in res["runs"]]))
    assert "seeds [0] are finished and kept" in capsys.readouterr().err
    # other settings are still refused, and the file is left as it was
    before = (tmp_path / "o" / "results.json").read_bytes()
    assert main([*KMEANS, "--seeds", "3", "--out", out, "--resume", "--classes", "0", "2"]) == 2
    assert "other settings" in capsys.readouterr().err
    (tmp_path / "o" / "results.json").write_text("{ torn")
    assert main([*KMEANS, "--seeds", "3", "--out", out, "--resume"]) == 2
    assert "is unreadable" in capsys.readouterr().err and (tmp_path / "o" / "results.json").read_text() == "{ torn"
    assert before  # (the refused resumes wrote nothing)


# --- degenerate results are flagged ---------------------------------------------------------------

def test_run_flags():
    assert run_flags([0, 1, 2, 1], 3, True) == {"clusters_used": 3, "flags": []}
    assert run_flags([0, 0, 0, 0], 3, True)["flags"] == ["degenerate: 1 of 3 clusters used"]
    assert run_flags([0, 1, 2], 3, False)["flags"] == ["stopped at max_iters without converging"]
    assert run_flags([0, 1, 2], 3, False, clustering=False)["flags"] == []


def test_a_collapsed_or_capped_run_is_flagged_in_results_and_table(tmp_path, capsys, monkeypatch):
    import sdekc_jax.methods as methods

    real = methods.run

    def collapse_seed_1(name, x, k, *, seed, **kw):  # a real run, whose labels we collapse for seed 1
        r = real(name, x, k, seed=seed, **kw)
        return dataclasses.replace(r, labels=np.zeros_like(r.labels)) if seed == 1 else r

    monkeypatch.setattr(methods, "run", collapse_seed_1)
    assert main([*KMEANS, "--seeds", "0", "1", "--out", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    res = json.loads((tmp_path / "results.json").read_text())
    assert [r["flags"] for r in res["runs"]] == [[], ["degenerate: 1 of 2 clusters used"]]
    assert [r["clusters_used"] for r in res["runs"]] == [2, 1] and res["flagged_runs"] == 1
    assert "| 1 of 2 runs flagged |" in cap.out and "degenerate result: the labels use 1 of 2" in cap.err
    assert res["run_config"]["n_clusters"] == 2  # the config that ran is recorded


# --- clean interrupts -------------------------------------------------------------------------------

def test_ctrl_c_prints_one_line_with_the_resume_command(tmp_path, capsys, monkeypatch):
    import sdekc_jax.methods as methods

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(methods, "run", interrupted)
    argv = [*KMEANS, "--seeds", "0", "--out", str(tmp_path / "o")]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("interrupted: ") and "Traceback" not in "".join(err)
    assert f"go on with: sdekc {' '.join(argv)} --resume" in err[-1]
