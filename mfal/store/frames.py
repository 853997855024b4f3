"""The frame store: FrameDocs, RoundDocs and binary blobs on maggma stores.

Backends (see :class:`~mfal.store.config.StoreConfig`):

- ``embedded``: maggma ``MontyStore`` (montydb on sqlite) in a directory, blobs as files in ``<dir>/blobs``.
  montydb's sharp edges are handled here: collections are created once (under a file lock) before first use,
  ``connect()`` is serialised by a file lock, every write batch holds a write lock (one writer at a time; readers
  run concurrently and retry on sqlite's "database is locked"), ``remove_docs({})`` is never called, and keys
  with dots or a leading ``$`` are rejected. montydb ignores unique indexes, so the document ``_id`` is the
  ``frame_id``: sqlite's primary key then makes a duplicate impossible.
- ``mongo``: maggma ``MongoStore`` for documents, ``GridFSStore`` for blobs (checkpoints, big arrays).
- ``memory``: maggma ``MemoryStore`` (mongomock), blobs in a dict; for tests.

Documents that fail validation or exceed MongoDB's 16 MB limit raise :class:`~mfal.errors.StoreError` before
anything of their batch is written (maggma's own ``update`` would log and skip them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from mfal.errors import ConfigError, StoreError
from mfal.store.config import STORE_MARKER, StoreConfig, redact_uri, resolve_store_config
from mfal.store.docs import FrameDoc, RoundDoc

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: MongoDB's BSON document size limit (bytes)
MAX_DOC_BYTES = 16 * 1024 * 1024
#: indexed FrameDoc fields (``_id`` = frame_id is unique by construction)
FRAME_INDEXES = ("frame_id", "fidelity", "status", "round", "elements", "source", "campaign")
NETWORK_FS = (
    "nfs",
    "nfs4",
    "cifs",
    "smb",
    "smbfs",
    "smb3",
    "lustre",
    "gpfs",
    "fuse.sshfs",
    "afs",
    "9p",
    "ceph",
)
_BLOB_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")
_RETRIES = 30


def _is_locked_error(err: BaseException) -> bool:
    return isinstance(err, sqlite3.OperationalError) and "locked" in str(err).lower()


def _retry_locked(fn: Callable[[], T], what: str) -> T:
    """Run ``fn``, retrying a bounded number of times on sqlite's "database is locked"/"busy"."""
    delay = 0.02
    for attempt in range(_RETRIES):
        try:
            return fn()
        except sqlite3.OperationalError as err:
            if not _is_locked_error(err) or attempt == _RETRIES - 1:
                raise StoreError(f"{what}: sqlite error: {err}") from err
            logger.debug("%s: database is locked, retry %d", what, attempt + 1)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
    raise StoreError(f"{what}: database stayed locked")  # pragma: no cover - loop always returns or raises


def network_fs_type(path: str | Path, mounts_file: str | Path = "/proc/mounts") -> str | None:
    """File-system type of ``path`` if it is a network file system (per ``mounts_file``), else None."""
    try:
        mounts = Path(mounts_file).read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, best_type = mnt, parts[2]
    if best_type and (best_type in NETWORK_FS or best_type.startswith(("nfs", "fuse.sshfs"))):
        return best_type
    return None


def _bad_key(obj: Any, path: str = "") -> str | None:
    """Path of the first dict key containing '.' or starting with '$' (MongoDB/montydb reject them)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{path}/{k}" if path else str(k)
            if not isinstance(k, str) or "." in k or k.startswith("$"):
                return here
            found = _bad_key(v, here)
            if found:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:1000]):
            found = _bad_key(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _doc_size(doc: dict) -> int:
    import bson

    return len(bson.encode(doc))


def _frame_to_doc(frame: Any, i: int) -> dict:
    """Validated Mongo document of a FrameDoc (or dict); StoreError naming the frame on any problem."""
    try:
        data = frame.model_dump() if isinstance(frame, FrameDoc) else frame
        # re-validate: pydantic does not validate on attribute assignment
        doc_model = FrameDoc.model_validate(data)
    except (ValidationError, ValueError, TypeError) as err:
        fid = getattr(frame, "frame_id", None) or (frame.get("frame_id") if isinstance(frame, dict) else None)
        msg = str(err).splitlines()
        detail = " ".join(m.strip() for m in msg[:3])
        raise StoreError(f"frame #{i} ({fid or 'no frame_id'}) failed validation: {detail}") from err
    doc = doc_model.model_dump(mode="json")
    bad = _bad_key(doc)
    if bad:
        raise StoreError(f"frame {doc['frame_id']}: key {bad!r} contains '.' or starts with '$'")
    doc["_id"] = doc["frame_id"]
    size = _doc_size(doc)
    if size > MAX_DOC_BYTES:
        raise StoreError(
            f"frame {doc['frame_id']}: document is {size / 2**20:.1f} MB, above MongoDB's 16 MB limit"
        )
    return doc


def _criteria(
    *,
    fidelity: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    round: int | Sequence[int] | None = None,  # noqa: A002 - mirrors the FrameDoc field
    elements: str | Sequence[str] | None = None,
    source: str | Sequence[str] | None = None,
    campaign: str | Sequence[str] | None = None,
    frame_ids: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Mongo filter from query arguments; a sequence means "any of"; ``elements`` means "all present"."""

    def any_of(v: Any) -> Any:
        if isinstance(v, str | int):
            return v
        values = list(v)
        return {"$in": values}

    crit: dict[str, Any] = {}
    for name, value in (
        ("fidelity", fidelity),
        ("status", status),
        ("round", round),
        ("source", source),
        ("campaign", campaign),
    ):
        if value is not None:
            crit[name] = any_of(value)
    if elements is not None:
        els = [e.strip() for e in elements.split(",")] if isinstance(elements, str) else list(elements)
        els = [e for e in els if e]
        if els:
            crit["elements"] = {"$all": sorted(set(els))}
    if frame_ids is not None:
        crit["_id"] = {"$in": sorted(set(frame_ids))}
    return crit


class _BlobBackend:
    def put(self, key: str, data: bytes, sha: str) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _DirBlobs(_BlobBackend):
    """Blobs as files under a directory (written atomically)."""

    def __init__(self, root: Path):
        self.root = root

    def put(self, key: str, data: bytes, sha: str) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {key!r} not found in {self.root}") from None


class _DictBlobs(_BlobBackend):
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, sha: str) -> None:
        self.data[key] = bytes(data)

    def get(self, key: str) -> bytes:
        try:
            return self.data[key]
        except KeyError:
            raise StoreError(f"blob {key!r} not found in the memory store") from None


class _GridFSBlobs(_BlobBackend):
    """Blobs in GridFS through maggma's GridFSStore (its connection; raw bytes via its GridFS handle)."""

    def __init__(self, store: Any):
        self.store = store

    def put(self, key: str, data: bytes, sha: str) -> None:
        fs = self.store._collection
        fs.put(data, filename=key, metadata={"key": key, "sha256": sha})
        files = self.store._files_collection
        old = files.find({"filename": key}, ["_id"]).sort("uploadDate", -1).skip(1)
        for fdoc in list(old):
            fs.delete(fdoc["_id"])

    def get(self, key: str) -> bytes:
        import gridfs

        try:
            return self.store._collection.get_last_version(filename=key).read()
        except gridfs.errors.NoFile:
            raise StoreError(
                f"blob {key!r} not found in GridFS bucket {self.store.collection_name!r}"
            ) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.store._coll = None


class FrameStore:
    """FrameDocs, RoundDocs and blobs behind one API (use as a context manager or call :meth:`close`).

    Build it with :func:`open_store`. ``frames``/``rounds`` are connected maggma stores.
    """

    def __init__(
        self,
        frames: Any,
        rounds: Any,
        blobs: _BlobBackend,
        *,
        kind: str,
        location: str,
        write_lock: Any = None,
    ):
        self._frames = frames
        self._rounds = rounds
        self._blobs = blobs
        self.kind = kind
        self.location = location
        self._write_lock = write_lock
        self._closed = False

    def __repr__(self) -> str:
        return f"FrameStore(kind={self.kind!r}, location={self.location!r})"

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        import filelock

        try:
            with self._write_lock:
                yield
        except filelock.Timeout as err:
            raise StoreError(
                f"{self.location}: timed out waiting for the store write lock {err.lock_file}"
            ) from err

    def _find(self, store: Any, criteria: dict, projection: dict | None = None) -> list[dict]:
        coll = store._collection
        return _retry_locked(lambda: list(coll.find(criteria, projection)), f"{self.location}: query")

    # -- frames --------------------------------------------------------------------------------------------
    def upsert_frames(self, frames: Iterable[FrameDoc]) -> int:
        """Insert or replace frames by ``frame_id``; returns how many were new. All are validated first.

        A frame already stored with identical content is left untouched; a changed one is replaced but keeps
        its first ``created_at``.
        """
        docs: dict[str, dict] = {}
        for i, frame in enumerate(frames):
            doc = _frame_to_doc(frame, i)
            docs[doc["_id"]] = doc  # the same frame twice in one batch: last wins
        if not docs:
            return 0
        coll = self._frames._collection
        with self._writing():
            existing = {d["_id"]: d for d in self._find(self._frames, {"_id": {"$in": list(docs)}})}
            fresh = [doc for fid, doc in docs.items() if fid not in existing]
            changed = []
            for fid, old in existing.items():
                doc = docs[fid]
                doc["created_at"] = old.get(
                    "created_at", doc["created_at"]
                )  # first time the frame was stored
                if doc != old:
                    changed.append(doc)
            if fresh:  # one transaction; _id = frame_id, so a duplicate cannot slip in
                _retry_locked(lambda: coll.insert_many(fresh), f"{self.location}: insert {len(fresh)} frames")
            for doc in changed:  # identical re-upserts write nothing
                _retry_locked(
                    lambda doc=doc: coll.replace_one({"_id": doc["_id"]}, doc, upsert=True),
                    f"{self.location}: replace frame {doc['_id']}",
                )
        new = len(docs) - len(existing)
        logger.info("%s: upserted %d frames (%d new)", self.location, len(docs), new)
        return new

    def query_frames(
        self,
        *,
        fidelity: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        round: int | Sequence[int] | None = None,  # noqa: A002
        elements: str | Sequence[str] | None = None,
        source: str | Sequence[str] | None = None,
        campaign: str | Sequence[str] | None = None,
        frame_ids: Iterable[str] | None = None,
    ) -> list[FrameDoc]:
        """Frames matching all given filters (a sequence = any of; ``elements`` = all present), in insertion
        order (``created_at``, then ``frame_id``)."""
        crit = _criteria(
            fidelity=fidelity,
            status=status,
            round=round,
            elements=elements,
            source=source,
            campaign=campaign,
            frame_ids=frame_ids,
        )
        docs = self._find(self._frames, crit)
        out = []
        for d in docs:
            d.pop("_id", None)
            try:
                out.append(FrameDoc.model_validate(d))
            except ValidationError as err:
                raise StoreError(
                    f"{self.location}: stored frame {d.get('frame_id')} is invalid: {err}"
                ) from err
        out.sort(key=lambda f: (f.created_at, f.frame_id))
        return out

    def training_frames(
        self, fidelity: str | Sequence[str] | None = None, campaign: str | None = None
    ) -> list[FrameDoc]:
        """Frames usable for training: status "ok" only (failed/quarantined frames are never returned)."""
        return self.query_frames(fidelity=fidelity, status="ok", campaign=campaign)

    def count(self, **filters: Any) -> int:
        """Number of frames matching the filters of :meth:`query_frames`."""
        crit = _criteria(**filters)
        coll = self._frames._collection
        return _retry_locked(lambda: coll.count_documents(crit), f"{self.location}: count")

    def frame_ids(self, **filters: Any) -> set[str]:
        """frame_ids of frames matching the filters of :meth:`query_frames`."""
        return {d["_id"] for d in self._find(self._frames, _criteria(**filters), {"_id": 1})}

    def counts_by(self, fields: Sequence[str] = ("fidelity", "status"), **filters: Any) -> dict[tuple, int]:
        """Frame counts grouped by ``fields``: ``{(value_1, value_2, ...): n}`` (missing field -> None)."""
        fields = tuple(fields)
        docs = self._find(self._frames, _criteria(**filters), {f: 1 for f in fields})
        counter: Counter[tuple] = Counter(tuple(d.get(f) for f in fields) for d in docs)
        return dict(sorted(counter.items(), key=lambda kv: tuple(str(v) for v in kv[0])))

    # -- rounds --------------------------------------------------------------------------------------------
    def upsert_round(self, doc: RoundDoc) -> None:
        """Insert or replace the RoundDoc of (campaign, round)."""
        try:
            doc = RoundDoc.model_validate(doc.model_dump() if isinstance(doc, RoundDoc) else doc)
        except ValidationError as err:
            raise StoreError(f"round document failed validation: {err}") from err
        data = doc.model_dump(mode="json")
        bad = _bad_key(data)
        if bad:
            raise StoreError(f"round {doc.campaign}:{doc.round}: key {bad!r} contains '.' or starts with '$'")
        data["_id"] = f"{doc.campaign}:{doc.round}"
        if _doc_size(data) > MAX_DOC_BYTES:
            raise StoreError(f"round {data['_id']}: document above MongoDB's 16 MB limit")
        coll = self._rounds._collection
        with self._writing():
            _retry_locked(
                lambda: coll.replace_one({"_id": data["_id"]}, data, upsert=True),
                f"{self.location}: upsert round {data['_id']}",
            )

    def rounds(self, campaign: str | None = None) -> list[RoundDoc]:
        """RoundDocs of ``campaign`` (all campaigns if None), ordered by campaign and round."""
        crit = {} if campaign is None else {"campaign": campaign}
        docs = self._find(self._rounds, crit)
        out = []
        for d in docs:
            d.pop("_id", None)
            out.append(RoundDoc.model_validate(d))
        return sorted(out, key=lambda r: (r.campaign, r.round))

    # -- blobs ---------------------------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (replacing an older version); returns its sha256 (hex)."""
        if not isinstance(key, str) or not _BLOB_KEY.match(key) or ".." in key.split("/"):
            raise StoreError(f"blob key {key!r}: expected letters, digits, '._-/' (no leading '/', no '..')")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(f"blob {key!r}: data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        with self._writing():
            self._blobs.put(key, data, sha)
        return sha

    def get_blob(self, key: str) -> bytes:
        """The bytes stored under ``key`` (StoreError if there are none)."""
        return self._blobs.get(key)

    def close(self) -> None:
        """Release connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for store in (self._frames, self._rounds):
            with contextlib.suppress(Exception):
                store.close()
        self._blobs.close()


# -- factories -----------------------------------------------------------------------------------------------
def _open_embedded(cfg: StoreConfig, create: bool = True) -> FrameStore:
    import filelock
    from maggma.stores import MontyStore

    root = Path(cfg.path).expanduser().resolve()  # type: ignore[arg-type]
    if not create and not (root / STORE_MARKER).is_file():
        raise StoreError(
            f"no mfal store at {root} (expected a store directory made by mfal, or a campaign dir)"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"store directory {root}: cannot create ({err.strerror})") from err
    fs = network_fs_type(root)
    if fs:
        logger.warning(
            "embedded store %s is on a network file system (%s): sqlite locking is unreliable there; "
            "use a local disk or a mongo store",
            root,
            fs,
        )
    connect_lock = filelock.FileLock(str(root / ".connect.lock"), timeout=cfg.lock_timeout)
    write_lock = filelock.FileLock(str(root / ".write.lock"), timeout=cfg.lock_timeout)
    stores = {
        name: MontyStore(coll, database_path=str(root), database_name=cfg.database, key="_id")
        for name, coll in (("frames", cfg.frames), ("rounds", cfg.rounds))
    }
    try:
        with connect_lock:
            for store in stores.values():
                _retry_locked(store.connect, f"{root}: connect")
            marker = root / STORE_MARKER
            if not marker.is_file():
                # create every collection (sqlite table) once, before any concurrent use
                with write_lock:
                    for store in stores.values():
                        coll = store._collection
                        _retry_locked(lambda coll=coll: coll.insert_one({"_id": "__init__"}), f"{root}: init")
                        _retry_locked(lambda coll=coll: coll.delete_one({"_id": "__init__"}), f"{root}: init")
                    meta = {"format": 1, "database": cfg.database, "collections": [cfg.frames, cfg.rounds]}
                    tmp = marker.with_name(marker.name + ".tmp")
                    tmp.write_text(json.dumps(meta))
                    tmp.replace(marker)
    except filelock.Timeout as err:
        raise StoreError(f"store {root}: timed out waiting for lock {err.lock_file}") from err
    return FrameStore(
        stores["frames"],
        stores["rounds"],
        _DirBlobs(root / cfg.blobs),
        kind="embedded",
        location=str(root),
        write_lock=write_lock,
    )


def _open_memory(cfg: StoreConfig) -> FrameStore:
    from maggma.stores import MemoryStore

    frames = MemoryStore(cfg.frames, key="_id")
    rounds = MemoryStore(cfg.rounds, key="_id")
    frames.connect()
    rounds.connect()
    return FrameStore(frames, rounds, _DictBlobs(), kind="memory", location=f"memory:{cfg.database}")


def _open_mongo(cfg: StoreConfig) -> FrameStore:
    from maggma.stores import GridFSStore, MongoStore

    uri = cfg.resolve_uri()
    origin = cfg.uri_env if os.environ.get(cfg.uri_env, "").strip() else f"uri_file {cfg.uri_file}"
    try:
        from pymongo import uri_parser

        if not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("expected a URI starting with mongodb:// or mongodb+srv://")
        if uri.startswith("mongodb://"):  # (+srv would need a DNS lookup here)
            uri_parser.parse_uri(uri, validate=True)
    except Exception as err:  # InvalidURI, ConfigurationError, ValueError
        raise ConfigError(f"mongo store: invalid URI from {origin}: {redact_uri(str(err), uri)}") from None

    class _Mongo(MongoStore):
        @property
        def name(self) -> str:  # maggma's name is the raw URI (with password)
            return f"mongo://{redact_uri(self.uri or '')}/{self.database}/{self.collection_name}"

    class _GridFS(GridFSStore):
        @property
        def name(self) -> str:
            return f"gridfs://{redact_uri(self.uri or '')}/{self.database}/{self.collection_name}"

    kwargs = {"serverSelectionTimeoutMS": cfg.timeout_ms, "connectTimeoutMS": cfg.timeout_ms}
    try:
        frames = _Mongo(
            database=cfg.database, collection_name=cfg.frames, uri=uri, key="_id", mongoclient_kwargs=kwargs
        )
        rounds = _Mongo(
            database=cfg.database, collection_name=cfg.rounds, uri=uri, key="_id", mongoclient_kwargs=kwargs
        )
        blobs = _GridFS(database=cfg.database, collection_name=cfg.blobs, uri=uri, mongoclient_kwargs=kwargs)
    except Exception as err:  # pymongo.errors.InvalidURI, ConfigurationError, ValueError
        raise ConfigError(f"mongo store: invalid URI from {origin}: {redact_uri(str(err), uri)}") from None
    where = f"mongo:{redact_uri(uri)}/{cfg.database}"
    try:
        for store in (frames, rounds, blobs):
            store.connect()
        frames._collection.database.client.admin.command("ping")
        for field in FRAME_INDEXES:
            frames._collection.create_index(field, unique=field == "frame_id")
        rounds._collection.create_index("campaign")
    except Exception as err:  # pymongo.errors.PyMongoError and friends
        text = str(err).splitlines()[0].split(", Timeout:")[0] if str(err) else type(err).__name__
        msg = redact_uri(text, uri)
        raise StoreError(
            f"cannot reach MongoDB {redact_uri(uri)} (URI from {origin}) within "
            f"{cfg.timeout_ms} ms: {type(err).__name__}: {msg[:300]}"
        ) from None
    return FrameStore(frames, rounds, _GridFSBlobs(blobs), kind="mongo", location=where)


def open_store(target: StoreConfig | str | Path, *, create: bool = True) -> FrameStore:
    """Open the store of a StoreConfig, a store YAML, a store directory or a campaign directory.

    Use as ``with open_store(path) as store: ...``. ``create=False``: an embedded store must already exist
    (for read-only commands). Raises StoreError/ConfigError with one clear line.
    """
    cfg = resolve_store_config(target)
    if cfg.type == "embedded":
        return _open_embedded(cfg, create=create)
    if cfg.type == "memory":
        return _open_memory(cfg)
    if cfg.type == "mongo":
        return _open_mongo(cfg)
    raise ConfigError(f"store type={cfg.type!r} not in ['embedded', 'mongo', 'memory']")  # pragma: no cover
