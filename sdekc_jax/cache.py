"""Content-addressed on-disk cache of pretrained autoencoder parameters.

Methods that share a pretrained autoencoder (same data, seed, architecture, skip weights,
epochs, batch size, learning rate) pretrain it once: :func:`cached_pretrain` hashes a spec
dict plus a fingerprint of the training data into a key and stores, per key,

* ``<key>.msgpack``: ``flax.serialization.to_bytes`` of the parameter pytree;
* ``<key>.json``: metadata (for :func:`cached_pretrain`: the per-epoch losses and the spec).

Both are written atomically (temporary file in the same folder, fsync, ``os.replace``), the
json first, so a ``.msgpack`` file never exists without its metadata. The metadata carry the
sha256 of the ``.msgpack`` payload and of the rest of the metadata (``payload_sha256``),
verified on every read. The cache is an
optimisation only: an entry that fails its checksum, cannot be parsed, has no checksum (written
by an older version) or does not match the model is ignored with a warning and recomputed; a
damaged payload is first moved aside to ``<key>.msgpack.corrupt`` (kept for inspection, never
deleted). Write failures warn once and are otherwise ignored, so a cache problem never loses a
run's results and never feeds a run damaged parameters.

Canonical key form (:func:`canonical_json`): the spec is normalised (tuples -> lists, numpy
scalars -> Python scalars; dict keys must be strings) and encoded with
``json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)``;
floats are written by ``repr`` (shortest round-tripping form). The key is the sha256 hex
digest of that UTF-8 text, e.g. ``{"b": (1, 2), "a": 0.5}`` -> ``{"a":0.5,"b":[1,2]}``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from flax import serialization

from .io import atomic_write_bytes, atomic_write_json

ENV_VAR = "SDEKC_JAX_PRETRAIN_CACHE"
_KEY_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class PretrainCacheWarning(UserWarning):
    """A cache entry could not be read or written; the run carries on without it."""


def default_cache_dir() -> Path | None:
    """``$SDEKC_JAX_PRETRAIN_CACHE`` if set (``""`` or ``"off"``, any case: disabled -> None),
    else ``~/.cache/sdekc_jax/pretrained``."""
    value = os.environ.get(ENV_VAR)
    if value is None:
        return Path.home() / ".cache" / "sdekc_jax" / "pretrained"
    value = value.strip()
    if value == "" or value.lower() == "off":
        return None
    return Path(value).expanduser()


def data_fingerprint(x) -> str:
    """sha256 hex of an array's dtype, shape and bytes (C order, native byte order).

    Works for numpy and JAX arrays (and anything ``np.asarray`` accepts)."""
    arr = np.asarray(x)
    if arr.dtype.hasobject:
        raise TypeError("cannot fingerprint an object array")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256()
    header = {"dtype": arr.dtype.str, "name": arr.dtype.name, "shape": list(arr.shape)}
    h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    h.update(b"\0")
    h.update(arr.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _normalise(obj: Any, where: str) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if not math.isfinite(value):
            raise TypeError(f"cache key spec{where}: non-finite float {value!r} is not JSON-able")
        return value
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"cache key spec{where}: dict key {k!r} is not a string")
            out[k] = _normalise(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [_normalise(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"cache key spec{where}: {type(obj).__name__} is not JSON-able "
                    "(fingerprint arrays with data_fingerprint, convert paths to str)")


def canonical_json(spec: dict) -> str:
    """The canonical JSON text of ``spec`` that :func:`cache_key` hashes (see module docs)."""
    if not isinstance(spec, dict):
        raise TypeError(f"cache key spec must be a dict, got {type(spec).__name__}")
    return json.dumps(_normalise(spec, ""), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def cache_key(spec: dict) -> str:
    """sha256 hex of :func:`canonical_json` of ``spec``; TypeError on non-JSON-able values."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


def _check_like(restored: Any, template: Any) -> None:
    """Raise ValueError unless ``restored`` has the tree structure, shapes and dtypes of ``template``."""
    t_leaves, t_def = jax.tree.flatten(template)
    r_leaves, r_def = jax.tree.flatten(restored)
    if t_def != r_def:
        raise ValueError(f"tree structure {r_def} does not match the template {t_def}")
    for i, (r, t) in enumerate(zip(r_leaves, t_leaves)):
        r_shape, t_shape = tuple(np.shape(r)), tuple(np.shape(t))
        if r_shape != t_shape:
            raise ValueError(f"leaf {i}: shape {r_shape} does not match the template {t_shape}")
        r_dtype, t_dtype = getattr(r, "dtype", None), getattr(t, "dtype", None)
        if t_dtype is not None and r_dtype != t_dtype:
            raise ValueError(f"leaf {i}: dtype {r_dtype} does not match the template {t_dtype}")


def _entry_sha256(data: bytes, meta: dict) -> str:
    """The checksum of an entry: sha256 of its parameters' bytes and of its metadata (the losses,
    the spec...) other than the checksum itself, as sorted compact JSON."""
    rest = {k: v for k, v in meta.items() if k != "payload_sha256"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data + b"\0" + text.encode("utf-8")).hexdigest()


class PretrainCache:
    """Parameter pytrees on disk under ``directory``, by key; ``directory=None`` disables it.

    ``hits`` / ``misses`` count lookups (through :meth:`get` or :func:`cached_pretrain`);
    with the cache disabled every lookup is a miss.
    """

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = None if directory is None else Path(directory).expanduser()
        self.hits = 0
        self.last_seconds = float("nan")  # wall time of the last cached_pretrain (see there)
        self.misses = 0
        self._write_warned = False

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def __repr__(self) -> str:
        return f"PretrainCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"

    def path(self, key: str) -> Path | None:
        """The ``.msgpack`` file of ``key`` (its metadata: same name, ``.json``); None if disabled."""
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise ValueError(f"invalid cache key {key!r}")
        if self.directory is None:
            return None
        return self.directory / f"{key}.msgpack"

    def meta_path(self, key: str) -> Path | None:
        path = self.path(key)
        return None if path is None else path.with_suffix(".json")

    def _warn_read(self, path: Path, exc: BaseException) -> None:
        warnings.warn(f"pretrain cache: ignoring unreadable entry {path} ({type(exc).__name__}: {exc}); "
                      "recomputing", PretrainCacheWarning, stacklevel=3)

    def _set_aside(self, path: Path, why: str) -> None:
        """Warn about a damaged entry and move its payload to ``<name>.corrupt`` (never deleted)."""
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
            where = f"moved to {aside}"
        except OSError as exc:
            where = f"could not be moved aside ({exc.strerror})"
        warnings.warn(f"pretrain cache: entry {path} {why}; {where}; recomputing", PretrainCacheWarning, stacklevel=4)

    def _load(self, key: str, template: Any, with_meta: bool) -> tuple[Any, dict | None] | None:
        """``(params, meta)``, or None if missing, damaged or unreadable (warns); does not count.
        ``meta`` is None unless ``with_meta``; it is always read, for the checksum."""
        path = self.path(key)
        if path is None or not path.exists():
            return None
        meta_path = path.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):
                raise ValueError("metadata is not a JSON object")
        except Exception as exc:
            self._warn_read(meta_path, exc)
            return None
        if not isinstance(meta.get("payload_sha256"), str):
            warnings.warn(f"pretrain cache: entry {path} has no checksum (written by an older version); recomputing "
                          "it", PretrainCacheWarning, stacklevel=3)
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._warn_read(path, exc)
            return None
        if _entry_sha256(data, meta) != meta["payload_sha256"]:
            self._set_aside(path, "fails its checksum (the entry is damaged)")
            return None
        try:
            state = serialization.msgpack_restore(data)
            restored = serialization.from_state_dict(template, state)
            _check_like(restored, template)
            # from_state_dict ignores entries the template lacks: a larger stored tree is a mismatch too
            if jax.tree.structure(serialization.to_state_dict(restored)) != jax.tree.structure(state):
                raise ValueError("stored tree has entries the template lacks")
        except Exception as exc:  # from another architecture (the checksum held)
            self._warn_read(path, exc)
            return None
        return restored, (meta if with_meta else None)

    def get(self, key: str, template: Any) -> Any | None:
        """The stored pytree (numpy leaves, restored onto ``template`` as
        ``flax.serialization.from_bytes`` does), or None.

        A missing entry gives None; a corrupt, unreadable or mismatched one (tree structure,
        shapes or dtypes unlike ``template``) warns with the file name and gives None."""
        entry = self._load(key, template, with_meta=False)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry[0]

    def put(self, key: str, params: Any, meta: dict) -> bool:
        """Store ``params`` and ``meta`` (plus the payload's ``payload_sha256``) under ``key``
        atomically; True if stored.

        Never raises for I/O or serialisation problems: it warns (once per cache) and returns False."""
        path = self.path(key)
        if path is None:
            return False
        try:
            data = serialization.to_bytes(jax.device_get(params))
            path.parent.mkdir(parents=True, exist_ok=True)
            meta = {**meta, "payload_sha256": _entry_sha256(data, meta)}
            atomic_write_json(path.with_suffix(".json"), meta)  # metadata first: msgpack implies json
            atomic_write_bytes(path, data)
        except Exception as exc:
            if not self._write_warned:
                self._write_warned = True
                warnings.warn(f"pretrain cache: cannot write {path} ({type(exc).__name__}: {exc}); "
                              "carrying on without caching", PretrainCacheWarning, stacklevel=2)
            return False
        return True


def cached_pretrain(
    cache: PretrainCache,
    spec: dict,
    x,
    compute: Callable[[], tuple[Any, Any]],
    template: Any,
    fingerprint: str | None = None,
) -> tuple[Any, np.ndarray, bool]:
    """``(params, losses, hit)``: the stored pretraining result for ``spec`` and data ``x``, or
    ``compute()``'s (then stored).

    The key is ``cache_key({**spec, "data": data_fingerprint(x)})``; ``spec`` must therefore not
    have a ``"data"`` entry. ``template`` is a pytree shaped like the parameters (e.g. the
    freshly initialised ones). On a hit the parameters have numpy leaves and the per-epoch losses
    come back with their original dtype; on a miss ``compute()``'s parameters are returned as is.
    ``cache.last_seconds`` is then the pretraining's wall time (as measured when it ran, on a hit).
    ``fingerprint``: ``data_fingerprint(x)`` when the caller has it already (it hashes all of x).
    """
    fingerprint = _check_spec(cache, spec, x, fingerprint)
    found = lookup_pretrained(cache, spec, template, fingerprint)
    if found is not None:
        params, losses, cache.last_seconds = found
        return params, losses, True
    t0 = time.perf_counter()
    params, losses = compute()
    cache.last_seconds = time.perf_counter() - t0
    losses = np.asarray(losses)
    store_pretrained(cache, spec, fingerprint, params, losses, cache.last_seconds)
    return params, losses, False


def _check_spec(cache: PretrainCache, spec: dict, x, fingerprint: str | None) -> str | None:
    if "data" in spec:
        raise ValueError('spec must not contain "data": the cache adds the data fingerprint')
    canonical_json(spec)  # TypeError on a bad spec, whether or not the cache is enabled
    if fingerprint is None and cache.enabled:
        fingerprint = data_fingerprint(x)
    return fingerprint


def lookup_pretrained(cache: PretrainCache, spec: dict, template: Any,
                      fingerprint: str) -> tuple[Any, np.ndarray, float] | None:
    """``(params, losses, seconds)`` stored for ``spec`` and the data of ``fingerprint``, or None
    (missing, unreadable: warns, or the cache is disabled). Counts a hit or a miss."""
    fingerprint = _check_spec(cache, spec, None, fingerprint)
    if cache.enabled:
        key = cache_key({**spec, "data": fingerprint})
        entry = cache._load(key, template, with_meta=True)
        if entry is not None:
            params, meta = entry
            try:
                losses = np.asarray(meta["losses"], dtype=np.float64)
                if losses.ndim != 1:
                    raise ValueError(f"losses have shape {losses.shape}, expected 1-d")
                losses = losses.astype(np.dtype(meta.get("losses_dtype", "float64")))
            except Exception as exc:
                cache._warn_read(cache.meta_path(key), exc)
            else:
                cache.hits += 1
                return params, losses, float(meta.get("seconds", float("nan")))
    cache.misses += 1
    return None


def store_pretrained(cache: PretrainCache, spec: dict, fingerprint: str, params: Any, losses, seconds: float) -> bool:
    """Store one pretraining result (what :func:`lookup_pretrained` gives back); True if stored.
    Like :meth:`PretrainCache.put`, it warns instead of raising on I/O problems."""
    fingerprint = _check_spec(cache, spec, None, fingerprint)
    if not cache.enabled:
        return False
    full_spec = {**spec, "data": fingerprint}
    key = cache_key(full_spec)
    losses = np.asarray(losses)
    meta = {
        "seconds": float(seconds),
        "format": 1,
        "key": key,
        "spec": json.loads(canonical_json(full_spec)),
        "losses": np.asarray(losses, dtype=np.float64).reshape(-1).tolist(),
        "losses_dtype": losses.dtype.str,
    }
    return cache.put(key, params, meta)
