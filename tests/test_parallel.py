"""Data parallelism over a Mesh: with 4 forced CPU devices (a subprocess, since the device count is
fixed when JAX starts), the sharded pretraining epoch and clustering loop give the unsharded
results up to float reassociation, and really are sharded (the gradients are all-reduced)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from sdekc_jax.parallel import data_mesh, data_parallel

SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np, optax
    from sklearn.datasets import make_blobs
    from sdekc_jax.algorithm import cluster, embed_all
    from sdekc_jax.models import binary_cae, embed_fn
    from sdekc_jax.parallel import data_mesh, data_parallel
    from sdekc_jax.pretrain import init_state, make_epoch_fn, pretrain

    assert jax.device_count() == 4, jax.devices()
    import os
    if os.environ.get("SDEKC_JAX_CACHE"):  # the session's compilation cache (conftest): the step compiled
        jax.config.update("jax_compilation_cache_dir", os.environ["SDEKC_JAX_CACHE"])  # for training is
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)  # reused to read its HLO
    mesh = data_mesh()
    out = {"devices": jax.device_count()}

    # the pretraining step of a CAE with the two weighted skips (the small Table 2 preset, to keep
    # compilation short), batch 32 = 8 per device
    model = binary_cae((16, 16, 1), skip_weights=(0.001, 0.999))
    x = jax.random.uniform(jax.random.key(0), (96, 16, 16, 1))
    p0 = model.init(jax.random.key(1), x[:1])["params"]
    ref, ref_loss = pretrain(model, p0, x, jax.random.key(2), epochs=2, batch_size=32, verbose=False)
    with data_parallel(mesh):
        par, par_loss = pretrain(model, p0, x, jax.random.key(2), epochs=2, batch_size=32, verbose=False)
        hlo = make_epoch_fn(model, optax.adam(1e-3), 32).lower(
            init_state(p0, optax.adam(1e-3)), x, jax.random.key(2), 0).compile().as_text()
        z_par = embed_all(embed_fn(model), par, x, batch_size=40)
    out["pretrain_max_diff"] = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(par)))
    out["pretrain_loss_diff"] = float(np.max(np.abs(ref_loss - par_loss)))
    out["all_reduce_in_step"] = "all-reduce" in hlo
    out["param_devices"] = len(jax.tree.leaves(par)[0].sharding.device_set)
    out["embed_max_diff"] = float(jnp.max(jnp.abs(z_par - embed_all(embed_fn(model), ref, x, batch_size=40))))
    out["embed_sharded"] = len(z_par.sharding.device_set) == 4 and not z_par.sharding.is_fully_replicated

    # Algorithm 1's loop (embed all, K-means, S_w, eigh, steps) on a linear encoder, 400 points
    xb, _ = make_blobs(n_samples=400, n_features=8, centers=4, cluster_std=1.5, random_state=0)
    xb = jnp.asarray((xb - xb.mean(0)) / xb.std(0), jnp.float32)
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(8, 3)) / np.sqrt(8), jnp.float32), "b": jnp.zeros(3)}
    embed = lambda p, v: v @ p["w"] + p["b"]
    kw = dict(max_iters=6, steps_per_iter=5, batch_size=64, tol=0.0, verbose=False)
    r1 = cluster(embed, params, xb, 4, jax.random.key(3), **kw)
    with data_parallel(mesh):
        r4 = cluster(embed, params, xb, 4, jax.random.key(3), **kw)
    out["cluster_labels_equal"] = bool(np.array_equal(r1.labels, r4.labels))
    out["cluster_param_diff"] = max(float(jnp.max(jnp.abs(r1.params[k] - r4.params[k]))) for k in params)
    out["cluster_n_changed_equal"] = bool(np.array_equal(r1.history["n_changed"], r4.history["n_changed"]))
    out["inertia_rel_diff"] = float(np.max(np.abs(r1.history["inertia"] / r4.history["inertia"] - 1)))

    # vmapped seeds (sdekc run --vmap-seeds) inside the mesh: the seed axis is vmapped, each seed's
    # batch is sharded; every seed ends as its own unsharded, un-vmapped run does
    from sdekc_jax.pretrain import unstack_tree
    keys = jax.random.split(jax.random.key(5), 2)
    p0s = jax.vmap(lambda k: model.init(k, x[:1])["params"])(keys)
    with data_parallel(mesh):
        pv, pv_loss = pretrain(model, p0s, x, keys, epochs=1, batch_size=32, verbose=False, vmapped=True)
        hlo_v = make_epoch_fn(model, optax.adam(1e-3), 32, vmapped=True).lower(
            jax.vmap(lambda p: init_state(p, optax.adam(1e-3)))(p0s), x, keys, 0).compile().as_text()
    ps = [pretrain(model, p, x, k, epochs=1, batch_size=32, verbose=False)
          for p, k in zip([unstack_tree(p0s, i) for i in range(2)], keys)]
    out["vmap_all_reduce_in_step"] = "all-reduce" in hlo_v
    out["vmap_pretrain_max_diff"] = max(float(jnp.max(jnp.abs(a[i] - b))) for i, (p, _) in enumerate(ps)
                                        for a, b in zip(jax.tree.leaves(pv), jax.tree.leaves(p)))
    pw = jax.tree.map(lambda v: jnp.stack([v, 1.1 * v]), params)
    with data_parallel(mesh):
        rv = cluster(embed, pw, xb, 4, keys, vmapped=True, **kw)
    rs = [cluster(embed, p, xb, 4, k, **kw) for p, k in zip([unstack_tree(pw, i) for i in range(2)], keys)]
    out["vmap_cluster_labels_equal"] = all(bool(np.array_equal(r.labels, rv.labels[i])) for i, r in enumerate(rs))
    out["vmap_cluster_param_diff"] = max(float(jnp.max(jnp.abs(r.params[k] - rv.params[k][i])))
                                         for i, r in enumerate(rs) for k in params)
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
def test_sharded_steps_match_the_unsharded_ones(four_devices):
    """One test (the subprocess runs once): pretraining step, embedding, clustering loop, and both
    with vmapped seeds."""
    r = four_devices
    assert r["devices"] == 4
    assert r["all_reduce_in_step"], "the gradients of the sharded batch are not reduced across devices"
    assert r["param_devices"] == 4  # parameters replicated on all devices
    assert r["pretrain_max_diff"] < 1e-5 and r["pretrain_loss_diff"] < 1e-6
    assert r["embed_sharded"] and r["embed_max_diff"] < 1e-5
    assert r["cluster_labels_equal"] and r["cluster_n_changed_equal"]
    assert r["cluster_param_diff"] < 1e-5 and r["inertia_rel_diff"] < 1e-5
    # vmapped seeds inside the mesh
    assert r["vmap_all_reduce_in_step"]
    assert r["vmap_pretrain_max_diff"] < 1e-5
    assert r["vmap_cluster_labels_equal"] and r["vmap_cluster_param_diff"] < 1e-5


def test_data_parallel_needs_a_data_axis():
    from jax.sharding import Mesh
    import jax
    import numpy as np
    with pytest.raises(ValueError, match="axis named 'data'"):
        with data_parallel(Mesh(np.asarray(jax.devices()[:1]), ("batch",))):
            pass
    with data_parallel(data_mesh()) as mesh:  # one CPU device here: a valid, trivial mesh
        assert mesh.devices.size == jax.device_count()
