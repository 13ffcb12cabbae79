"""The benchmark references are what they claim to be (cheap checks; the timings live in
experiments/benchmarks and results/benchmarks.md)."""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "benchmarks"))

from sdekc_jax.config import RunConfig  # noqa: E402
from sdekc_jax.models import encode, init_params  # noqa: E402


# the paper's smallest grey shape (the colour shape (32, 32, 3) was dropped for CI time); the padding
# arithmetic for the other shapes is covered against lax in test_models/test_layers
@pytest.mark.parametrize("shape", [(16, 16, 1)])
def test_torch_twin_computes_the_same_function(shape):
    pytest.importorskip("torch")
    from torch_reference import TorchCAE, load_jax_params, max_output_difference

    x = jax.random.uniform(jax.random.key(0), (4,) + shape)
    params = init_params(jax.random.key(1), RunConfig(n_clusters=10, image_shape=shape))
    # move every parameter off its initial value (biases start at zero)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    params = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    assert max_output_difference(params, load_jax_params(TorchCAE(shape), params), x) < 1e-4
    assert max_output_difference(params, load_jax_params(TorchCAE(shape, skip_weights=None), params), x) < 1e-4


def test_a_pytorch_network_exports_to_our_pytree_and_back():
    """export_params inverts load_jax_params exactly, and a network initialised by PyTorch
    computes the same function once exported (the cross-implementation experiment relies on it)."""
    torch = pytest.importorskip("torch")
    from torch_reference import TorchCAE, export_params, load_jax_params, max_output_difference

    shape = (16, 16, 1)
    params = init_params(jax.random.key(1), RunConfig(n_clusters=10, image_shape=shape))
    back = export_params(load_jax_params(TorchCAE(shape), params))
    assert jax.tree.structure(back) == jax.tree.structure(params)
    assert all(np.array_equal(np.asarray(a), b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)))
    torch.manual_seed(0)
    model = TorchCAE(shape)  # PyTorch's own initialisation: nonzero biases
    x = jax.random.uniform(jax.random.key(0), (4,) + shape)
    assert max_output_difference(export_params(model), model, x) < 1e-4


@pytest.mark.parametrize("shape", [(16, 16, 1), (28, 28, 1)])
def test_natural_torch_cae_has_our_layers(shape):
    """The natural PyTorch comparator: the same parameter count (layers and widths) and shapes as
    our CAE, with PyTorch's usual padding instead of ours."""
    torch = pytest.importorskip("torch")
    from torch_reference import NaturalCAE

    from sdekc_jax.models import param_count

    model = NaturalCAE(shape)
    x_hat, z = model(torch.zeros((3, shape[2], shape[0], shape[1])))
    assert tuple(x_hat.shape) == (3, shape[2], shape[0], shape[1]) and tuple(z.shape) == (3, 10)
    ours = param_count(init_params(jax.random.key(0), RunConfig(n_clusters=10, image_shape=shape)))
    assert sum(p.numel() for p in model.parameters()) == ours


def test_scaling_benchmark_has_no_nkd_tensor():
    import clustering_scaling

    row = clustering_scaling.measure(n=4000, d=16, k=16, iters=2, steps=2, batch_size=64)
    assert row["iters"] == 2 and np.isfinite(row["s_per_iter"])
    # an (n, k, d) float32 intermediate alone would need 4*k*d = 1024 bytes per point; the
    # compiled clustering iteration's temporaries stay far below half of that.
    assert row["xla_temp_bytes_per_point"] < 2 * row["k"] * row["d"]


def test_conv_formulation_choice_reaches_the_models():
    """conv_formulations.py times the models with conv_impl="lax" against the default: the traced
    encoder really calls lax's convolutions then (and computes the same function)."""
    cfg = RunConfig(n_clusters=4, image_shape=(16, 16, 1), filters=(4, 4, 4))
    p = init_params(jax.random.key(0), cfg)["encoder"]
    x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 1))
    f = lambda impl: (lambda p, x: encode(p, x, conv=impl)[0])
    lax_jaxpr, z_lax = str(jax.make_jaxpr(f("lax"))(p, x)), f("lax")(p, x)
    gather_jaxpr, z = str(jax.make_jaxpr(f("gather"))(p, x)), f("gather")(p, x)
    assert "conv_general_dilated" in lax_jaxpr and "conv_general_dilated" not in gather_jaxpr
    np.testing.assert_allclose(z_lax, z, rtol=1e-4, atol=1e-5)


def test_agreement_statistics_are_hand_computable():
    """What vmap_seeds.py / skip_sweep.py report about two runs of the same settings."""
    from _common import agreement, summarise_agreement

    y = np.array([0, 0, 1, 1, 2, 2])
    p = {"w": jnp.zeros(3)}
    a = {"labels": np.array([0, 0, 1, 1, 2, 2]), "pretrain_loss": np.array([0.5, 0.4]), "params": p, "n_iter": 3}
    b = {"labels": np.array([1, 1, 0, 0, 2, 0]), "pretrain_loss": np.array([0.5001, 0.39]),
         "params": {"w": jnp.array([0.0, 0.25, 0.0])}, "n_iter": 4}
    r = agreement(a, b, y)
    assert r["label_agreement"] == pytest.approx(1 / 6) and r["label_agreement_matched"] == pytest.approx(5 / 6)
    assert r["pretrain_loss_first_epoch_abs_diff"] == pytest.approx(1e-4)
    assert r["pretrain_loss_max_abs_diff"] == pytest.approx(0.01)
    assert r["params_max_abs_diff"] == 0.25 and r["n_iter"] == [3, 4] and not r["labels_equal"]
    assert r["acc"] == [1.0, pytest.approx(5 / 6)]
    s = summarise_agreement([r, agreement(a, a, y)])
    assert s["runs"] == 2 and s["runs_with_equal_labels"] == 1 and s["min_label_agreement"] == pytest.approx(1 / 6)
    assert s["acc_diff_mean"] == pytest.approx(-1 / 12) and s["max_first_epoch_loss_abs_diff"] == pytest.approx(1e-4)
