"""Data parallelism over the devices of a ``jax.sharding.Mesh``.

Inside ``with data_parallel(mesh):`` the pretraining epochs and the clustering loop (Algorithm 1
and the DEC family) run the same jitted programs with

* the parameters, optimiser state and loop state replicated on every device of the mesh,
* the data set replicated (each device reads its share of every mini-batch locally),
* every mini-batch sharded along the mesh's data axis (``with_sharding_constraint``), so each
  device computes the forward and backward pass of its share and XLA all-reduces the gradients,
* the embedding of all data computed in sharded chunks and kept sharded, so K-means, S_w and the
  targets are computed where the points are and their sums and counts are all-reduced.

The results are those of a single device up to float reassociation of those reductions (tested
with 4 forced CPU devices in ``tests/test_parallel.py``). Outside the block nothing changes.

    import jax
    from sdekc_jax import RunConfig, fit
    from sdekc_jax.parallel import data_mesh, data_parallel
    with data_parallel(data_mesh()):            # all local devices
        fitted = fit(cfg, x, jax.random.key(0))

On a multi-host TPU slice call ``jax.distributed.initialize()`` first on every host (see
docs/parallel-and-scale.md); ``data_mesh()`` then spans the devices of all hosts.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"
_ACTIVE: list[Mesh] = []


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (axis ``"data"``) over ``devices`` (default: every device, all hosts)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices), (AXIS,))


@contextlib.contextmanager
def data_parallel(mesh: Mesh) -> Iterator[Mesh]:
    """Run pretraining and the clustering loop data-parallel over ``mesh`` inside the block."""
    if AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh needs an axis named {AXIS!r} (see data_mesh); it has {mesh.axis_names}")
    _ACTIVE.append(mesh)
    try:
        yield mesh
    finally:
        _ACTIVE.pop()


def active_mesh() -> Mesh | None:
    return _ACTIVE[-1] if _ACTIVE else None


def shard_batch(x: jax.Array) -> jax.Array:
    """``x`` sharded along its first axis over the active mesh (unchanged without one).
    Call it inside jitted code on each mini-batch / chunk of points."""
    mesh = active_mesh()
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(AXIS)))


def replicate(tree: Any) -> Any:
    """Every array of ``tree`` placed on all devices of the active mesh (unchanged without one)."""
    mesh = active_mesh()
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P()))
