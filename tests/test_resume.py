"""Checkpoint and resume: a run SIGKILLed mid-pretraining and again mid-clustering, then resumed,
ends with exactly the labels of an uninterrupted run with the same seed."""
import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sdekc_jax.checkpoint import Checkpointer, CheckpointCorrupt, CheckpointMismatch

# a small two-class USPS run: 4 pretraining epochs, 25 clustering iterations (3 chunks of 10)
ARGS = ["run", "--subset", "test", "--classes", "0", "1", "--pretrain-epochs", "4", "--max-iters", "25",
        "--steps-per-iter", "2", "--tol", "0", "--no-progress", "--pretrain-cache", "off"]


def sdekc(out, *extra, kill_at=None):
    env = dict(os.environ)
    env.pop("SDEKC_JAX_KILL_AT", None)
    if kill_at:
        env["SDEKC_JAX_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "sdekc_jax.cli", *ARGS, "--out", str(out), *extra], env=env,
                          capture_output=True, text=True, timeout=600)


def snapshot(folder):
    """Every file under ``folder``, by relative path, with its bytes."""
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.mark.slow
def test_killed_twice_then_resumed_gives_the_uninterrupted_labels(tmp_path, capsys):
    ref = sdekc(tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "run"
    ck = out / "checkpoints" / "seed0"

    p = sdekc(out, kill_at="pretrain:2")  # SIGKILL right after the epoch-2 checkpoint
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert (ck / "pretrain").is_dir() and not (ck / "cluster").exists()
    assert not (out / "results.json").exists()

    from sdekc_jax.cli import main  # in-process: these stop before any training
    assert main([*ARGS, "--out", str(out)]) == 2  # without --resume an earlier run's folder is refused
    assert "pass --resume" in capsys.readouterr().err

    # a damaged checkpoint refuses the resume, naming the folder, and stays as it is
    shutil.copytree(ck / "pretrain", tmp_path / "pristine")
    data = max((ck / "pretrain").glob("*/state/d/*"), key=lambda f: f.stat().st_size)
    data.write_bytes(data.read_bytes()[:len(data.read_bytes()) // 2] + bytes(64))  # truncated, zero-padded
    damaged = snapshot(ck / "pretrain")
    assert main([*ARGS, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: checkpoint") and str(ck / "pretrain") in err and "the run is refused" in err
    assert snapshot(ck / "pretrain") == damaged and not (out / "results.json").exists()
    shutil.rmtree(ck / "pretrain")
    shutil.copytree(tmp_path / "pristine", ck / "pretrain")

    p = sdekc(out, "--resume", kill_at="cluster:1")  # resumes pretraining, then dies after 10 iterations
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert (ck / "cluster").is_dir()

    p = sdekc(out, "--resume")
    assert p.returncode == 0, p.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out / "labels-seed0.npy"), np.load(tmp_path / "ref" / "labels-seed0.npy"))
    a, b = json.loads((out / "results.json").read_text()), json.loads((tmp_path / "ref" / "results.json").read_text())
    assert [(r["acc"], r["nmi"], r["n_iter"]) for r in a["runs"]] == [(r["acc"], r["nmi"], r["n_iter"]) for r in b["runs"]]
    assert b["runs"][0]["n_iter"] == 25
    assert not (out / "checkpoints").exists()  # removed once the result was saved

    assert main([*ARGS, "--out", str(out), "--resume"]) == 0  # nothing left to do: the finished seed is kept
    assert "seeds [0] are finished" in capsys.readouterr().err


def test_checkpoint_round_trip_and_mismatches(tmp_path):
    params = {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.zeros(2)}
    tx = optax.adam(1e-3)
    state = {"params": params, "opt_state": tx.init(params), "key": jax.random.key(7), "aux": None,
             "step": jnp.int32(4)}
    c = Checkpointer(tmp_path / "pretrain", spec={"seed": 0}, every=2)
    assert not c.exists() and c.due(2) and not c.due(3)
    c.save(state, {"epoch": 3}, {"losses": np.array([0.3, 0.2])})
    template = jax.tree.map(jnp.zeros_like, {k: v for k, v in state.items() if k != "key"}) | {"key": jax.random.key(0)}
    tree, meta, extra = c.load(template)
    assert meta["epoch"] == 3 and extra["losses"].tolist() == [0.3, 0.2]
    for u, v in zip(jax.tree.leaves(tree["params"]), jax.tree.leaves(params)):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(jax.random.key_data(tree["key"]), jax.random.key_data(state["key"]))
    assert int(tree["step"]) == 4
    with pytest.raises(CheckpointMismatch, match="other settings.*seed"):
        Checkpointer(c.path, spec={"seed": 1}).load(template)
    with pytest.raises(CheckpointMismatch, match="shape"):
        c.load(template | {"params": {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}})
    for f in (tmp_path / "pretrain").rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointCorrupt, match="is damaged.*the run is refused"):
        Checkpointer(tmp_path / "pretrain", spec={"seed": 0}).load(template)
    with pytest.raises(ValueError, match="positive integer"):
        Checkpointer(tmp_path / "x", every=0)


def test_nan_in_the_loop_stops_with_an_error_and_keeps_the_last_good_checkpoint(tmp_path):
    """A refresh that turns NaN at iteration 15 (inside the 2nd chunk of 10): the loop raises and the
    checkpoint still holds the state after the 1st chunk."""
    from sdekc_jax.loop import Refresh, drive_loop, init_loop_state, make_advance

    def refresh(params, x, aux, prev, first, key, skip_weights=None):
        z = x @ params["w"]
        labels = (z[:, 0] > jnp.median(z[:, 0])).astype(jnp.int32)
        bad = jnp.where(aux >= 15, jnp.nan, 0.0)
        return Refresh(labels, jnp.sum(labels != prev), z, None, aux + 1, {"probe": bad})

    def loss(params, xb, target, mask, consts, skip_weights=None):
        return jnp.mean((xb @ params["w"] - 0.9 * target) ** 2)

    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 3)), jnp.float32)
    tx = optax.sgd(0.01)
    advance = make_advance(refresh, loss, tx, steps_per_iter=2, tol=0.0)
    fresh = lambda: init_loop_state({"w": jnp.eye(3)}, tx, jnp.zeros(64, jnp.int32), jnp.int32(0), jax.random.key(0),
                                    n=64, batch_size=16, max_iters=40, record_names=("probe",))
    ck = Checkpointer(tmp_path / "cluster", spec={"t": 1})
    with pytest.raises(FloatingPointError, match="non-finite probe"):
        drive_loop(advance, fresh(), x, max_iters=40, chunk_size=10, checkpoint=ck, verbose=False)
    state, meta, _ = ck.load(fresh())
    assert meta["n_iter"] == [10] and meta["n_chunks"] == 1 and int(state["iteration"]) == 10
    probe = np.asarray(state["history"]["probe"])
    assert np.isfinite(probe[:10]).all() and np.isnan(probe[10:]).all()  # iterations 10.. had not run
    assert (np.asarray(state["history"]["n_changed"])[10:] == -1).all() and int(state["aux"]) == 10
    assert np.isfinite(np.asarray(state["params"]["w"])).all()
    # resuming from it hits the NaN again (the same iterations, the same draws), and saves nothing new
    before = snapshot(ck.path)
    with pytest.raises(FloatingPointError, match="non-finite probe"):
        drive_loop(advance, fresh(), x, max_iters=40, chunk_size=10, checkpoint=ck, verbose=False)
    assert snapshot(ck.path) == before


def test_loop_resumed_from_a_checkpoint_ends_where_an_uninterrupted_loop_ends(tmp_path):
    """drive_loop stopped after its first chunk (a checkpoint every chunk) and started again ends
    with the state of one uninterrupted call, bit for bit."""
    from sdekc_jax.loop import Refresh, drive_loop, init_loop_state, make_advance

    def refresh(params, x, aux, prev, first, key, skip_weights=None):
        z = x @ params["w"] + 0.01 * jax.random.normal(key, (x.shape[0], 3))  # uses the iteration's key
        labels = (z[:, 0] > 0).astype(jnp.int32)
        return Refresh(labels, jnp.sum(labels != prev), z, None, aux, {})

    def loss(params, xb, target, mask, consts, skip_weights=None):
        return jnp.mean((xb @ params["w"] - 0.9 * target) ** 2)

    x = jnp.asarray(np.random.default_rng(1).normal(size=(48, 3)), jnp.float32)
    tx = optax.adam(0.01)
    advance = make_advance(refresh, loss, tx, steps_per_iter=3, tol=0.0)
    fresh = lambda: init_loop_state({"w": jnp.eye(3)}, tx, jnp.zeros(48, jnp.int32), None, jax.random.key(3),
                                    n=48, batch_size=16, max_iters=7)
    ref = drive_loop(advance, fresh(), x, max_iters=7, chunk_size=3, verbose=False)

    class Stop(Exception):
        pass

    class StopAfterFirstSave(Checkpointer):
        def save(self, *a, **k):
            super().save(*a, **k)
            raise Stop

    path = tmp_path / "cluster"
    with pytest.raises(Stop):
        drive_loop(advance, fresh(), x, max_iters=7, chunk_size=3, verbose=False,
                   checkpoint=StopAfterFirstSave(path, spec={"t": 2}))
    ck = Checkpointer(path, spec={"t": 2})
    assert int(ck.load(fresh())[0]["iteration"]) == 3
    res = drive_loop(advance, fresh(), x, max_iters=7, chunk_size=3, verbose=False, checkpoint=ck)
    assert int(res["iteration"]) == 7 and int(ck.load(fresh())[0]["iteration"]) == 7
    for u, v in zip(jax.tree.leaves(jax.tree.map(np.asarray, {k: ref[k] for k in ref if k != "key"})),
                    jax.tree.leaves(jax.tree.map(np.asarray, {k: res[k] for k in res if k != "key"}))):
        np.testing.assert_array_equal(u, v)
