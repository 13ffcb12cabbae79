"""The programs lower for TPU and CUDA on this CPU (``jax.export``): native convolutions there,
the gather forms on CPU, ``eigh`` and the while loops on every platform, bf16 convolutions under
``precision="bf16"``."""
import pytest

import sdekc_jax as sk
from sdekc_jax.lowering import PROGRAMS, lower, op_counts

CFG = sk.RunConfig(n_clusters=4, image_shape=(16, 16, 1), pretrain_epochs=1, max_iters=2, steps_per_iter=2,
                   batch_size=16)
EIGH = {"cpu": "lapack_ssyevd_ffi", "tpu": "Eigh", "cuda": "cusolver_syevd_ffi"}


@pytest.fixture(scope="module")
def counts():
    return {prog: {p: op_counts(t) for p, t in d.items()} for prog, d in lower(CFG, 64).items()}


@pytest.mark.parametrize("program", PROGRAMS)
def test_accelerators_get_native_convolutions_and_cpu_the_gather_forms(counts, program):
    c = counts[program]
    for p in ("tpu", "cuda"):
        assert c[p]["convolution"] >= 6, (program, p)  # at least every conv layer of encoder and decoder once
        assert c[p]["strided_slice"] == 0, (program, p)  # none of the gather formulation's slices
        assert c[p]["convolution_bf16"] == 0
    assert c["cpu"]["convolution"] == 0 and c["cpu"]["strided_slice"] > 0
    if program != "pretrain_epoch":  # the clustering phase: eigh and the while loops lower everywhere
        for p in ("cpu", "tpu", "cuda"):
            assert c[p]["custom_calls"].get(EIGH[p]) == 1, (program, p, c[p]["custom_calls"])
            assert c[p]["while"] >= 1


def test_pretraining_epoch_conv_count_is_forward_plus_backward(counts):
    # 6 forward convolutions, their 6 kernel gradients and 5 input gradients (not the image's)
    assert counts["pretrain_epoch"]["tpu"]["convolution"] == 17


def test_bf16_convolutions_on_tpu():
    text = lower(CFG.replace(precision="bf16"), 64, platforms=("tpu",), programs=("pretrain_epoch",))
    c = op_counts(text["pretrain_epoch"]["tpu"])
    assert c["convolution"] == c["convolution_bf16"] == 17


def test_forcing_a_kernel_choice():
    text = lower(CFG.replace(conv_impl="gather"), 64, platforms=("tpu",), programs=("pretrain_epoch",))
    c = op_counts(text["pretrain_epoch"]["tpu"])
    assert c["convolution"] == 0 and c["strided_slice"] > 0
    text = lower(CFG.replace(conv_impl="lax"), 64, platforms=("cpu",), programs=("pretrain_epoch",))
    assert op_counts(text["pretrain_epoch"]["cpu"])["convolution"] == 17
