"""Store factories: :func:`open_store` for a StoreConfig, a store YAML, a store directory or a campaign directory.

- ``embedded``: maggma ``MontyStore`` in a directory (:mod:`mfal.store.embedded`).
- ``mongo``: maggma ``MongoStore`` for documents, ``GridFSStore`` for blobs (checkpoints, big arrays).
- ``memory``: maggma ``MemoryStore`` (mongomock) for documents and blobs; for tests.

Every failure to open is one line: :class:`~mfal.errors.StoreError` (unreachable, read-only, cannot create) or
:class:`~mfal.errors.ConfigError` (bad config or URI), never with a password in it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mfal.errors import ConfigError, StoreError
from mfal.store.blobs import StoreBlobs
from mfal.store.config import StoreConfig, redact_uri, resolve_store_config
from mfal.store.frames import FrameStore
from mfal.store.records import FRAME_INDEXES

logger = logging.getLogger(__name__)


def _refuse(read_only: bool | None) -> str | None:
    return "opened read-only" if read_only else None


def open_memory(cfg: StoreConfig, read_only: bool | None = None) -> FrameStore:
    """A fresh in-memory store (maggma MemoryStore; each call is a new, empty store)."""
    from maggma.stores import MemoryStore

    frames = MemoryStore(cfg.frames, key="_id")
    rounds = MemoryStore(cfg.rounds, key="_id")
    blobs = MemoryStore(cfg.blobs, key="key")
    for store in (frames, rounds, blobs):
        store.connect()
    for field in FRAME_INDEXES:
        frames.ensure_index(field)
    where = f"memory:{cfg.database}"
    blob_store = StoreBlobs(blobs, f"the memory store {where}")
    return FrameStore(frames, rounds, blob_store, kind="memory", location=where, read_only=_refuse(read_only))


def _check_uri(uri: str, origin: str) -> None:
    try:
        from pymongo import uri_parser

        if not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("expected a URI starting with mongodb:// or mongodb+srv://")
        if uri.startswith("mongodb://"):  # (+srv would need a DNS lookup here)
            uri_parser.parse_uri(uri, validate=True)
    except Exception as err:  # InvalidURI, ConfigurationError, ValueError
        raise ConfigError(f"mongo store: invalid URI from {origin}: {redact_uri(str(err), uri)}") from None


def open_mongo(cfg: StoreConfig, read_only: bool | None = None) -> FrameStore:
    """MongoStore (frames, rounds) + GridFSStore (blobs) of ``cfg``; the server is pinged and indexes made."""
    from maggma.stores import GridFSStore, MongoStore

    uri = cfg.resolve_uri()
    origin = cfg.uri_env if os.environ.get(cfg.uri_env, "").strip() else f"uri_file {cfg.uri_file}"
    _check_uri(uri, origin)

    class _Mongo(MongoStore):
        @property
        def name(self) -> str:  # maggma's name is the raw URI (with password)
            return f"mongo://{redact_uri(self.uri or '')}/{self.database}/{self.collection_name}"

    class _GridFS(GridFSStore):
        @property
        def name(self) -> str:
            return f"gridfs://{redact_uri(self.uri or '')}/{self.database}/{self.collection_name}"

    kwargs: dict[str, Any] = {"serverSelectionTimeoutMS": cfg.timeout_ms, "connectTimeoutMS": cfg.timeout_ms}
    common = {"database": cfg.database, "uri": uri, "mongoclient_kwargs": kwargs}
    try:
        frames = _Mongo(collection_name=cfg.frames, key="_id", **common)
        rounds = _Mongo(collection_name=cfg.rounds, key="_id", **common)
        blobs = _GridFS(collection_name=cfg.blobs, key="key", compression=True, **common)  # base64 -> zlib
    except Exception as err:  # pymongo.errors.InvalidURI, ConfigurationError, ValueError
        raise ConfigError(f"mongo store: invalid URI from {origin}: {redact_uri(str(err), uri)}") from None
    try:
        for store in (frames, rounds, blobs):
            store.connect()
        frames.count({"_id": "__mfal_ping__"})  # a round trip: fails here if the server is unreachable
        for field in FRAME_INDEXES:
            if not frames.ensure_index(field, unique=field == "frame_id"):
                raise StoreError(f"could not create the index on {field!r}")
        rounds.ensure_index("campaign")
        blobs.ensure_index("key")
    except Exception as err:  # pymongo.errors.PyMongoError and friends
        text = str(err).splitlines()[0].split(", Timeout:")[0] if str(err) else type(err).__name__
        raise StoreError(
            f"cannot reach MongoDB {redact_uri(uri)} (URI from {origin}) within "
            f"{cfg.timeout_ms} ms: {type(err).__name__}: {redact_uri(text, uri)[:300]}"
        ) from None
    where = f"mongo:{redact_uri(uri)}/{cfg.database}"
    blob_store = StoreBlobs(blobs, f"GridFS bucket {cfg.blobs!r}")
    store = FrameStore(frames, rounds, blob_store, kind="mongo", location=where, read_only=_refuse(read_only))
    if not read_only and store.missing_structure_ids():
        store.backfill_structure_ids()
    return store


def open_store(
    target: StoreConfig | str | Path, *, create: bool = True, read_only: bool | None = None
) -> FrameStore:
    """Open the store of a StoreConfig, a store YAML, a store directory or a campaign directory.

    Use as ``with open_store(path) as store: ...``. Writers use the defaults: the store is created if missing
    and must be writable, so an unusable store fails here, before any compute is spent. Readers pass
    ``create=False``: the store must exist, and a read-only one serves queries (its writes fail in one line).
    ``read_only=True`` never writes; ``read_only=False`` always requires a writable store. Raises
    StoreError/ConfigError with one line.
    """
    from mfal.store.embedded import open_embedded

    cfg = resolve_store_config(target)
    if cfg.type == "embedded":
        return open_embedded(cfg, create=create, read_only=read_only)
    if cfg.type == "memory":
        return open_memory(cfg, read_only)
    if cfg.type == "mongo":
        return open_mongo(cfg, read_only)
    raise ConfigError(f"store type={cfg.type!r} not in ['embedded', 'mongo', 'memory']")  # pragma: no cover
