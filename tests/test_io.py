"""sdekc_jax.io: atomic writes leave whole files with ordinary permissions."""
import json
import os
import stat

import numpy as np
import pytest

from sdekc_jax.io import atomic_write_bytes, atomic_write_json


def test_atomic_write_has_ordinary_permissions_and_no_leftovers(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"abc")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644  # not mkstemp's 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_atomic_json_keeps_the_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"acc": np.float32(0.5), "labels": np.arange(3)})
    assert json.loads(path.read_text()) == {"acc": 0.5, "labels": [0, 1, 2]}
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text())["acc"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
