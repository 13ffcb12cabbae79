"""Checkpoints of long phases (pretraining, the clustering loop), stored with Orbax.

A :class:`Checkpointer` owns one folder (e.g. ``out/checkpoints/seed0/pretrain``), managed by an
``orbax.checkpoint.CheckpointManager`` that keeps the latest save. Orbax writes each save into a
temporary folder and renames it when complete, so a kill at any moment leaves the previous
checkpoint or the new one, never a torn one; on several hosts every process calls
:meth:`Checkpointer.save` and Orbax coordinates the writes. A save holds

* ``state``: the pytree (parameters, optimiser state, PRNG keys, counters, history arrays) as a
  list of its leaves (typed PRNG keys as their raw key data), restored into a template of the
  same structure (the state a fresh run would start from);
* ``extra``: a flat dict of numpy arrays of any shape (e.g. loss histories), returned as stored;
* ``meta``: JSON with the format, the ``spec``, the caller's metadata, the leaves' paths, and the
  sha256 of all of it.

Every checkpoint carries a ``spec`` (the settings of the run that wrote it: data fingerprint,
model, seed, budget...). Loading a checkpoint whose spec differs from the current run's raises a
:class:`CheckpointMismatch` that names both, so a resume never silently mixes two runs.

Integrity: the sha256 of the arrays' bytes (with their paths, dtypes and shapes), of ``extra``
and of the spec and metadata is verified on every load. A damaged checkpoint (flipped or zeroed
bytes, truncated files) is refused with a :class:`CheckpointCorrupt` that names the folder; it is
never read into a run, and never deleted by this module.

Time: each save records the seconds the phase has run so far (across earlier pieces of a resumed
run); after a load, :attr:`Checkpointer.resumed_seconds` holds them, so a resumed phase's time
adds up across its pieces.

Fault injection for tests: with ``SDEKC_JAX_KILL_AT=<name>:<n>`` in the environment the process
sends itself SIGKILL right after the n-th save of the checkpoint folder named ``<name>`` (e.g.
``pretrain:3``). It exists so the kill-and-resume tests can kill a run at a known point.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .cache import canonical_json
from .parallel import to_host

KILL_ENV = "SDEKC_JAX_KILL_AT"
FORMAT = 3
_ITEMS = ("state", "extra", "meta")


class CheckpointMismatch(ValueError):
    """The checkpoint on disk was written by a run with other settings."""


class CheckpointCorrupt(ValueError):
    """The checkpoint on disk is damaged (its checksum does not match, or it cannot be read)."""


def _ocp():
    import orbax.checkpoint as ocp  # imported on first use: it is slow to import
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
    return ocp


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _leaves(tree: Any) -> tuple[list[str], list[Any]]:
    """The paths and values of ``tree``'s leaves, typed keys as their key data (still on device)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(p) for p, _ in flat], [jax.random.key_data(v) if _is_key(v) else v for _, v in flat]


def _storable_leaves(tree: Any) -> tuple[list[str], list[np.ndarray]]:
    """The paths and numpy values of ``tree``'s leaves (typed keys as key data)."""
    paths, values = _leaves(tree)
    return paths, [np.asarray(to_host(v)) for v in values]


def _digest(paths: list[str], leaves: list[np.ndarray], extra: dict[str, np.ndarray], header: dict) -> str:
    h = hashlib.sha256()
    for name, v in [*zip(paths, leaves), *sorted(extra.items())]:
        v = np.ascontiguousarray(v)
        h.update(json.dumps([name, v.dtype.str, list(v.shape)]).encode() + b"\0")
        h.update(v.reshape(-1).view(np.uint8).tobytes())
    h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


class Checkpointer:
    """Save/restore one phase's state in the folder ``path`` (e.g. ``out/checkpoints/seed0/pretrain``).

    Args:
      path: the checkpoint folder (Orbax keeps the latest save in a numbered sub-folder).
      spec: a dict of JSON-able settings of the run (as for the pretraining cache's keys); a
        checkpoint with another spec is refused on load.
      every: save every ``every`` epochs / chunks (the caller asks :meth:`due`); the final one
        is always saved.
    """

    def __init__(self, path: str | os.PathLike, spec: Any = None, every: int = 1):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"checkpoint every must be a positive integer, got {every!r}")
        self.path = Path(path)
        self.spec = json.loads(canonical_json(dict(spec or {})))  # TypeError on a value that is not JSON-able
        self.every = int(every)
        self.saves = 0
        self.resumed_seconds = 0.0  # the phase's seconds before this process (set by load)
        self._t0 = time.perf_counter()
        self._manager = None

    def _mgr(self):
        if self._manager is None:
            ocp = _ocp()
            options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, enable_async_checkpointing=False)
            self._manager = ocp.CheckpointManager(self.path.absolute(), options=options, item_names=_ITEMS)
        return self._manager

    def exists(self) -> bool:
        return self.path.is_dir() and self._mgr().latest_step() is not None

    def due(self, count: int) -> bool:
        """Whether the ``count``-th unit (1-based epoch or chunk) should be saved."""
        return count % self.every == 0

    def save(self, tree: Any, meta: dict, extra: dict[str, np.ndarray] | None = None) -> None:
        """Write ``tree`` (restored later into a template), ``meta`` (JSON) and ``extra`` (a flat
        dict of numpy arrays of any shape, e.g. histories, returned as stored)."""
        ocp = _ocp()
        paths, leaves = _storable_leaves(tree)
        extra = {str(k): np.asarray(v) for k, v in (extra or {}).items()}
        meta = {**meta, "seconds": self.resumed_seconds + time.perf_counter() - self._t0}
        header = {"format": FORMAT, "spec": self.spec, "meta": meta, "paths": paths, "extra": sorted(extra)}
        header["sha256"] = _digest(paths, leaves, extra, header)
        items = {"state": ocp.args.StandardSave({"leaves": leaves}), "meta": ocp.args.JsonSave(header)}
        if extra:
            items["extra"] = ocp.args.StandardSave(extra)
        mgr = self._mgr()
        step = (mgr.latest_step() or 0) + 1
        mgr.save(step, args=ocp.args.Composite(**items), force=True)
        mgr.wait_until_finished()
        self.saves += 1
        target = os.environ.get(KILL_ENV)
        if target and target == f"{self.path.name}:{self.saves}":
            os.kill(os.getpid(), signal.SIGKILL)

    def load(self, template: Any) -> tuple[Any, dict, dict[str, np.ndarray]]:
        """``(tree, meta, extra)``: the tree restored into ``template``'s structure and dtypes.

        Raises :class:`CheckpointCorrupt` for a damaged checkpoint (checksum, unreadable files) and
        :class:`CheckpointMismatch` for one written by other settings or an older format."""
        ocp = _ocp()
        advice = "the run is refused; move the folder away (or delete it) to start this phase again"
        mgr = self._mgr()
        step = mgr.latest_step()
        if step is None:
            raise CheckpointCorrupt(f"checkpoint {self.path} holds no complete save; {advice}")
        try:
            header = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            fmt = header.get("format")
        except Exception as exc:
            raise CheckpointCorrupt(f"checkpoint {self.path} is damaged: its metadata cannot be read "
                                    f"({type(exc).__name__}); {advice}") from exc
        if fmt != FORMAT:
            raise CheckpointMismatch(f"checkpoint {self.path} has format {fmt}, expected {FORMAT}; {advice}")
        spec = header.get("spec")
        if spec != self.spec:
            diff = sorted(k for k in set(spec) | set(self.spec) if spec.get(k) != self.spec.get(k)) \
                if isinstance(spec, dict) and isinstance(self.spec, dict) else ["spec"]
            raise CheckpointMismatch(
                f"checkpoint {self.path} was written by a run with other settings (differing: {', '.join(diff)}); "
                f"resume with the same settings, or delete the checkpoint / use another output folder")
        paths, template_leaves = _leaves(template)  # only their paths and shapes are needed: no copy to the host
        if header.get("paths") != paths:
            raise CheckpointMismatch(f"checkpoint {self.path} does not match this run's state (its tree differs); "
                                     f"{advice}")
        try:
            items = {"state": ocp.args.StandardRestore()}
            if header.get("extra"):
                items["extra"] = ocp.args.StandardRestore()
            restored = mgr.restore(step, args=ocp.args.Composite(**items))
            leaves = [np.asarray(v) for v in restored["state"]["leaves"]]
            extra = {k: np.asarray(v) for k, v in (restored.get("extra") or {}).items()}
        except Exception as exc:
            raise CheckpointCorrupt(f"checkpoint {self.path} is damaged: its arrays cannot be read "
                                    f"({type(exc).__name__}); {advice}") from exc
        body = {k: v for k, v in header.items() if k != "sha256"}
        if len(leaves) != len(paths) or _digest(paths, leaves, extra, body) != header.get("sha256"):
            raise CheckpointCorrupt(f"checkpoint {self.path} fails its checksum (the file is damaged); {advice}")
        for p, s, t in zip(paths, leaves, template_leaves):
            if s.shape != np.shape(t):
                raise CheckpointMismatch(f"checkpoint {self.path} holds an array of shape {s.shape} at {p} where this "
                                         f"run has {np.shape(t)}; it belongs to another model or data set: delete it")
        flat, treedef = jax.tree_util.tree_flatten(template)
        back = [jax.random.wrap_key_data(jnp.asarray(s), impl=jax.random.key_impl(t)) if _is_key(t)
                else jnp.asarray(s, dtype=jnp.asarray(t).dtype) for s, t in zip(leaves, flat)]
        meta = header["meta"]
        self.resumed_seconds = float(meta.get("seconds", 0.0))
        self._t0 = time.perf_counter()
        return jax.tree_util.tree_unflatten(treedef, back), meta, extra

    def remove(self) -> None:
        """Delete the folder (callers do so only once the phase's results are safely saved)."""
        self._manager = None
        shutil.rmtree(self.path, ignore_errors=True)
