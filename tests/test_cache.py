"""The content-addressed pretraining cache: keys, round trips, hits/misses, corruption, disabling."""
import hashlib
import json
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax.cache import (PretrainCache, PretrainCacheWarning, cache_key, cached_pretrain, canonical_json,
                             data_fingerprint, default_cache_dir)

SPEC = {"method": "sdekc", "seed": 0, "image_shape": (4, 4, 1), "n_embed": 3, "skip_weights": (0.3, 0.7),
        "epochs": 2, "batch_size": 8, "learning_rate": 1e-3}


def make_params(scale=1.0):
    return {"enc": {"kernel": jnp.arange(6, dtype=jnp.float32).reshape(2, 3) * scale + 0.1,
                    "bias": jnp.full((3,), -0.7, jnp.float32)},
            "dec": {"kernel": jnp.linspace(-1, 1, 4, dtype=jnp.float32).reshape(2, 2) / 3.0}}


class Compute:
    def __init__(self, scale=1.0, losses=(0.5, 0.25, 1 / 3)):
        self.calls, self.scale, self.losses = 0, scale, losses

    def __call__(self):
        self.calls += 1
        return make_params(self.scale), np.asarray(self.losses)


def x_data():
    return np.linspace(0, 1, 2 * 16, dtype=np.float32).reshape(2, 4, 4, 1)


def assert_tree_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert_tree_equal(a[k], b[k])
        else:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
            assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype


def files(d):
    return sorted(p.name for p in d.iterdir())


def test_round_trip_and_hit(tmp_path):
    cache, compute = PretrainCache(tmp_path), Compute()
    p1, l1, hit1 = cached_pretrain(cache, SPEC, x_data(), compute, make_params(0.0))
    p2, l2, hit2 = cached_pretrain(cache, SPEC, x_data(), compute, make_params(0.0))
    assert (hit1, hit2) == (False, True) and compute.calls == 1
    assert (cache.hits, cache.misses) == (1, 1)
    assert_tree_equal(p1, make_params())
    assert_tree_equal(p2, make_params())  # bitwise, onto a template with other values
    assert l2.dtype == l1.dtype and l2.tobytes() == l1.tobytes()
    # a new cache object (as in another process) finds the same entry
    p3, l3, hit3 = cached_pretrain(PretrainCache(tmp_path), dict(reversed(SPEC.items())), jnp.asarray(x_data()),
                                   compute, make_params(0.0))
    assert hit3 and compute.calls == 1 and l3.tobytes() == l1.tobytes()
    # exactly one entry, no temporary files left behind
    key = cache_key({**SPEC, "data": data_fingerprint(x_data())})
    assert files(tmp_path) == [f"{key}.json", f"{key}.msgpack"]
    meta = json.loads((tmp_path / f"{key}.json").read_text())
    assert meta["spec"]["epochs"] == 2 and meta["losses"] == [0.5, 0.25, 1 / 3]


def test_float32_losses_round_trip(tmp_path):
    cache, compute = PretrainCache(tmp_path), Compute(losses=np.float32([0.1, 1 / 3, 7e-9]))
    _, l1, _ = cached_pretrain(cache, SPEC, x_data(), compute, make_params())
    _, l2, hit = cached_pretrain(cache, SPEC, x_data(), compute, make_params())
    assert hit and l2.dtype == np.float32 and l2.tobytes() == l1.tobytes()


@pytest.mark.parametrize("change", [{"epochs": 3}, {"seed": 1}, {"skip_weights": (0.3, 0.70001)},
                                    {"learning_rate": 1e-4}, {"batch_size": 16}, {"extra": None}])
def test_spec_change_is_miss(tmp_path, change):
    cache, compute = PretrainCache(tmp_path), Compute()
    cached_pretrain(cache, SPEC, x_data(), compute, make_params())
    _, _, hit = cached_pretrain(cache, {**SPEC, **change}, x_data(), compute, make_params())
    assert not hit and compute.calls == 2


def test_data_change_is_miss(tmp_path):
    cache, compute = PretrainCache(tmp_path), Compute()
    x = x_data()
    cached_pretrain(cache, SPEC, x, compute, make_params())
    y = x.copy()
    y[1, 2, 3, 0] += 1e-6
    _, _, hit = cached_pretrain(cache, SPEC, y, compute, make_params())
    assert not hit and compute.calls == 2
    _, _, hit = cached_pretrain(cache, SPEC, x.astype(np.float64), compute, make_params())  # dtype matters
    assert not hit and compute.calls == 3
    _, _, hit = cached_pretrain(cache, SPEC, x, compute, make_params())
    assert hit and compute.calls == 3


def test_data_fingerprint():
    x = x_data()
    assert data_fingerprint(x) == data_fingerprint(jnp.asarray(x)) == data_fingerprint(np.asfortranarray(x))
    assert data_fingerprint(x) == data_fingerprint(x.astype(">f4"))  # byte order is not content
    assert data_fingerprint(x) != data_fingerprint(x.reshape(2, 16))
    assert len(data_fingerprint(x)) == 64


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty", "wrong_shape", "meta"])
def test_corrupt_entry_warns_and_recomputes(tmp_path, damage):
    cache, compute = PretrainCache(tmp_path), Compute()
    cached_pretrain(cache, SPEC, x_data(), compute, make_params())
    key = cache_key({**SPEC, "data": data_fingerprint(x_data())})
    path = cache.path(key)
    if damage == "garbage":
        path.write_bytes(b"\x00not msgpack at all")
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:20])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong_shape":
        cache.put(key, {"enc": {"kernel": np.zeros((3, 3), np.float32), "bias": np.zeros(3, np.float32)},
                        "dec": {"kernel": np.zeros((2, 2), np.float32)}}, {"losses": [1.0]})
    else:
        path.with_suffix(".json").write_text("{ truncated")
    with pytest.warns(PretrainCacheWarning, match=path.stem):
        p, losses, hit = cached_pretrain(cache, SPEC, x_data(), compute, make_params())
    assert not hit and compute.calls == 2 and np.array_equal(losses, compute.losses)
    assert_tree_equal(p, make_params())
    # the entry was overwritten with a good one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, hit = cached_pretrain(cache, SPEC, x_data(), compute, make_params())
    assert hit and compute.calls == 2


def test_get_put(tmp_path):
    cache = PretrainCache(tmp_path / "sub" / "dir")  # created on demand
    key = cache_key({"a": 1})
    assert cache.get(key, make_params()) is None and cache.misses == 1
    assert cache.put(key, make_params(), {"note": "x"})
    assert_tree_equal(cache.get(key, make_params(0.0)), make_params())
    assert cache.hits == 1
    other = {"enc": make_params()["enc"]}  # a template of another architecture
    with pytest.warns(PretrainCacheWarning, match=key):
        assert cache.get(key, other) is None
    with pytest.raises(ValueError):
        cache.path("../escape")


def test_disabled_always_computes(tmp_path, monkeypatch):
    for value in ["off", "OFF", "Off", ""]:
        monkeypatch.setenv("SDEKC_JAX_PRETRAIN_CACHE", value)
        assert default_cache_dir() is None
    cache, compute = PretrainCache(default_cache_dir()), Compute()
    for _ in range(2):
        _, losses, hit = cached_pretrain(cache, SPEC, x_data(), compute, make_params())
        assert not hit and np.array_equal(losses, compute.losses)
    assert compute.calls == 2 and (cache.hits, cache.misses) == (0, 2)
    assert cache.get("abc", make_params()) is None and cache.put("abc", make_params(), {}) is False
    assert list(tmp_path.iterdir()) == []


def test_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SDEKC_JAX_PRETRAIN_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SDEKC_JAX_PRETRAIN_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "sdekc_jax" / "pretrained"


def test_unwritable_dir_warns_once_and_carries_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache, compute = PretrainCache(blocker / "cache"), Compute()
    with pytest.warns(PretrainCacheWarning, match="cannot write") as record:
        for _ in range(2):
            p, losses, hit = cached_pretrain(cache, SPEC, x_data(), compute, make_params())
            assert not hit and np.array_equal(losses, compute.losses)
            assert_tree_equal(p, make_params())
    assert len([w for w in record if "cannot write" in str(w.message)]) == 1
    assert compute.calls == 2


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": np.zeros(3)}, {"x": float("nan")}, {"x": {1: 2}},
                                 {"x": [1, {"y": {2.0, 3.0}}]}, {"x": b"bytes"}])
def test_non_jsonable_spec_raises(tmp_path, bad):
    with pytest.raises(TypeError):
        cache_key(bad)
    compute = Compute()
    for cache in [PretrainCache(tmp_path), PretrainCache(None)]:
        with pytest.raises(TypeError):
            cached_pretrain(cache, bad, x_data(), compute, make_params())
    assert compute.calls == 0


def test_spec_with_data_entry_rejected(tmp_path):
    with pytest.raises(ValueError, match="data"):
        cached_pretrain(PretrainCache(tmp_path), {"data": "mnist"}, x_data(), Compute(), make_params())


def test_key_canonical_form():
    spec = {"lr": 0.001, "skip": (0.5, np.float64(0.25)), "epochs": np.int64(200), "name": "mnist",
            "flag": np.bool_(True), "none": None}
    text = '{"epochs":200,"flag":true,"lr":0.001,"name":"mnist","none":null,"skip":[0.5,0.25]}'
    assert canonical_json(spec) == text
    assert cache_key(spec) == hashlib.sha256(text.encode()).hexdigest()
    # stable across processes/versions: a hard-coded digest of the documented canonical text
    assert cache_key({"b": (1, 2), "a": 0.5}) == hashlib.sha256(b'{"a":0.5,"b":[1,2]}').hexdigest() \
        == "e6ed64e48f9b5f53a09ab3f40144f48e715d73cab1df88feb9c972fc55c293ad"
    # dict order does not matter; values and types do
    assert cache_key(dict(reversed(list(spec.items())))) == cache_key(spec)
    assert cache_key({"a": 1}) != cache_key({"a": 1.0}) != cache_key({"a": True})
    assert cache_key({"a": [1, 2]}) == cache_key({"a": (1, 2)})


# --- the cache as run.fit uses it ------------------------------------------------------------

# test_run's tiny settings and data shape: in one pytest session the programs compiled there are reused
SMALL = dict(n_clusters=4, image_shape=(8, 8, 1), filters=(4, 8, 8), kernels=(3, 3, 3), embedding_dim=3,
             pretrain_epochs=2, batch_size=32, max_iters=4, steps_per_iter=3, kmeans_n_init=2, tol=0.0)
W = (0.001, 0.999)


def small_images(n=160):
    rng = np.random.default_rng(1)
    x = rng.normal(0.5, 0.2, size=(n, 8, 8, 1)) + (np.arange(n) % 4)[:, None, None, None] * 0.15
    return np.clip(x, 0, 1).astype(np.float32)


def test_fit_pretrains_once_per_model_key_skips_and_data(tmp_path):
    import jax
    from sdekc_jax.config import RunConfig
    from sdekc_jax.run import fit

    cfg, x, cache = RunConfig(**SMALL), small_images(), PretrainCache(tmp_path)
    go = lambda c=cfg, x=x, key=0, w=W: fit(c, x, jax.random.key(key), jnp.asarray(w), cache=cache, verbose=False)
    a, b = go(), go()
    assert (a.pretrain_cache_hit, b.pretrain_cache_hit) == (False, True) and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(a.result.labels, b.result.labels)
    assert a.result.pretrain_loss.tobytes() == b.result.pretrain_loss.tobytes()
    for u, v in zip(jax.tree.leaves(a.result.params), jax.tree.leaves(b.result.params)):
        np.testing.assert_array_equal(u, v)
    assert b.timings["pretrain"] == a.timings["pretrain"]  # as measured when it ran
    # the clustering phase is not part of the key: another clustering reuses the autoencoder
    assert go(c=cfg.replace(clustering="kmeans")).pretrain_cache_hit
    # the skip weights, the key, the pretraining settings and the data are
    changed = x.copy()
    changed[0, 0, 0, 0] += 1e-3
    for f in (lambda: go(w=(0.5, 0.5)), lambda: go(key=1), lambda: go(c=cfg.replace(pretrain_epochs=1)),
              lambda: go(x=changed)):
        assert not f().pretrain_cache_hit
    assert (cache.hits, cache.misses) == (2, 5)
    assert len(list(tmp_path.glob("*.msgpack"))) == len(list(tmp_path.glob("*.json"))) == 5


def test_vmapped_fits_have_entries_of_their_own(tmp_path):
    """Runs pretrained in one vmapped program are cached apart from sequential ones; a batched fit
    pretrains only its runs that are missing."""
    import jax
    from sdekc_jax.config import RunConfig
    from sdekc_jax.run import fit

    cfg, x, cache = RunConfig(**SMALL), small_images(), PretrainCache(tmp_path)
    keys = lambda *s: jnp.stack([jax.random.key(i) for i in s])
    go = lambda k: fit(cfg, x, k, jnp.asarray(W), cache=cache, verbose=False)
    assert go(jax.random.key(0)).pretrain_cache_hit is False
    a = go(keys(0, 1))
    assert a.batched and a.pretrain_cache_hit == [False, False]  # run 0 is cached sequentially only
    b = go(keys(0, 2))
    assert b.pretrain_cache_hit == [True, False]
    assert a.result.pretrain_loss.shape == (2, SMALL["pretrain_epochs"])
    assert a.result.pretrain_loss[0].tobytes() == b.result.pretrain_loss[0].tobytes()
    np.testing.assert_array_equal(a.one(0).labels, b.one(0).labels)
    assert go(keys(0, 1)).pretrain_cache_hit == [True, True]
    assert len(list(tmp_path.glob("*.msgpack"))) == 4
