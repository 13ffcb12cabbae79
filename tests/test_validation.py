"""Bad input at the API and CLI boundary: a correct result or one clear error naming the problem."""
import numpy as np
import pytest

from sdekc_jax import SDEKC
from sdekc_jax.cli import main
from sdekc_jax.data import load_dataset
from sdekc_jax.methods import get_method, run
from sdekc_jax.metrics import evaluate
from sdekc_jax.validation import check_images, resolve_skips

rng = np.random.default_rng(0)
X = rng.random((24, 16, 16, 1)).astype(np.float32)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_refused_up_front(value):
    bad = X.copy()
    bad[5, 3, 3, 0] = value
    for fit in (lambda: run("sdekc", bad, 3, verbose=False), lambda: SDEKC(3, verbose=False).fit(bad)):
        with pytest.raises(ValueError, match="NaN or inf \\(1 values\\)"):
            fit()


@pytest.mark.parametrize("shape", [(24 * 256,), (1, 24, 16, 16, 1)])
def test_wrong_rank(shape):
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, H, W, C\); got shape"):
        run("sdekc", X.reshape(shape), 3, verbose=False)


def test_missing_channel_axis_is_added():
    assert check_images(X[..., 0]).shape == (24, 16, 16, 1)


def test_flat_input_needs_a_dense_method_or_an_image_shape():
    flat = X.reshape(24, -1)
    with pytest.raises(ValueError, match="is flat.*image_shape"):
        run("sdekc", flat, 3, verbose=False)
    assert check_images(flat, image_shape=(16, 16, 1)).shape == (24, 16, 16, 1)
    with pytest.raises(ValueError, match="256 features per sample, image_shape \\(8, 8, 1\\) needs 64"):
        check_images(flat, image_shape=(8, 8, 1))
    a = run("kmeans", flat, 3, verbose=False)  # raw K-means: the same labels as the images
    b = run("kmeans", X, 3, verbose=False)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_integer_and_float64_input():
    u8 = (X * 255).astype(np.uint8)
    np.testing.assert_allclose(check_images(u8), u8 / np.float32(255))  # uint8: scaled to [0, 1]
    with pytest.raises(ValueError, match="dtype int32; pass float images"):
        check_images(u8.astype(np.int32))
    x64 = check_images(X.astype(np.float64))
    assert x64.dtype == np.float32 and np.array_equal(x64, X)


@pytest.mark.parametrize("k", [1, 0, 25, 2.0, True])
def test_bad_n_clusters(k):
    with pytest.raises(ValueError, match="n_clusters must be an integer in \\[2, n_samples=24\\]"):
        run("kmeans", X, k, verbose=False)


def test_fewer_samples_than_the_batch_size_train_on_one_masked_batch():
    r = run("ae-kmeans", X[:12], 3, verbose=False, pretrain_epochs=2, batch_size=256)
    assert r.labels.shape == (12,) and np.isfinite(r.history["pretrain_loss"]).all()
    assert len(r.history["pretrain_loss"]) == 2


def test_constant_data_is_refused():
    const = np.full((24, 16, 16, 1), 0.4, np.float32)
    for fit in (lambda: run("kmeans", const, 3, verbose=False), lambda: SDEKC(3, verbose=False).fit(const)):
        with pytest.raises(ValueError, match="no variation: all 24 samples are identical"):
            fit()


def test_labels_of_the_wrong_length():
    with pytest.raises(ValueError, match="differ in length: 5 vs 4"):
        evaluate(np.zeros(5, int), np.zeros(4, int))


def test_image_size_the_architecture_cannot_mirror():
    with pytest.raises(ValueError, match="image shape \\(15, 15, 1\\) is not supported"):
        run("sdekc", rng.random((24, 15, 15, 1)).astype(np.float32), 3, verbose=False)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'sdekk'; choose one of \\['kmeans'"):
        get_method("sdekk")
    with pytest.raises(ValueError, match="usps"):
        load_dataset("uspss")


@pytest.mark.parametrize("w", [(np.nan, 1.0), (0.5, np.inf), ("a", 1.0), (1.0,), "paper"])
def test_skip_weights_must_be_finite_numbers_or_a_preset(w):
    with pytest.raises(ValueError, match="two finite numbers|unknown skip preset"):
        resolve_skips(w)


def test_output_folder_not_writable(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match="output folder .* is not writable"):
        main(["run", "--method", "kmeans", "--subset", "test", "--out", str(blocker / "out"), "--no-progress"])


@pytest.mark.parametrize("change,match", [
    ({"n_clusters": 1}, "n_clusters must be an integer >= 2, got 1"),
    ({"n_clusters": True}, "n_clusters must be an integer >= 2, got True"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"max_iters": 2.5}, "max_iters must be an integer >= 1"),
    ({"embedding_dim": 0}, "embedding_dim must be an integer >= 1 \\(or None"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0, got nan"),
    ({"cluster_learning_rate": -1.0}, "cluster_learning_rate must be a finite number > 0"),
    ({"activation": "gelu"}, "activation must be one of \\['relu', 'tanh'\\]"),
    ({"clustering": "spectral"}, "clustering must be one of"),
    ({"tol": -0.1}, "RunConfig.tol must be a fraction in \\[0, 1\\)"),
    ({"image_shape": (16, 16)}, "image_shape must be \\(H, W, C\\)"),
    ({"arch": "none"}, "raw pixels.*clustering='kmeans'"),
])
def test_run_config_names_the_bad_setting(change, match):
    from sdekc_jax.config import RunConfig
    with pytest.raises(ValueError, match=match):
        RunConfig(**change)


def test_fit_checks_its_arguments_before_any_work():
    import jax
    import jax.numpy as jnp
    from sdekc_jax.config import RunConfig
    from sdekc_jax.run import fit

    cfg = RunConfig(n_clusters=3, image_shape=(16, 16, 1), pretrain_epochs=1, max_iters=1)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="x has images of shape \\(8, 8, 1\\), the config says image_shape=\\(16, 16, 1\\)"):
        fit(cfg, X[:, :8, :8], key, verbose=False)
    with pytest.raises(ValueError, match="x has 2 samples, fewer than n_clusters=3"):
        fit(cfg, X[:2], key, verbose=False)
    with pytest.raises(ValueError, match="skip_weights must be \\(w_enc, w_dec\\) or an \\(R, 2\\) array, got shape \\(3,\\)"):
        fit(cfg, X, key, jnp.ones(3), verbose=False)
    with pytest.raises(TypeError, match="typed PRNG key"):
        fit(cfg, X, jax.random.PRNGKey(0), verbose=False)
    with pytest.raises(ValueError, match="the keys \\(2\\) and skip weights \\(3\\) name different numbers of runs"):
        fit(cfg, X, jax.random.split(key, 2), jnp.ones((3, 2)), verbose=False)
