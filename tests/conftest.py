"""Test-session settings: a private pretraining cache shared by the tests of one session."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_pretrain_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SDEKC_JAX_PRETRAIN_CACHE", str(tmp_path_factory.mktemp("pretrain-cache")))
    yield
    mp.undo()
