"""Seeds in parallel: the vmapped program takes the same steps as running the seeds one by one.

Tiny shapes: a linear encoder for Algorithm 1's loop, the dense autoencoder on 8x8 images for the
whole composition (pretraining + DEC-family clustering), raw K-means, and the pieces of
sdekc_jax.vmap_exact on the convolutional autoencoder. Every comparison is exact: labels,
histories, parameters and embeddings are bit-identical."""
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import make_blobs

from sdekc_jax.algorithm import cluster, init_cluster_state, make_chunk_fn
from sdekc_jax.cache import PretrainCache
from sdekc_jax.cli import main
from sdekc_jax.methods import run, run_vmapped
from sdekc_jax.models import DenseAE
from sdekc_jax.pretrain import batch_plan, pretrain, stack_trees, unstack_tree
from sdekc_jax.vmap_exact import add_bias

K = 4
SEEDS = [0, 1, 2]


def linear_embed(p, x):
    return add_bias(x @ p["w"], p["b"])


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=300, n_features=8, centers=K, cluster_std=4.0, random_state=0)
    x = (x - x.mean(0)) / x.std(0)
    return jnp.asarray(x, jnp.float32), y


def init_linear(seed):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(8, 3)) / np.sqrt(8), jnp.float32), "b": jnp.zeros(3)}


def test_vmapped_clustering_phase_equals_seed_by_seed(blobs):
    """Algorithm 1 for three seeds in one program: same labels, iteration counts, stop decisions and
    histories as three separate runs, although the seeds stop at different iterations."""
    x, _ = blobs
    kw = dict(max_iters=12, steps_per_iter=3, batch_size=64, tol=0.01, chunk_size=4, verbose=False, learning_rate=1e-2)
    keys = [jax.random.key(100 + s) for s in SEEDS]
    seq = [cluster(linear_embed, init_linear(s), x, K, k, **kw) for s, k in zip(SEEDS, keys)]
    vm = cluster(linear_embed, stack_trees([init_linear(s) for s in SEEDS]), x, K, jnp.stack(keys), vmapped=True, **kw)
    assert vm.labels.shape == (3, x.shape[0]) and len(vm.history) == 3
    assert len({r.n_iter for r in seq}) > 1, "the seeds should stop at different iterations for this test to bite"
    for i, r in enumerate(seq):
        np.testing.assert_array_equal(vm.labels[i], r.labels)
        assert vm.n_iter[i] == r.n_iter and vm.converged[i] == r.converged
        assert set(vm.history[i]) == set(r.history)
        for k in r.history:
            np.testing.assert_array_equal(vm.history[i][k], r.history[k])
        chex.assert_trees_all_equal(unstack_tree(vm.params, i), r.params)
        np.testing.assert_array_equal(vm.centers[i], r.centers)


def test_vmapped_pretraining_equals_seed_by_seed():
    model = DenseAE((4, 4, 1), n_embed=3, hidden=(16,))
    x = jax.random.uniform(jax.random.key(0), (100, 4, 4, 1))
    inits = [model.init(jax.random.key(s), x[:1])["params"] for s in SEEDS]
    keys = [jax.random.key(10 + s) for s in SEEDS]
    seq = [pretrain(model, p, x, k, epochs=3, batch_size=32, verbose=False) for p, k in zip(inits, keys)]
    params, losses = pretrain(model, stack_trees(inits), x, jnp.stack(keys), epochs=3, batch_size=32, verbose=False,
                              vmapped=True)
    assert losses.shape == (3, 3)
    for i, (p, l) in enumerate(seq):
        np.testing.assert_array_equal(losses[i], l)
        chex.assert_trees_all_equal(unstack_tree(params, i), p)


@pytest.mark.parametrize("name", ["ae-kmeans", "dec"])  # raw K-means: the CLI test below
def test_run_vmapped_gives_the_labels_of_run_for_each_seed(name):
    """The whole composition (init, pretraining, clustering, final embedding) per seed."""
    x = small_images()
    kw = {} if name == "kmeans" else dict(pretrain_epochs=2, embedding_dim=3)
    if name == "dec":
        kw.update(max_iters=3, steps_per_iter=4, batch_size=32)
    seq = [run(name, x, K, seed=s, cache=PretrainCache(None), verbose=False, **kw) for s in SEEDS]
    vm = run_vmapped(name, x, K, seeds=SEEDS, cache=PretrainCache(None), verbose=False, **kw)
    for a, b in zip(seq, vm):
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.n_iter == b.n_iter and a.converged == b.converged
        if a.embedding is not None:
            np.testing.assert_array_equal(a.embedding, b.embedding)
            np.testing.assert_array_equal(a.history["pretrain_loss"], b.history["pretrain_loss"])
            chex.assert_trees_all_equal(a.params, b.params)
        assert b.timings["vmapped_seeds"] == 3 and not b.pretrain_cache_hit


def small_images():
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0.5, 0.2, size=(160, 8, 8, 1)) + (np.arange(160) % 4)[:, None, None, None] * 0.15, 0, 1)
    return x.astype(np.float32)


def test_vmapped_runs_share_the_pretraining_cache_with_sequential_runs(tmp_path):
    """On CPU: a vmapped run reads the seeds a sequential run cached, pretrains only the others
    (vmapped over those seeds) and stores them where sequential runs find them."""
    x, kw = small_images(), dict(pretrain_epochs=2, embedding_dim=3, verbose=False)
    cache = PretrainCache(tmp_path)
    one = run("ae-kmeans", x, K, seed=1, cache=cache, **kw)
    assert not one.pretrain_cache_hit and len(list(tmp_path.glob("*.msgpack"))) == 1
    vm = run_vmapped("ae-kmeans", x, K, seeds=SEEDS, cache=cache, **kw)
    assert [r.pretrain_cache_hit for r in vm] == [False, True, False]
    assert len(list(tmp_path.glob("*.msgpack"))) == 3
    chex.assert_trees_all_equal(vm[1].params, one.params)
    np.testing.assert_array_equal(vm[1].labels, one.labels)
    # seed 2 was pretrained inside a vmapped program over seeds 0 and 2 only: still seed 2's network
    alone = run("ae-kmeans", x, K, seed=2, cache=PretrainCache(None), **kw)
    chex.assert_trees_all_equal(vm[2].params, alone.params)
    np.testing.assert_array_equal(vm[2].history["pretrain_loss"], alone.history["pretrain_loss"])
    again = run("ae-kmeans", x, K, seed=2, cache=cache, **kw)  # a sequential run finds the vmapped run's entry
    assert again.pretrain_cache_hit
    np.testing.assert_array_equal(again.labels, alone.labels)
    vm2 = run_vmapped("ae-kmeans", x, K, seeds=[2, 0], cache=cache, **kw)
    assert all(r.pretrain_cache_hit for r in vm2) and cache.hits == 1 + 1 + 2
    for a, b in zip(vm2, (vm[2], vm[0])):
        np.testing.assert_array_equal(a.labels, b.labels)


def test_vmapped_networks_are_cached_apart_where_equality_is_not_verified(monkeypatch):
    from sdekc_jax.methods.base import seed_cache_spec
    spec = {"seed": [0, 1], "epochs": 2, "vmapped": True}
    assert seed_cache_spec(spec, 1) == {"seed": 1, "epochs": 2}  # CPU: the sequential run's entry
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert seed_cache_spec(spec, 1) == {"seed": 1, "epochs": 2, "vmapped": True}


def test_run_vmapped_rejects_repeated_or_no_seeds():
    x = np.random.default_rng(0).uniform(size=(20, 8, 8, 1)).astype(np.float32)
    for seeds in ([], [1, 1]):
        with pytest.raises(ValueError, match="distinct"):
            run_vmapped("kmeans", x, 2, seeds=seeds)


def test_the_clustering_iteration_compiles_once(blobs):
    """chex.assert_max_traces on the chunk function: 9 chunks of a run, one trace (and the check
    bites: a state whose counter changed dtype is a second trace)."""
    x, _ = blobs
    tx = optax.adam(1e-3)
    chex.clear_trace_counter()
    chunk = make_chunk_fn(linear_embed, tx, n_clusters=K, steps_per_iter=2, tol=-1.0, kmeans_n_init=2, chunk_size=1,
                          max_traces=1)
    plan = batch_plan(jax.random.key(0), x.shape[0], 64)
    state = init_cluster_state(init_linear(0), x, K, jax.random.key(1), tx, 3)
    for _ in range(9):
        state, rec = chunk(state, x, plan, jnp.int32(100))
        assert bool(rec["ran"][0])
    assert int(state["iteration"]) == 9
    state = dict(state, step=state["step"].astype(jnp.float32))
    with pytest.raises(AssertionError, match="trace"):
        chunk(state, x, plan, jnp.int32(100))


def test_cli_vmap_seeds_writes_each_seed_like_the_sequential_run(tmp_path, capsys):
    """`sdekc run --seeds 0 1 --vmap-seeds` against the same command without the flag (raw K-means:
    the CLI's part is the plumbing; the vmapped pieces are tested above)."""
    base = ["run", "--method", "kmeans", "--classes", "0", "1", "--seeds", "0", "1", "--no-progress"]
    for name, extra in (("vm", ["--vmap-seeds"]), ("seq", [])):
        assert main(base + ["--out", str(tmp_path / name)] + extra) == 0
    vm, seq = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("vm", "seq"))
    assert [r["seed"] for r in vm["runs"]] == [0, 1] and all(r["vmapped_seeds"] == 2 for r in vm["runs"])
    assert all("vmapped_seeds" not in r for r in seq["runs"])
    for s in (0, 1):
        np.testing.assert_array_equal(np.load(tmp_path / "vm" / f"labels-seed{s}.npy"),
                                      np.load(tmp_path / "seq" / f"labels-seed{s}.npy"))
    assert [r["acc"] for r in vm["runs"]] == [r["acc"] for r in seq["runs"]]
    assert not (tmp_path / "vm" / "checkpoints").exists()


class Crash(Exception):
    pass


def crash_after_first_save(monkeypatch):
    from sdekc_jax.checkpoint import Checkpointer
    orig = Checkpointer.save

    def save(self, *a, **k):
        orig(self, *a, **k)
        raise Crash

    monkeypatch.setattr(Checkpointer, "save", save)


def test_vmapped_runs_resume_from_their_checkpoints(blobs, tmp_path, monkeypatch):
    """A vmapped loop and a vmapped pretraining stopped right after their first checkpoint and
    started again end exactly where uninterrupted runs end (per-seed histories and counters)."""
    from sdekc_jax.checkpoint import Checkpointer
    x, _ = blobs
    kw = dict(max_iters=12, steps_per_iter=3, batch_size=64, tol=0.01, chunk_size=2, verbose=False, learning_rate=1e-2,
              vmapped=True)
    params, keys = stack_trees([init_linear(s) for s in SEEDS]), jnp.stack([jax.random.key(100 + s) for s in SEEDS])
    ref = cluster(linear_embed, params, x, K, keys, **kw)
    model = DenseAE((4, 4, 1), n_embed=3, hidden=(16,))
    xi = jax.random.uniform(jax.random.key(0), (100, 4, 4, 1))
    p0 = stack_trees([model.init(jax.random.key(s), xi[:1])["params"] for s in SEEDS])
    pkeys = jnp.stack([jax.random.key(10 + s) for s in SEEDS])
    pre_ref = pretrain(model, p0, xi, pkeys, epochs=3, batch_size=32, verbose=False, vmapped=True)

    crash_after_first_save(monkeypatch)
    ck = lambda name: Checkpointer(tmp_path / f"{name}.msgpack", {"seeds": SEEDS})
    with pytest.raises(Crash):
        cluster(linear_embed, params, x, K, keys, checkpoint=ck("cluster"), **kw)
    with pytest.raises(Crash):
        pretrain(model, p0, xi, pkeys, epochs=3, batch_size=32, verbose=False, vmapped=True, checkpoint=ck("pretrain"))
    monkeypatch.undo()

    res = cluster(linear_embed, params, x, K, keys, checkpoint=ck("cluster"), **kw)
    np.testing.assert_array_equal(res.labels, ref.labels)
    np.testing.assert_array_equal(res.n_iter, ref.n_iter)
    assert len(set(ref.n_iter.tolist())) > 1
    for a, b in zip(res.history, ref.history):
        for k in b:
            np.testing.assert_array_equal(a[k], b[k])
    params_r, losses_r = pretrain(model, p0, xi, pkeys, epochs=3, batch_size=32, verbose=False, vmapped=True,
                                  checkpoint=ck("pretrain"))
    np.testing.assert_array_equal(losses_r, pre_ref[1])
    chex.assert_trees_all_equal(params_r, pre_ref[0])
