"""Data parallelism over a Mesh: with 4 forced CPU devices (a subprocess, since the device count is
fixed when JAX starts), the sharded pretraining epoch and clustering loop give the unsharded
results up to float reassociation, and really are sharded (the gradients are all-reduced)."""
import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from sdekc_jax.parallel import data_mesh, data_parallel

SCRIPT = textwrap.dedent("""
    import json, os
    import jax, jax.numpy as jnp, numpy as np
    import sdekc_jax as sk
    from sdekc_jax.algorithm import embed_all
    from sdekc_jax.parallel import data_mesh, data_parallel, place_rows, place_runs, replicate, runs_layout
    from sdekc_jax.pretrain import cached_jit, init_state
    from sdekc_jax.run import make_steps

    assert jax.device_count() == 4, jax.devices()
    if os.environ.get("SDEKC_JAX_CACHE"):  # the session's compilation cache (conftest)
        jax.config.update("jax_compilation_cache_dir", os.environ["SDEKC_JAX_CACHE"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    mesh = data_mesh()
    out = {"devices": jax.device_count()}
    # the small Table 2 preset with the two weighted skips, batch 32 = 8 per device
    cfg = sk.RunConfig(n_clusters=4, image_shape=(16, 16, 1), **sk.models.BINARY_ARCH, pretrain_epochs=2,
                       batch_size=32, max_iters=5, steps_per_iter=4, tol=0.0, kmeans_n_init=2)
    w = jnp.array([0.001, 0.999])
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0.5, 0.2, (96, 16, 16, 1)) + (np.arange(96) % 4)[:, None, None, None] * 0.2, 0, 1)
    x = x.astype(np.float32)
    ref = sk.fit(cfg, x, jax.random.key(2), w, verbose=False).result
    with data_parallel(mesh):
        par = sk.fit(cfg, x, jax.random.key(2), w, verbose=False).result
        steps = make_steps(cfg)
        p0 = steps.init(jax.random.key(1))
        hlo = cached_jit(steps.pretrain_epoch, None, (0,)).lower(init_state(p0, steps.pretrain_tx), jnp.asarray(x),
                                                  jax.random.key(2), 0, w).compile().as_text()
        z_par = jax.jit(lambda p, v: embed_all(steps.embed, p, v, 40))(p0["encoder"], jnp.asarray(x))
    z_ref = jax.jit(lambda p, v: embed_all(steps.embed, p, v, 40))(p0["encoder"], jnp.asarray(x))
    out["all_reduce_in_step"] = "all-reduce" in hlo
    out["pretrain_loss_diff"] = float(np.max(np.abs(ref.pretrain_loss - par.pretrain_loss)))
    out["embed_max_diff"] = float(jnp.max(jnp.abs(z_par - z_ref)))
    out["embed_sharded"] = len(z_par.sharding.device_set) == 4 and not z_par.sharding.is_fully_replicated
    out["label_agreement"] = float(np.mean(np.asarray(ref.labels) == np.asarray(par.labels)))
    out["n_iter_equal"] = int(ref.n_iter) == int(par.n_iter)
    out["param_max_diff"] = max(float(np.max(np.abs(a - b))) for a, b in
                                zip(jax.tree.leaves(ref.params), jax.tree.leaves(par.params)))
    # seeds in parallel inside the mesh, 4 runs on 4 devices: the seeds split over the devices
    # (runs="auto": 4 divides evenly; each seed's batch sharded instead is the vmapped fit of the
    # sharded rows below)
    keys = jnp.stack([jax.random.key(s) for s in (5, 6, 7, 8)])
    one = [sk.fit(cfg, x, keys[i], w, verbose=False).result for i in range(4)]
    with data_parallel(mesh):
        vm = sk.fit(cfg, x, keys, w, verbose=False).result
    out["vmap_split_loss_diff"] = max(float(np.max(np.abs(vm.pretrain_loss[i] - one[i].pretrain_loss)))
                                      for i in range(4))
    out["vmap_split_label_agreement"] = min(float(np.mean(vm.labels[i] == one[i].labels)) for i in range(4))
    with data_parallel(mesh), runs_layout(True):  # the split epoch: each device its run, no collective
        s4 = make_steps(cfg)
        st4 = place_runs(jax.vmap(lambda p: init_state(p, s4.pretrain_tx))(jax.vmap(s4.init)(keys)))
        out["runs_per_device"] = sorted(sh.data.shape[0] for sh in st4["step"].addressable_shards)
        hlo4 = cached_jit(s4.pretrain_epoch, (0, None, 0, None, None), (0,)).lower(  # the driver's program
            st4, replicate(x), place_runs(keys), 0, w).compile().as_text()
    out["collective_in_split_epoch"] = any(c in hlo4 for c in ("all-reduce", "all-gather", "all-to-all"))
    # the rows sharded over the devices, n not a multiple of them: 98 rows on 4 devices (padded to
    # 100), two seeds vmapped (their runs replicated: sharded rows are not split by runs)
    x98 = np.concatenate([x, x[:2] * 0.9])
    refs = [sk.fit(cfg, x98, jax.random.key(s), w, verbose=False).result for s in (3, 4)]
    with data_parallel(mesh, data="sharded"):
        rows = place_rows(x98)
        sh = sk.fit(cfg, x98, jnp.stack([jax.random.key(3), jax.random.key(4)]), w, verbose=False).result
        z_sh = jax.jit(make_steps(cfg).embed_all)(p0["encoder"], jnp.asarray(x98))
    out["rows_per_device"] = sorted(s.data.shape[0] for s in rows.array.addressable_shards)
    out["sharded_pretrain_loss_diff"] = max(float(np.max(np.abs(r.pretrain_loss - sh.pretrain_loss[i])))
                                            for i, r in enumerate(refs))
    out["sharded_label_agreement"] = min(float(np.mean(r.labels == sh.labels[i])) for i, r in enumerate(refs))
    out["sharded_n_iter_equal"] = [int(r.n_iter) for r in refs] == [int(v) for v in sh.n_iter]
    out["sharded_shapes"] = [list(sh.labels.shape), list(sh.embedding.shape), cfg.embed_dim]
    z98 = jax.jit(lambda p, v: embed_all(steps.embed, p, v, 40))(p0["encoder"], jnp.asarray(x98))
    out["sharded_embed_max_diff"] = float(jnp.max(jnp.abs(z_sh - z98)))
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def four_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_sharded_runs_match_the_unsharded_ones(four_devices):
    """One subprocess: a whole fit (pretraining, embedding, clustering loop) sharded over 4 devices,
    and vmapped seeds inside the mesh (each seed's batch sharded, or the seeds split over the devices),
    against the single-device runs (float reassociation only)."""
    r = four_devices
    assert r["devices"] == 4
    assert r["all_reduce_in_step"], "the gradients of the sharded batch are not reduced across devices"
    assert r["pretrain_loss_diff"] < 1e-5
    assert r["embed_sharded"] and r["embed_max_diff"] < 1e-5
    assert r["label_agreement"] > 0.98 and r["n_iter_equal"]
    assert r["param_max_diff"] < 1e-3
    # vmapped seeds split one per device, no collective in the training step: each run is the
    # one-by-one run up to float tolerance
    assert r["runs_per_device"] == [1, 1, 1, 1] and not r["collective_in_split_epoch"]
    assert r["vmap_split_loss_diff"] < 1e-5 and r["vmap_split_label_agreement"] > 0.98
    # data="sharded", 98 rows on 4 devices: 25 rows each (two zero rows of padding, cut off inside
    # the programs), two vmapped seeds with each batch sharded: the single-device results up to float
    # reassociation
    assert r["rows_per_device"] == [25, 25, 25, 25]
    assert r["sharded_shapes"][:2] == [[2, 98], [2, 98, r["sharded_shapes"][2]]]
    assert r["sharded_pretrain_loss_diff"] < 1e-5 and r["sharded_embed_max_diff"] < 1e-5
    assert r["sharded_label_agreement"] > 0.98 and r["sharded_n_iter_equal"]


def test_data_parallel_needs_a_data_axis():
    from jax.sharding import Mesh
    import jax
    import numpy as np
    with pytest.raises(ValueError, match="axis named 'data'"):
        with data_parallel(Mesh(np.asarray(jax.devices()[:1]), ("batch",))):
            pass
    with data_parallel(data_mesh()) as mesh:  # one CPU device here: a valid, trivial mesh
        assert mesh.devices.size == jax.device_count()


def test_data_placement_rule_and_padding():
    """``data="auto"`` shards above SHARD_ABOVE_BYTES on a mesh of several devices (the rule in
    the docs), an unknown mode is refused, and ``first_rows`` cuts the padding inside a program."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sdekc_jax.parallel import (SHARD_ABOVE_BYTES, data_placement, first_rows, place_rows, program_for,
                                    rows_sharded)

    assert data_placement(10 ** 12) == "none"  # no mesh
    one = data_mesh(jax.devices()[:1])
    with data_parallel(one):  # auto on one device: nothing to split
        assert data_placement(SHARD_ABOVE_BYTES + 1) == "replicated"
    four = SimpleNamespace(axis_names=("data",), size=4)  # the rule reads the mesh's size only
    with data_parallel(four):
        assert data_placement(SHARD_ABOVE_BYTES) == "replicated" and data_placement(SHARD_ABOVE_BYTES + 1) == "sharded"
    with data_parallel(four, data="replicated"):
        assert data_placement(10 ** 12) == "replicated"
    with pytest.raises(ValueError, match="data must be one of"):
        with data_parallel(one, data="split"):
            pass
    x = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
    with data_parallel(one, data="sharded"):
        rows = place_rows(x)
        assert rows.sharded and rows.n == len(rows) == 7 and not rows_sharded()  # (set by fit, while tracing)
        np.testing.assert_array_equal(np.asarray(rows.array), x)
        assert place_rows(rows) is rows and program_for(np.sum, 0, rows) is np.sum  # no padding on one device
    cut = first_rows(lambda a, v: a * v.sum(0), 1, 5)
    assert first_rows(cut.__wrapped__, 1, 5) is cut  # one wrapper per (f, pos, n): jit caches stay warm
    padded = jnp.concatenate([jnp.asarray(x), jnp.zeros((1, 2))])
    np.testing.assert_allclose(np.asarray(jax.jit(cut)(2.0, padded)), 2 * x[:5].sum(0))


def test_run_split_rule():
    """``runs="auto"`` splits a vmapped fit's runs when they divide evenly over the devices and the
    rows are replicated; ``"sharded"`` refuses, naming why, where it cannot; ``"replicated"`` never
    splits; and a fit that cannot split raises before any work."""
    import jax
    import numpy as np

    import sdekc_jax as sk
    from sdekc_jax.parallel import split_runs

    assert not split_runs(4)  # no mesh
    four = SimpleNamespace(axis_names=("data",), size=4)
    with data_parallel(four):
        assert split_runs(8) and not split_runs(6) and not split_runs(None) and not split_runs(4, rows_are_sharded=True)
    with data_parallel(four, runs="replicated"):
        assert not split_runs(8)
    with data_parallel(four, runs="sharded"):
        assert split_runs(4)
        for n, rows, why in ((6, False, "6 runs do not divide evenly over 4"), (None, False, "one run"),
                             (4, True, "rows are sharded")):
            with pytest.raises(ValueError, match=why):
                split_runs(n, rows_are_sharded=rows)
        assert not split_runs(6, strict=False)  # (pretraining only the uncached runs: falls back)
    with pytest.raises(ValueError, match="runs must be one of"):
        with data_parallel(four, runs="split"):
            pass
    cfg = sk.RunConfig(n_clusters=2, image_shape=(1, 4, 1), arch="dense", hidden=(), pretrain_epochs=0, max_iters=1)
    with data_parallel(data_mesh(), runs="sharded"), pytest.raises(ValueError, match="one run"):
        sk.fit(cfg, np.zeros((8, 1, 4, 1), np.float32), jax.random.key(0), verbose=False)
