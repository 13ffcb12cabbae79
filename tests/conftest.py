"""Test-session settings: a private pretraining cache and a private XLA compilation cache, both
shared by the tests (and the CLI subprocesses) of one session."""
import os

import jax
import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_caches(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SDEKC_JAX_PRETRAIN_CACHE", str(tmp_path_factory.mktemp("pretrain-cache")))
    # the same persistent compilation cache `sdekc run` enables (sdekc_jax.cli._enable_compilation_cache):
    # programs compiled by one test (same model, same shapes) are reused by the next
    # under pytest-xdist the workers share it (a compiled program is content-addressed), so a model
    # compiled by one worker is not compiled again by the other
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        shared = tmp_path_factory.getbasetemp().parent / "xla-cache-shared"
        shared.mkdir(exist_ok=True)
        xla = str(shared)
    else:
        xla = str(tmp_path_factory.mktemp("xla-cache"))
    mp.setenv("SDEKC_JAX_CACHE", xla)
    old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", xla)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    yield
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    mp.undo()


def pytest_collection_modifyitems(config, items):
    """The tests marked slow first (stable order otherwise): xdist hands them out at the start, and
    the short tests fill the gaps, instead of one worker finishing a long test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
