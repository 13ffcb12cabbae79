"""A real multi-process run (jax.distributed over two local processes on 127.0.0.1, one CPU device
each, gloo collectives): `sdekc run` across the two processes, with the data sharded by rows,
process 1 SIGKILLed mid-clustering and both resumed, ends with the labels of an uninterrupted
single-process run on two forced devices."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

# a small two-class USPS run: 1 pretraining epoch, 12 clustering iterations (checkpoints after 10)
ARGS = ["run", "--subset", "test", "--classes", "0", "1", "--pretrain-epochs", "1", "--max-iters", "12",
        "--steps-per-iter", "1", "--tol", "0", "--no-progress", "--pretrain-cache", "off"]
TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(kill_at=None, devices=None):
    e = {k: v for k, v in os.environ.items() if k not in ("SDEKC_JAX_KILL_AT", "XLA_FLAGS")}
    if kill_at:
        e["SDEKC_JAX_KILL_AT"] = kill_at
    if devices:
        e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return e


def two_processes(out, *extra, kill_1_at=None):
    """Start processes 0 and 1; wait for both (bounded), or, when process 1 is killed, kill 0 too.
    Returns (returncode, stdout, stderr) of each."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "sdekc_jax.cli", *ARGS, "--out", str(out), *extra,
                               "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                              env=env(kill_1_at if i == 1 else None), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    try:
        deadline = time.monotonic() + TIMEOUT
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if procs[1].poll() == -signal.SIGKILL and procs[0].poll() is None:
                time.sleep(2)  # process 0 waits on a collective with a dead peer: it dies with its host
                procs[0].send_signal(signal.SIGKILL)
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.wait(), p.stdout.read(), p.stderr.read()) for p in procs]


@pytest.mark.slow
def test_two_processes_killed_and_resumed_end_with_the_labels_of_two_devices(tmp_path):
    """Process 1 SIGKILLed after the first clustering checkpoint, both restarted with --resume: the
    labels equal those of an uninterrupted single-process run on two forced devices (the same
    program up to float reassociation; equal here), so the two-process run and its resume are
    both checked against it."""
    one = subprocess.run([sys.executable, "-m", "sdekc_jax.cli", *ARGS, "--out", str(tmp_path / "forced"),
                          "--devices", "2"], env=env(devices=2), capture_output=True, text=True, timeout=TIMEOUT)
    assert one.returncode == 0, one.stderr[-3000:]
    forced = np.load(tmp_path / "forced" / "labels-seed0.npy")

    out = tmp_path / "killed"
    # the two processes hold the data sharded by rows (623 images: 312 + 311, one padding row), the
    # forced-device run replicated: the same clustering up to float reassociation
    sharded = ("--data-placement", "sharded")
    (rc0, _, _), (rc1, _, err1) = two_processes(out, *sharded, kill_1_at="cluster:1")  # after the 10-iteration checkpoint
    assert rc1 == -signal.SIGKILL, err1[-3000:]
    assert (out / "checkpoints" / "seed0" / "cluster").is_dir() and not (out / "results.json").exists()
    (rc0, out0, err0), (rc1, out1, err1) = two_processes(out, *sharded, "--resume")
    assert rc0 == 0 and rc1 == 0, (err0[-3000:], err1[-3000:])
    assert "| mean ± std |" in out0 and "| seed |" not in out1  # results from process 0 only
    assert "seed 0: ACC" in err0 and "seed 0: ACC" not in err1 and "output folder" not in err1
    res = json.loads((out / "results.json").read_text())
    assert res["parallel"] == {"devices": 2, "processes": 2, "data": "sharded", "runs": "replicated"} and res["runs"][0]["n_iter"] == 12
    two = np.load(out / "labels-seed0.npy")
    assert (two == forced).mean() >= 0.99, (two == forced).mean()
    assert not (out / "checkpoints").exists()


def test_distributed_flags_are_checked_before_any_work(tmp_path, capsys):
    from sdekc_jax.cli import main

    for flags, msg in [(["--num-processes", "2"], "need --coordinator"),
                       (["--coordinator", "nohost"], "--coordinator must be HOST:PORT"),
                       (["--coordinator", "127.0.0.1:1", "--num-processes", "0", "--process-id", "0"],
                        "--num-processes must be an integer >= 1"),
                       (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
                        r"--process-id must be an integer in [0, 1]"),
                       (["--devices", "two"], "--devices must be an integer >= 1 or 'all'"),
                       (["--devices", "64"], "--devices 64: this run has"),
                       (["--devices", "1", "--run-placement", "sharded"], "add --vmap-seeds")]:
        assert main(["run", "--out", str(tmp_path / "o"), *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err
