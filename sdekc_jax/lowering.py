"""Lower a run's programs for any platform with ``jax.export``, on any machine, and count their ops.

    texts = lower(RunConfig(n_clusters=10, image_shape=(16, 16, 1)), n=9298, platforms=("tpu", "cuda"))
    op_counts(texts["run"]["tpu"])   # {"convolution": ..., "strided_slice": 0, "while": ..., ...}

Nothing is compiled or run: the programs are traced with abstract inputs of ``n`` images and
lowered to StableHLO for each platform. ``lax.platform_dependent`` keeps, per platform, only its
own branch, so the counts show which kernels a TPU or GPU would run (native convolutions and
matmul K-means) and which a CPU runs (the gather convolutions: strided slices, no convolution).
The programs: ``pretrain_epoch`` (one epoch of mini-batch steps), ``cluster_advance`` (Algorithm
1's iterations up to a limit) and ``run`` (``make_run(cfg)``: init, pretraining, clustering).
"""
from __future__ import annotations

import re
from collections import Counter

import jax
import jax.numpy as jnp
from jax import export

from .config import RunConfig
from .run import make_run, make_steps

PROGRAMS = ("pretrain_epoch", "cluster_advance", "run")
_OP = re.compile(r"\b(stablehlo\.[a-z_]+)")
_STRIDED_SLICE = re.compile(r"stablehlo\.slice %\S+ \[[^\]]*\d+:\d+:\d+")
_CONV_TYPES = re.compile(r"stablehlo\.convolution.*?:\s*\((tensor<[^>]*>)")
_CUSTOM = re.compile(r"custom_call @([A-Za-z0-9_]+)")


def program_args(cfg: RunConfig, n: int) -> dict:
    """``{program: (function, abstract arguments)}`` for ``n`` images of ``cfg``."""
    steps = make_steps(cfg)
    x = jax.ShapeDtypeStruct((n,) + tuple(cfg.image_shape), jnp.float32)
    key = jax.eval_shape(lambda: jax.random.key(0))
    w = jax.ShapeDtypeStruct((2,), jnp.float32)
    params = jax.eval_shape(steps.init, key)
    pre_state = jax.eval_shape(steps.pretrain_init, params)
    loop_state = jax.eval_shape(lambda p, xx, k, ww: steps.cluster_init(p, xx, k, ww), params, x, key, w)
    i32 = jax.ShapeDtypeStruct((), jnp.int32)
    return {
        "pretrain_epoch": (steps.pretrain_epoch, (pre_state, x, key, i32, w)),
        "cluster_advance": (steps.advance, (loop_state, x, w, i32)),
        "run": (make_run(cfg), (key, x, w)),
    }


def lower(cfg: RunConfig, n: int, platforms=("cpu", "tpu", "cuda"), programs=PROGRAMS) -> dict:
    """``{program: {platform: StableHLO text}}`` of ``jax.jit(program)`` lowered for each platform."""
    args = program_args(cfg, n)
    out = {}
    for name in programs:
        fn, a = args[name]
        out[name] = {p: export.export(jax.jit(fn), platforms=[p])(*a).mlir_module() for p in platforms}
    return out


def op_counts(text: str) -> dict:
    """What a lowered module holds: ``ops`` (count per StableHLO op), ``convolution``,
    ``convolution_bf16`` (convolutions with bfloat16 operands), ``strided_slice`` (the gather
    convolutions' marker), ``while``, ``dot_general`` and ``custom_calls`` (e.g. the ``eigh`` kernel
    of the platform)."""
    ops = Counter(_OP.findall(text))
    conv_types = _CONV_TYPES.findall(text)
    return {
        "convolution": ops.get("stablehlo.convolution", 0),
        "convolution_bf16": sum("bf16" in t for t in conv_types),
        "strided_slice": len(_STRIDED_SLICE.findall(text)),
        "while": ops.get("stablehlo.while", 0),
        "dot_general": ops.get("stablehlo.dot_general", 0),
        "custom_calls": dict(Counter(_CUSTOM.findall(text))),
        "ops": dict(sorted(ops.items())),
    }
