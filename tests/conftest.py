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


@pytest.fixture
def run_with_crashes(monkeypatch):
    """``run_with_crashes(call) -> (result, saved)``: calls ``call()`` three times. The first call
    is stopped (an exception) right after its first pretraining checkpoint is written, the second
    right after its first clustering checkpoint, the third runs to the end; ``saved`` lists the
    checkpoints written (file stems), ``result`` is the third call's. For the resume tests."""
    from sdekc_jax.checkpoint import Checkpointer

    class Crash(Exception):
        pass

    def run(call):
        orig, saved = Checkpointer.save, []
        for phase in ("pretrain", "cluster", None):
            def save(self, *a, _phase=phase, **k):
                orig(self, *a, **k)
                saved.append(self.path.stem)
                if self.path.stem == _phase:
                    raise Crash
            monkeypatch.setattr(Checkpointer, "save", save)
            if phase is None:
                result = call()
            else:
                with pytest.raises(Crash):
                    call()
        monkeypatch.setattr(Checkpointer, "save", orig)
        return result, saved

    return run
