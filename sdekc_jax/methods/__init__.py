"""The methods of the paper's Tables 2 and 3, each a composition of the shared pieces.

    from sdekc_jax.methods import METHODS, run
    res = run("idec", x, n_clusters=10, seed=0, dataset="usps")   # -> MethodResult
    res.labels, res.config, res.timings

Each method is one small module holding its settings as data (with their sources); the only
code that runs them is :func:`sdekc_jax.methods.base.run_method`.
"""
from __future__ import annotations

from . import (ae_kmeans, arae_kmeans, cae_kmeans, dcec, dec, dekm, idcec, idec, kmeans, sdekc, sidcec)
from .base import Method, MethodResult, run_config, run_method, run_method_vmapped

METHODS: dict[str, Method] = {m.METHOD.name: m.METHOD for m in (
    kmeans, ae_kmeans, cae_kmeans, arae_kmeans, dec, idec, dcec, idcec, sidcec, dekm, sdekc)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)}")
    return METHODS[name]


def run(name: str, x, n_clusters: int, **kwargs) -> MethodResult:
    """Run method ``name`` (see :data:`METHODS`); keyword arguments as :func:`run_method`."""
    return run_method(get_method(name), x, n_clusters, **kwargs)


def run_vmapped(name: str, x, n_clusters: int, *, seeds, **kwargs) -> list[MethodResult]:
    """Run method ``name`` for all ``seeds`` as one vmapped program; see :func:`run_method_vmapped`."""
    return run_method_vmapped(get_method(name), x, n_clusters, seeds=seeds, **kwargs)


__all__ = ["METHODS", "Method", "MethodResult", "get_method", "run_config", "run", "run_method", "run_method_vmapped",
           "run_vmapped"]
