"""The comparison methods: every one through the CLI on real data, the pretraining cache, the
binary preset, settings validation, and ``run("sdekc")`` == the SDEKC estimator."""
import json

import jax
import numpy as np
import pytest

from sdekc_jax import SDEKC, load_dataset
from sdekc_jax.cache import PretrainCache
from sdekc_jax.cli import main
from sdekc_jax.methods import METHODS, get_method, run
from sdekc_jax.validation import resolve_skips

TINY = ["--pretrain-epochs", "1", "--max-iters", "2", "--steps-per-iter", "3"]
NO_LOOP = {"kmeans", "ae-kmeans", "cae-kmeans", "arae-kmeans"}


@pytest.fixture(scope="module")
def usps_small():
    x, y = load_dataset("usps", None, "test")
    return x[:400], y[:400]


def test_every_method_is_registered():
    assert list(METHODS) == ["kmeans", "ae-kmeans", "cae-kmeans", "arae-kmeans", "dec", "idec", "dcec", "idcec",
                             "sidcec", "dekm", "sdekc"]


# one method per autoencoder and clustering branch (raw, dense, ARAE, CAE + DEC with reconstruction,
# CAE + Algorithm 1); the others differ from these only in settings (test_source_defaults_...)
@pytest.mark.parametrize("name", ["kmeans", "ae-kmeans", "dec", "idcec", "sdekc"])  # ARAE: test_models_methods
def test_method_runs_through_the_cli(name, tmp_path, capsys):
    flags = [] if name == "kmeans" else (TINY[:2] if name in NO_LOOP else TINY)
    rc = main(["run", "--dataset", "usps", "--subset", "test", "--method", name, *flags, "--out", str(tmp_path),
               "--no-progress"])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["method"] == name and res["dataset"] == "usps"
    (r,) = res["runs"]
    assert 0.1 < r["acc"] <= 1 and 0 < r["nmi"] <= 1 and -0.1 < r["ari"] <= 1 and r["seconds"] >= 0
    if name not in NO_LOOP:
        assert r["n_iter"] <= 2 and res["config"]["max_iters"] == 2
    assert "mean ± std" in capsys.readouterr().out


@pytest.mark.slow
def test_labels_have_the_right_length_and_range(usps_small):
    x, y = usps_small
    for name in ("kmeans", "dcec"):  # (dekm, idcec, sdekc, sidcec: the cache test below checks theirs)
        r = run(name, x, 10, verbose=False, **({} if name == "kmeans" else {"pretrain_epochs": 1, "max_iters": 2,
                                                                            "steps_per_iter": 2}))
        assert r.labels.shape == (400,) and r.labels.min() >= 0 and r.labels.max() < 10
        if name != "kmeans":
            assert r.embedding.shape == (400, 10)


@pytest.mark.slow
def test_pretraining_cache_is_shared_and_invalidated(usps_small, tmp_path):
    x, _ = usps_small
    cache = PretrainCache(tmp_path)
    kw = dict(verbose=False, cache=cache, pretrain_epochs=1)
    a = run("cae-kmeans", x, 10, **kw)
    assert not a.pretrain_cache_hit
    b = run("cae-kmeans", x, 10, **kw)                        # same everything: hit, same result
    assert b.pretrain_cache_hit
    np.testing.assert_array_equal(a.labels, b.labels)
    loop = dict(max_iters=2, steps_per_iter=2)

    def run_checked(name, **extra):  # labels of the right length and range, embedding of the right size
        r = run(name, x, 10, **kw, **loop, **extra)
        assert r.labels.shape == (400,) and r.labels.min() >= 0 and r.labels.max() < 10
        assert r.embedding.shape == (400, 10)
        return r

    assert run_checked("dekm").pretrain_cache_hit  # DEKM shares the skip-less CAE
    assert run_checked("idcec").pretrain_cache_hit
    assert not run_checked("sdekc").pretrain_cache_hit          # skips: another autoencoder
    assert run_checked("sidcec").pretrain_cache_hit             # ... shared by SIDCEC
    # (the seed, the epochs, the data, batch size, optimizer, architecture: each is part of the key,
    # see test_cache.py's fit-level test)
    assert not run("sdekc", x, 10, **kw, **loop, skips="paper-text").pretrain_cache_hit
    assert cache.hits == 4


def test_run_sdekc_equals_the_estimator(usps_small, tmp_path):
    x, _ = usps_small
    kw = dict(pretrain_epochs=1, max_iters=3, steps_per_iter=4)
    est = SDEKC(10, verbose=False, seed=3, **kw).fit(x)
    r = run("sdekc", x, 10, seed=3, verbose=False, cache=PretrainCache(tmp_path), **kw)
    np.testing.assert_array_equal(r.labels, est.labels_)
    # the same RunConfig (the method names its clustering learning rate, the estimator leaves it to
    # default to the pretraining one: both 1e-3)
    same_lr = lambda rc: rc.replace(cluster_learning_rate=rc.cluster_lr)
    assert same_lr(r.run_config) == same_lr(est.config_)
    assert sorted(r.params) == sorted(est.params_) == ["decoder", "encoder"]
    jax.tree.map(np.testing.assert_array_equal, r.params, est.params_)  # encoder and decoder
    np.testing.assert_array_equal(r.centers, est.cluster_centers_)


@pytest.mark.parametrize("name", ["idcec", "sidcec"])
def test_binary_preset_on_two_usps_digits(name, tmp_path):
    x, y = load_dataset("usps", None, "test")
    keep = (y == 0) | (y == 1)
    x2 = x[keep][:300]
    r = run(name, x2, 2, arch="binary", verbose=False, cache=PretrainCache(tmp_path), pretrain_epochs=2,
            max_iters=3, steps_per_iter=5)
    assert r.labels.shape == (300,) and set(np.unique(r.labels)) <= {0, 1}
    assert r.embedding.shape == (300, 2)
    assert r.centers.shape == (2, 2)
    enc, dec = r.params["encoder"], r.params["decoder"]
    shapes = {k: v["kernel"].shape for k, v in enc.items() if k.startswith("conv")}
    assert shapes == {"conv0": (3, 3, 1, 4), "conv1": (3, 3, 4, 2), "conv2": (3, 3, 2, 1)}
    assert enc["embed"]["kernel"].shape == (2 * 2 * 1, 2)  # 16x16 -> 8 -> 4 -> 2, one channel
    assert [dec[f"conv{j}"]["kernel"].shape for j in range(3)] == [(3, 3, 1, 2), (3, 3, 2, 4), (3, 3, 4, 1)]
    rc = r.run_config
    assert (rc.filters, rc.kernels, rc.activation, rc.embed_dim) == ((4, 2, 1), (3, 3, 3), "tanh", 2)
    assert (resolve_skips(r.config["skips"]) is None) == (name == "idcec")  # SIDCEC: the skips


def test_binary_preset_through_the_cli_on_two_classes(tmp_path):
    rc = main(["run", "--method", "sidcec", "--arch", "binary", "--subset", "test", "--classes", "3", "8", *TINY,
               "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    x, y = load_dataset("usps", None, "test")
    assert res["arch"] == "binary" and res["classes"] == [3, 8] and res["n_samples"] == int(np.isin(y, [3, 8]).sum())
    assert 0.5 <= res["runs"][0]["acc"] <= 1  # two clusters: ACC is at least 0.5 by definition
    assert main(["run", "--classes", "3", "42", "--out", str(tmp_path)]) == 2


def test_binary_preset_needs_a_cae_method(usps_small):
    x, _ = usps_small
    with pytest.raises(ValueError, match="architecture 'binary'"):
        run("dec", x, 10, arch="binary", verbose=False)


def test_unknown_settings_and_methods_are_errors(usps_small, tmp_path, capsys):
    x, _ = usps_small
    with pytest.raises(ValueError, match="no setting"):
        run("kmeans", x, 10, pretrain_epochs=3)
    with pytest.raises(ValueError, match="unknown method"):
        get_method("nope")
    with pytest.raises(ValueError, match="n_clusters"):
        run("kmeans", x, 1)
    with pytest.raises(ValueError, match="skip preset"):
        run("sdekc", x, 10, skips="sideways", verbose=False)
    rc = main(["run", "--method", "cae-kmeans", "--max-iters", "3", "--out", str(tmp_path / "o")])
    assert rc == 2 and "no setting" in capsys.readouterr().err


def test_source_defaults_are_the_documented_ones():
    dec, idec, dcec, dekm = (get_method(n) for n in ("dec", "idec", "dcec", "dekm"))
    assert dec.config("usps")["steps_per_iter"] == 30 and dec.config("mnist")["steps_per_iter"] == 140
    assert dec.config()["max_iters"] * dec.config()["steps_per_iter"] >= 20000  # maxiter 2e4 steps
    assert idec.config()["gamma"] == 0.1 and dec.config()["gamma"] == 1.0
    assert dcec.config()["cluster_optimizer"]["name"] == "adam"
    assert dekm.config()["tol"] == 0.005 and get_method("sdekc").config()["tol"] == 0.001
    assert get_method("ae-kmeans").config("usps")["pretrain_epochs"] == 50
