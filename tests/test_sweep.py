"""Skip weights as a traced parameter: several skip settings (and seeds) in one vmapped program
give, run by run, what each setting gives alone with its skips fixed in the module."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdekc_jax.algorithm import cluster
from sdekc_jax.models import CAE, BINARY_ARCH, embed_fn, encoder_params
from sdekc_jax.pretrain import pretrain, unstack_tree
from sdekc_jax.sweep import skip_sweep
from sdekc_jax.vmap_exact import adam

SHAPE = (16, 16, 1)
KW = dict(pretrain_epochs=2, batch_size=32, max_iters=4, steps_per_iter=3, tol=0.0, kmeans_n_init=2, verbose=False)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    protos = rng.uniform(size=(3,) + SHAPE)
    y = rng.integers(0, 3, 96)
    return np.clip(protos[y] + 0.1 * rng.normal(size=(96,) + SHAPE), 0, 1).astype(np.float32)


def alone(model, x, k, w, seed):
    """The same composition with the skips fixed in the module (what run("sdekc") does)."""
    m = model.clone(skip_weights=w)
    init_key, pre_key, cl_key, _ = jax.random.split(jax.random.key(seed), 4)
    p0 = jax.jit(lambda kk: m.init(kk, x[:1])["params"])(init_key)
    params, losses = pretrain(m, p0, x, pre_key, epochs=KW["pretrain_epochs"], batch_size=KW["batch_size"],
                              optimizer=adam(1e-3), verbose=False)
    r = cluster(embed_fn(m), encoder_params(params), x, k, cl_key, max_iters=KW["max_iters"],
                steps_per_iter=KW["steps_per_iter"], batch_size=KW["batch_size"], tol=KW["tol"],
                kmeans_n_init=KW["kmeans_n_init"], verbose=False)
    return params, losses, r


RUNS = [(None, 0), ("paper-text", 1)]


@pytest.fixture(scope="module")
def sweep(images):
    return skip_sweep(CAE(SHAPE, n_embed=3, **BINARY_ARCH), images, 3, RUNS, **KW)


def test_skip_sweep_equals_each_setting_alone(images, sweep):
    """Two runs in one program: no skips (as (0, 1)), and the paper text's reading with another
    seed. Labels, histories, pretrained and clustered parameters are bit-identical to
    each setting run alone with its skips in the module, and dec_skips is never trained."""
    model = CAE(SHAPE, n_embed=3, **BINARY_ARCH)
    res = sweep
    assert res.labels.shape == (2, 96) and res.embedding.shape == (2, 96, 3) and res.pretrain_labels.shape == (2, 96)
    np.testing.assert_array_equal(res.params["dec_skips"], np.float32([[0.0, 1.0], [0.999, 0.001]]))
    x = jnp.asarray(images)
    for i, (w, seed) in enumerate(res.runs):
        params, losses, r = alone(model, x, 3, w, seed)
        np.testing.assert_array_equal(res.labels[i], r.labels)
        np.testing.assert_array_equal(res.history[i]["pretrain_loss"], losses)
        for key in ("n_changed", "inertia"):
            np.testing.assert_array_equal(res.history[i][key], r.history[key])
        mine = {k: v for k, v in unstack_tree(res.params, i).items() if k != "dec_skips"}
        chex.assert_trees_all_equal(mine, {**params, **r.params})
    assert not np.array_equal(res.labels[0], res.labels[1])  # the settings really differ


def test_skip_sweep_checks_its_input(images):
    model = CAE(SHAPE, n_embed=3, **BINARY_ARCH)
    with pytest.raises(ValueError, match="distinct"):
        skip_sweep(model, images, 3, [(None, 0), (None, 0)], **KW)
    with pytest.raises(ValueError, match="at least one"):
        skip_sweep(model, images, 3, [], **KW)
    with pytest.raises(ValueError, match="skip preset"):
        skip_sweep(model, images, 3, [("sideways", 0)], **KW)
    with pytest.raises(TypeError, match="CAE"):
        skip_sweep(object(), images, 3, [(None, 0)], **KW)
    with pytest.raises(ValueError, match="shape"):
        skip_sweep(CAE((28, 28, 1), n_embed=3), images, 3, [(None, 0)], **KW)
    with pytest.raises(ValueError, match="traced_skips needs"):
        CAE(SHAPE, skip_weights=None, traced_skips=True).init(jax.random.key(0), jnp.zeros((1,) + SHAPE))


def test_skip_sweep_resumes_from_its_checkpoints(images, sweep, tmp_path, run_with_crashes):
    """A sweep stopped right after its first pretraining checkpoint and again after its first
    clustering checkpoint, then started again, ends as the uninterrupted sweep; a checkpoint
    written by other runs is refused."""
    from sdekc_jax.checkpoint import CheckpointMismatch
    model = CAE(SHAPE, n_embed=3, **BINARY_ARCH)
    kw = {**KW, "checkpoint_dir": str(tmp_path / "ck")}
    res, saved = run_with_crashes(lambda: skip_sweep(model, images, 3, RUNS, **kw))
    assert saved == ["pretrain", "pretrain", "cluster"]  # epoch 1 | epoch 2, the loop's one chunk | nothing left
    np.testing.assert_array_equal(res.labels, sweep.labels)
    np.testing.assert_array_equal(res.pretrain_labels, sweep.pretrain_labels)
    chex.assert_trees_all_equal(res.params, sweep.params)
    for a, b in zip(res.history, sweep.history):
        chex.assert_trees_all_equal(a, b)
    with pytest.raises(CheckpointMismatch, match="other settings"):
        skip_sweep(model, images, 3, [(None, 0), ("paper-text", 2)], **kw)
