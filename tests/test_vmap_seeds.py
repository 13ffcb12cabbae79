"""Seeds in parallel: ``jax.vmap`` of the same run over the seeds' keys. A batched program rounds
differently from the unbatched one, so the checks are to float tolerance (the first pretraining
epoch) and statistical (real USPS), plus the plumbing: the CLI's ``--vmap-seeds``, the cache and
exact resume of a vmapped fit (same program, same bits)."""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sdekc_jax as sk
from sdekc_jax.cli import main
from sdekc_jax.methods import run, run_vmapped
from sdekc_jax.pretrain import init_state
from sdekc_jax.run import make_steps, split_key

from test_run import SMALL, W, small_images

SEEDS = [0, 1, 2]


def test_first_pretraining_epoch_vmapped_equals_one_by_one():
    """One epoch of one step (batch >= n): the vmapped parameters and loss agree with each seed's
    unbatched step to rtol 1e-5."""
    cfg = sk.RunConfig(**{**SMALL, "batch_size": 256})
    steps = make_steps(cfg)
    x = jnp.asarray(small_images())
    keys = jnp.stack([jax.random.key(s) for s in SEEDS])
    k_init, k_pre, _ = jax.vmap(split_key)(keys)
    states = jax.vmap(lambda k: init_state(steps.init(k), steps.pretrain_tx))(k_init)
    vm, vm_loss = jax.jit(jax.vmap(steps.pretrain_epoch, in_axes=(0, None, 0, None, None)))(states, x, k_pre, 0, W)
    one = jax.jit(steps.pretrain_epoch)
    for i in range(len(SEEDS)):
        st, loss = one(jax.tree.map(lambda v: v[i], states), x, k_pre[i], 0, W)
        np.testing.assert_allclose(float(vm_loss[i]), float(loss), rtol=1e-5)
        for a, b in zip(jax.tree.leaves(vm["params"]), jax.tree.leaves(st["params"])):
            np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_run_vmapped_rejects_repeated_or_no_seeds():
    x = np.random.default_rng(0).uniform(size=(20, 8, 8, 1)).astype(np.float32)
    for seeds, msg in (([], "seeds is empty"), ([1, 1], "seeds lists seed 1 twice")):
        with pytest.raises(ValueError, match=msg):
            run_vmapped("kmeans", x, 2, seeds=seeds)


def test_vmapped_fit_resumes_exactly(tmp_path, run_with_crashes):
    """A vmapped fit stopped right after its first pretraining and its first clustering checkpoint
    ends exactly where the uninterrupted vmapped fit ends."""
    cfg = sk.RunConfig(**{**SMALL, "max_iters": 6}, tol=0.0)
    x = small_images()
    keys = jnp.stack([jax.random.key(s) for s in SEEDS])
    ref = sk.fit(cfg, x, keys, W, verbose=False).result
    res, saved = run_with_crashes(lambda: sk.fit(cfg, x, keys, W, checkpoint_dir=tmp_path, chunk_size=2,
                                                 verbose=False).result)
    assert "pretrain" in saved and "cluster" in saved
    np.testing.assert_array_equal(res.labels, ref.labels)
    np.testing.assert_array_equal(res.n_iter, ref.n_iter)
    for k in ref.history:
        np.testing.assert_array_equal(res.history[k], ref.history[k])


def test_cli_vmap_seeds_writes_each_seed(tmp_path):
    """`sdekc run --seeds 0 1 --vmap-seeds` against the same command without the flag (raw K-means:
    the CLI's part is the plumbing)."""
    base = ["run", "--method", "kmeans", "--classes", "0", "1", "--seeds", "0", "1", "--no-progress"]
    for name, extra in (("vm", ["--vmap-seeds"]), ("seq", [])):
        assert main(base + ["--out", str(tmp_path / name)] + extra) == 0
    vm, seq = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("vm", "seq"))
    assert [r["seed"] for r in vm["runs"]] == [0, 1] and all(r["vmapped_seeds"] == 2 for r in vm["runs"])
    assert all("vmapped_seeds" not in r for r in seq["runs"])
    for a, b in zip(vm["runs"], seq["runs"]):
        assert abs(a["acc"] - b["acc"]) < 0.01
    assert not (tmp_path / "vm" / "checkpoints").exists()


USPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "usps"


@pytest.mark.slow
def test_vmapped_seeds_cluster_usps_like_seeds_one_by_one():
    """Real USPS (1,024 images, small budget): the vmapped seeds' ACC lies within the spread of the
    same seeds run one by one."""
    if not USPS.exists():
        pytest.skip("../shared/data/usps is absent")
    x, y = sk.load_dataset("usps", str(USPS))
    x, y = x[:1024], y[:1024]
    kw = dict(pretrain_epochs=4, max_iters=4, verbose=False, cache=sk.cache.PretrainCache(None))
    seq = [sk.evaluate(y, run("sdekc", x, 10, seed=s, **kw).labels)["acc"] for s in SEEDS]
    vm = [sk.evaluate(y, r.labels)["acc"] for r in run_vmapped("sdekc", x, 10, seeds=SEEDS, **kw)]
    lo, hi = min(seq) - 0.03, max(seq) + 0.03
    assert all(lo <= a <= hi for a in vm), (seq, vm)
    assert abs(np.mean(vm) - np.mean(seq)) <= 2 * np.std(seq) + 0.02, (seq, vm)
    assert min(vm) > 0.15  # 4 epochs on 1,024 images: early, but clustering, not collapsed
