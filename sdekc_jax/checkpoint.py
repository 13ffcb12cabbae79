"""Checkpoints of long phases (pretraining, the clustering loop), written atomically.

A :class:`Checkpointer` owns one file. :meth:`Checkpointer.save` writes a pytree (parameters,
optimiser state, PRNG keys, counters, history arrays) plus JSON metadata as one msgpack file via
a temporary file and a rename, so a kill at any moment leaves either the previous checkpoint or
the new one, never a torn file. :meth:`Checkpointer.load` restores into a template pytree of the
same structure (the state a fresh run would start from).

Every checkpoint carries a ``spec`` (the settings of the run that wrote it: data fingerprint,
model, seed, budget...). Loading a checkpoint whose spec differs from the current run's raises a
:class:`CheckpointMismatch` that names both, so a resume never silently mixes two runs.

Typed PRNG keys are stored as their raw key data and re-wrapped on load.

Fault injection for tests: with ``SDEKC_JAX_KILL_AT=<name>:<n>`` in the environment the process
sends itself SIGKILL right after the n-th save of the checkpoint file named ``<name>.msgpack``
(e.g. ``pretrain:3``). It exists so the kill-and-resume tests can kill a run at a known point.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from .cache import canonical_json
from .io import atomic_write_bytes

KILL_ENV = "SDEKC_JAX_KILL_AT"
FORMAT = 1


class CheckpointMismatch(ValueError):
    """The checkpoint on disk was written by a run with other settings."""


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree: Any) -> Any:
    return jax.tree.map(lambda v: np.asarray(jax.random.key_data(v)) if _is_key(v) else np.asarray(v), tree)


def _from_storable(template: Any, stored: Any, path: Path) -> Any:
    def back(t, s):
        want = np.shape(jax.random.key_data(t)) if _is_key(t) else np.shape(t)
        if np.shape(s) != want:
            raise CheckpointMismatch(f"checkpoint {path} holds an array of shape {np.shape(s)} where this run has "
                                     f"{want}; it belongs to another model or data set: delete it")
        if _is_key(t):
            return jax.random.wrap_key_data(jnp.asarray(s), impl=jax.random.key_impl(t))
        return jnp.asarray(s, dtype=jnp.asarray(t).dtype)
    return jax.tree.map(back, template, stored)


class Checkpointer:
    """Save/restore one phase's state at ``path`` (e.g. ``out/checkpoints/seed0/pretrain.msgpack``).

    Args:
      path: the checkpoint file.
      spec: a dict of JSON-able settings of the run (as for the pretraining cache's keys); a
        checkpoint with another spec is refused on load.
      every: save every ``every`` epochs / chunks (the caller asks :meth:`due`); the final one
        is always saved.
    """

    def __init__(self, path: str | os.PathLike, spec: Any = None, every: int = 1):
        if not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"checkpoint every must be a positive integer, got {every!r}")
        self.path = Path(path)
        self.spec = json.loads(canonical_json(dict(spec or {})))  # TypeError on a value that is not JSON-able
        self.every = int(every)
        self.saves = 0

    def exists(self) -> bool:
        return self.path.is_file()

    def due(self, count: int) -> bool:
        """Whether the ``count``-th unit (1-based epoch or chunk) should be saved."""
        return count % self.every == 0

    def save(self, tree: Any, meta: dict, extra: dict[str, np.ndarray] | None = None) -> None:
        """Write ``tree`` (restored later into a template), ``meta`` (JSON) and ``extra`` (a flat
        dict of numpy arrays of any shape, e.g. histories, returned as stored)."""
        payload = {"format": FORMAT, "spec": canonical_json(self.spec), "meta": json.dumps(meta),
                   "tree": serialization.to_state_dict(_to_storable(tree)),
                   "extra": {k: np.asarray(v) for k, v in (extra or {}).items()}}
        atomic_write_bytes(self.path, serialization.msgpack_serialize(payload))
        self.saves += 1
        target = os.environ.get(KILL_ENV)
        if target and target == f"{self.path.stem}:{self.saves}":
            os.kill(os.getpid(), signal.SIGKILL)

    def load(self, template: Any) -> tuple[Any, dict, dict[str, np.ndarray]]:
        """``(tree, meta, extra)``: the tree restored into ``template``'s structure and dtypes."""
        try:
            payload = serialization.msgpack_restore(self.path.read_bytes())
            spec = json.loads(payload["spec"])
            meta = json.loads(payload["meta"])
        except Exception as exc:  # truncated or foreign file: say which and what to do
            raise ValueError(f"checkpoint {self.path} is unreadable ({type(exc).__name__}: {exc}); "
                             f"delete it to start this phase again") from exc
        if payload.get("format") != FORMAT:
            raise CheckpointMismatch(f"checkpoint {self.path} has format {payload.get('format')}, expected {FORMAT}; "
                                     f"delete it to start this phase again")
        if spec != self.spec:
            diff = sorted(k for k in set(spec) | set(self.spec) if spec.get(k) != self.spec.get(k)) \
                if isinstance(spec, dict) and isinstance(self.spec, dict) else ["spec"]
            raise CheckpointMismatch(
                f"checkpoint {self.path} was written by a run with other settings (differing: {', '.join(diff)}); "
                f"resume with the same settings, or delete the checkpoint / use another output folder")
        try:
            stored = serialization.from_state_dict(_to_storable(template), payload["tree"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointMismatch(f"checkpoint {self.path} does not match this run's state ({exc}); delete it") from exc
        extra = {k: np.asarray(v) for k, v in (payload.get("extra") or {}).items()}
        return _from_storable(template, stored, self.path), meta, extra

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
