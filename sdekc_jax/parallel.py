"""Data parallelism over the devices of a ``jax.sharding.Mesh``.

Inside ``with data_parallel(mesh):`` the pretraining epochs and the clustering loop (Algorithm 1
and the DEC family) run the same jitted programs with

* the parameters, optimiser state and loop state replicated on every device of the mesh,
* the data set replicated (each device reads its share of every mini-batch locally) or, for a
  large data set, its rows sharded over the devices (``data=``, below),
* every mini-batch sharded along the mesh's data axis (``with_sharding_constraint``), so each
  device computes the forward and backward pass of its share and XLA all-reduces the gradients,
* the embedding of all data computed in sharded chunks and kept sharded, so K-means, S_w and the
  targets are computed where the points are and their sums and counts are all-reduced.

``data``: ``"replicated"`` (every device holds the whole data set: no communication to form a
mini-batch, the faster choice while the data fit), ``"sharded"`` (each device holds n / devices
rows, padded with zero rows to a multiple of the device count that the programs cut off before
use; a mini-batch is gathered from the devices that hold its rows, one all-reduce of the batch;
the embedding is computed by each device on its own rows), or ``"auto"`` (the default): sharded
when the data set in float32 is larger than ``SHARD_ABOVE_BYTES`` (1 GiB), else replicated. In a
multi-process run the sharded rows are read through ``x[lo:hi]`` for the rows of this process's
devices only, so a lazy ``x`` (``np.memmap``, an h5py data set,
:class:`~sdekc_jax.pretrain.SyntheticImages`) is read, and held, one shard per host.

``runs`` (a vmapped fit: several keys, e.g. seeds, or skip-weight rows): ``"sharded"`` splits the
run axis over the devices, so each device trains its runs whole on the replicated data set, with
no collective in a training step (the parameters, optimiser and loop state of each run live on
one device); ``"replicated"`` runs every run on every device with each mini-batch sharded, as
above; ``"auto"`` (the default) splits when the number of runs is a multiple of the device count
and the data set is replicated (:func:`split_runs`). The pretraining of only the runs missing from
the cache splits them when their number allows and otherwise shards their mini-batches.

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
import functools
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy  # noqa: F401  (jax.numpy.issubdtype)
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"
DATA_MODES = ("auto", "replicated", "sharded")
RUN_MODES = ("auto", "replicated", "sharded")
SHARD_ABOVE_BYTES = 1 << 30  # data="auto": shard a data set larger than this (float32 bytes)
_ACTIVE: list[tuple[Mesh, str, str]] = []
_ROWS_SHARDED: list[bool] = []  # set by place_rows for the programs traced while the data are placed
_RUNS_SHARDED: list[bool] = []  # set by fit for the programs of a batched fit whose runs are split


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (axis ``"data"``) over ``devices`` (default: every device, all hosts)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices), (AXIS,))


@contextlib.contextmanager
def data_parallel(mesh: Mesh, data: str = "auto", runs: str = "auto") -> Iterator[Mesh]:
    """Run pretraining and the clustering loop data-parallel over ``mesh`` inside the block;
    ``data``: ``"auto"``, ``"replicated"`` or ``"sharded"``; ``runs``: the same, for the runs
    of a vmapped fit (the module's docstring)."""
    if AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh needs an axis named {AXIS!r} (see data_mesh); it has {mesh.axis_names}")
    if data not in DATA_MODES:
        raise ValueError(f"data must be one of {DATA_MODES}, got {data!r}")
    if runs not in RUN_MODES:
        raise ValueError(f"runs must be one of {RUN_MODES}, got {runs!r}")
    _ACTIVE.append((mesh, data, runs))
    try:
        yield mesh
    finally:
        _ACTIVE.pop()


def active_mesh() -> Mesh | None:
    return _ACTIVE[-1][0] if _ACTIVE else None


def data_placement(n_bytes: int) -> str:
    """``"none"`` (no active mesh), ``"replicated"`` or ``"sharded"``: where a data set of
    ``n_bytes`` (float32) goes under the active ``data_parallel`` block."""
    if not _ACTIVE:
        return "none"
    mode = _ACTIVE[-1][1]
    if mode == "auto":
        return "sharded" if n_bytes > SHARD_ABOVE_BYTES and _ACTIVE[-1][0].size > 1 else "replicated"
    return mode


def rows_sharded() -> bool:
    """Whether the data set of the programs being traced is sharded by rows (see ``place_rows``)."""
    return bool(_ROWS_SHARDED and _ROWS_SHARDED[-1])


def split_runs(n_runs: int | None, rows_are_sharded: bool = False, strict: bool = True) -> bool:
    """Whether a fit of ``n_runs`` vmapped runs (None: one run, not vmapped) splits its run axis
    over the active mesh: ``runs="auto"`` splits when the runs divide evenly over the devices and
    the data set is replicated; ``"sharded"`` demands it (a ValueError naming why not, unless
    ``strict`` is False: then it falls back to sharding each run's mini-batches);
    ``"replicated"`` never splits."""
    if not _ACTIVE:
        return False
    mesh, _, mode = _ACTIVE[-1]
    if mode == "replicated":
        return False
    why = ("the fit has one run: runs='sharded' splits the runs of a vmapped fit (several keys or skip-weight rows)"
           if n_runs is None else
           f"{n_runs} runs do not divide evenly over {mesh.size} devices" if n_runs % mesh.size else
           "the data set's rows are sharded (each device would need every row)" if rows_are_sharded else None)
    if why and mode == "sharded" and strict:
        raise ValueError(f"runs='sharded' cannot split this fit over the mesh: {why}")
    return why is None


def runs_sharded() -> bool:
    """Whether the programs being traced have their run axis split over the mesh (see ``split_runs``)."""
    return bool(_RUNS_SHARDED and _RUNS_SHARDED[-1])


@contextlib.contextmanager
def runs_layout(sharded: bool) -> Iterator[None]:
    """Trace and place the programs of the block for a run axis split over the mesh or not: when
    split, :func:`shard_batch` leaves each run's mini-batch on its device and :func:`place_runs`
    shards the leading axis."""
    _RUNS_SHARDED.append(bool(sharded))
    try:
        yield
    finally:
        _RUNS_SHARDED.pop()


def place_runs(tree: Any) -> Any:
    """The arrays of ``tree`` (leading axis: the runs) on the active mesh: split along the run
    axis when :func:`runs_sharded`, else replicated (:func:`replicate`)."""
    if not runs_sharded():
        return replicate(tree)
    return _place(tree, NamedSharding(active_mesh(), P(AXIS)))


class Rows(NamedTuple):
    """A data set placed on the mesh by :func:`place_rows`: ``array`` (possibly padded with zero
    rows) and ``n``, the number of real rows."""
    array: jax.Array
    n: int
    sharded: bool

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple:
        return (self.n,) + tuple(self.array.shape[1:])


def place_rows(x) -> Rows:
    """``x`` (n, ...) as float32 on the active mesh, replicated or with its rows sharded
    (:func:`data_placement`); a :class:`Rows` is returned as it is. Without a mesh: the array on
    the default device. Sharded rows are padded with zero rows to a multiple of the device count
    (``Rows.n`` keeps the real count: run the programs through :func:`first_rows`), and only the
    rows of this process's devices are read from ``x``."""
    if isinstance(x, Rows):
        return x
    n = len(x)
    shape = (n,) + tuple(x.shape[1:])
    placement = data_placement(4 * int(np.prod(shape)))
    if placement == "none":
        return Rows(jax.numpy.asarray(x, jax.numpy.float32), n, False)
    if placement == "replicated":  # from the host: one copy per device, none in between
        return Rows(replicate(x if isinstance(x, jax.Array) else np.asarray(x, np.float32)), n, False)
    mesh = active_mesh()
    n_pad = -(-n // mesh.size) * mesh.size

    def rows(index):
        lo, hi, _ = index[0].indices(n_pad)
        out = np.zeros((hi - lo,) + shape[1:], np.float32)
        if lo < n:
            out[:min(hi, n) - lo] = np.asarray(x[lo:min(hi, n)], np.float32)
        return out
    return Rows(jax.make_array_from_callback((n_pad,) + shape[1:], NamedSharding(mesh, P(AXIS)), rows), n, True)


@contextlib.contextmanager
def rows_layout(sharded: bool) -> Iterator[None]:
    """Trace the programs of the block for a data set sharded by rows or not (``Rows.sharded``;
    ``embed_all`` embeds sharded rows where they are)."""
    _ROWS_SHARDED.append(bool(sharded))
    try:
        yield
    finally:
        _ROWS_SHARDED.pop()


@functools.lru_cache(maxsize=256)
def first_rows(f: Callable, pos: int, n: int) -> Callable:
    """``f`` with its argument ``pos`` cut to its first ``n`` rows inside the program (the
    padding of sharded rows dropped); one wrapper per (f, pos, n), so jit caches stay warm."""
    @functools.wraps(f)
    def cut(*args):
        args = list(args)
        args[pos] = args[pos][:n]
        return f(*args)
    return cut


def program_for(f: Callable, pos: int, rows: Rows) -> Callable:
    """``f`` for data placed as ``rows``: ``f`` itself, or :func:`first_rows` when padded."""
    return f if rows.array.shape[0] == rows.n else first_rows(f, pos, rows.n)


def shard_batch(x: jax.Array) -> jax.Array:
    """``x`` sharded along its first axis over the active mesh (unchanged without one, and when
    the runs are split over the mesh: each device then trains its own runs on whole batches).
    Call it inside jitted code on each mini-batch / chunk of points."""
    mesh = active_mesh()
    if mesh is None or runs_sharded():
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(AXIS)))


def to_host(tree: Any) -> Any:
    """numpy copies of the arrays of ``tree``, the same on every process. An array sharded over
    devices of other processes (a multi-process run) is gathered with
    ``multihost_utils.process_allgather``, a collective: every process must call this together."""
    def one(v):
        if isinstance(v, jax.Array) and not v.is_fully_addressable and not v.is_fully_replicated:
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(v, tiled=True))
        return jax.device_get(v)
    return jax.tree.map(one, tree)


def initialize_distributed(coordinator: str | None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Join a multi-process run: ``jax.distributed.initialize`` with the coordinator's
    ``HOST:PORT``, the number of processes and this one's id (``coordinator="auto"``: let JAX find
    them, as on Cloud TPU). On CPU the processes' collectives go through gloo. Call it before any
    other use of JAX. Errors name the bad value."""
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise ValueError("--num-processes and --process-id need --coordinator HOST:PORT (the address of process 0)")
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator == "auto":
        jax.distributed.initialize()
        return
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:12345) or 'auto', got {coordinator!r}")
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"--num-processes must be an integer >= 1 with --coordinator, got {num_processes!r}")
    if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id must be an integer in [0, {num_processes - 1}] with --coordinator, "
                         f"got {process_id!r}")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def replicate(tree: Any) -> Any:
    """Every array of ``tree`` placed on all devices of the active mesh (unchanged without one).
    In a multi-process run every process passes the same values (they are built from the same
    seed and data), which go to the global mesh through the host."""
    mesh = active_mesh()
    if mesh is None:
        return tree
    return _place(tree, NamedSharding(mesh, P()))


def _place(tree: Any, sharding: NamedSharding) -> Any:
    """The arrays of ``tree`` with ``sharding``. In a multi-process run each process builds its
    shards from its own copy of the values, which every process holds alike (``device_put``
    would compare them across processes first, and NaN, e.g. in a loop's unused history, never
    compares equal)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(v):
        if isinstance(v, jax.Array) and v.sharding == sharding:
            return v
        if isinstance(v, jax.Array) and jax.numpy.issubdtype(v.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(one(jax.random.key_data(v)), impl=jax.random.key_impl(v))
        host = np.asarray(to_host(v))
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return jax.tree.map(one, tree)
