"""FrameStore: FrameDocs, RoundDocs and blobs on any maggma ``Store`` (public API only).

It uses ``connect/query/query_one/update/count/distinct/close`` of the stores it is given, so ``MemoryStore``
(tests), ``MontyStore`` (embedded default, see :mod:`mfal.store.embedded`) and ``MongoStore`` + ``GridFSStore``
(clusters) all plug in; :func:`mfal.store.backends.open_store` builds one. The document ``_id`` is the
``frame_id`` (``"<campaign>:<round>"`` for rounds), so an upsert can never duplicate a frame.

Documents that fail validation or exceed MongoDB's 16 MB limit raise :class:`~mfal.errors.StoreError` before
anything of their batch is written (maggma's own ``update`` would log and skip them).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from mfal.errors import StoreError
from mfal.store.blobs import BlobBackend, check_key, sha256_hex, verified
from mfal.store.docs import FrameDoc, RoundDoc
from mfal.store.locking import WriteLock, is_read_only_error, network_fs_type, retry_locked
from mfal.store.records import (
    FRAME_INDEXES,
    MAX_DOC_BYTES,
    bad_key,
    criteria,
    doc_size,
    first_lines,
    frame_to_doc,
)

__all__ = ["FRAME_INDEXES", "MAX_DOC_BYTES", "FrameStore", "network_fs_type"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: frames written per store call (bounds memory and the size of one sqlite transaction)
WRITE_CHUNK = 500


class FrameStore:
    """FrameDocs, RoundDocs and blobs behind one API (use as a context manager or call :meth:`close`).

    ``frames``/``rounds``: connected maggma Stores with ``key="_id"``. ``write_lock``: serialises writers of an
    embedded store. ``read_only``: why the store cannot be written (None: writable); every write then fails
    with one StoreError line naming the store.
    """

    def __init__(
        self,
        frames: Any,
        rounds: Any,
        blobs: BlobBackend,
        *,
        kind: str,
        location: str,
        write_lock: WriteLock | None = None,
        read_only: str | None = None,
    ):
        self._frames = frames
        self._rounds = rounds
        self._blobs = blobs
        self.kind = kind
        self.location = location
        self._write_lock = write_lock
        self._read_only = read_only
        self._closed = False

    def __repr__(self) -> str:
        return f"FrameStore(kind={self.kind!r}, location={self.location!r})"

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------------------------
    @property
    def read_only(self) -> str | None:
        """Why the store cannot be written, or None if it can."""
        if self._write_lock is not None and self._write_lock.read_only:
            return self._write_lock.read_only
        return self._read_only

    def _refusal(self, what: str) -> StoreError:
        return StoreError(f"store {self.location} is read-only ({self.read_only}): cannot {what}")

    def check_writable(self, what: str = "write") -> None:
        """StoreError naming the store if it cannot be written (call it before spending compute)."""
        if self.read_only:
            raise self._refusal(what)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        self.check_writable(what)
        if self._write_lock is None:
            yield
            return
        with self._write_lock.hold(what):
            yield

    def _call(self, fn: Callable[[], T], what: str) -> T:
        """A store call with sqlite's lock retries; a read-only database becomes one StoreError line."""
        try:
            return retry_locked(fn, f"{self.location}: {what}")
        except StoreError as err:
            if isinstance(err.__cause__, sqlite3.OperationalError) and is_read_only_error(err.__cause__):
                self._read_only = "the database files are not writable"
                raise self._refusal(what) from None
            raise
        except OSError as err:
            if is_read_only_error(err):
                self._read_only = err.strerror or "permission denied"
                raise self._refusal(what) from None
            raise StoreError(f"{self.location}: {what}: {err.strerror or err}") from None

    def _query(self, store: Any, crit: dict, properties: list[str] | None = None) -> list[dict]:
        return self._call(lambda: list(store.query(criteria=crit, properties=properties)), "query")

    # -- frames --------------------------------------------------------------------------------------------
    def upsert_frames(self, frames: Iterable[FrameDoc]) -> int:
        """Insert or replace frames by ``frame_id``; returns how many were new. All are validated first.

        A frame already stored with identical content is left untouched; a changed one is replaced but keeps
        its first ``created_at``.
        """
        docs: dict[str, dict] = {}
        for i, frame in enumerate(frames):
            doc = frame_to_doc(frame, i)
            docs[doc["_id"]] = doc  # the same frame twice in one batch: last wins
        if not docs:
            return 0
        ids = list(docs)
        with self._writing(f"write {len(ids)} frames"):
            existing = {d["_id"]: d for d in self._query(self._frames, {"_id": {"$in": ids}})}  # one scan
            to_write = []
            for fid in ids:
                doc, old = docs[fid], existing.get(fid)
                if old is not None:
                    doc["created_at"] = old.get("created_at", doc["created_at"])  # first time stored
                    if doc == old:
                        continue  # identical re-upserts write nothing
                to_write.append(doc)
            for start in range(0, len(to_write), WRITE_CHUNK):
                part = to_write[start : start + WRITE_CHUNK]
                self._call(lambda p=part: self._frames.update(p, key="_id"), f"write {len(part)} frames")
        new = len(docs) - len(existing)
        logger.info("%s: upserted %d frames (%d new)", self.location, len(docs), new)
        return new

    def _to_frames(self, docs: list[dict]) -> list[FrameDoc]:
        out = []
        for d in docs:
            d.pop("_id", None)
            try:
                out.append(FrameDoc.model_validate(d))  # fills structure_id of docs stored without it
            except ValidationError as err:
                fid = d.get("frame_id")
                raise StoreError(
                    f"{self.location}: stored frame {fid} is invalid: {first_lines(err)}"
                ) from err
        return out

    def query_frames(self, **filters: Any) -> list[FrameDoc]:
        """Frames matching all filters of :func:`criteria` (``fidelity``, ``status``, ``round``, ``elements``,
        ``source``, ``campaign``, ``frame_ids``, ``structure_id``; a sequence = any of; ``elements`` = all
        present), in insertion order (``created_at``, then ``frame_id``)."""
        out = self._to_frames(self._query(self._frames, criteria(**filters)))
        out.sort(key=lambda f: (f.created_at, f.frame_id))
        return out

    def training_frames(
        self, fidelity: str | Sequence[str] | None = None, campaign: str | None = None
    ) -> list[FrameDoc]:
        """Frames usable for training: status "ok" only (failed/quarantined frames are never returned)."""
        return self.query_frames(fidelity=fidelity, status="ok", campaign=campaign)

    def count(self, **filters: Any) -> int:
        """Number of frames matching the filters of :meth:`query_frames`."""
        crit = criteria(**filters)
        return self._call(lambda: self._frames.count(crit), "count")

    def frame_ids(self, **filters: Any) -> set[str]:
        """frame_ids of frames matching the filters of :meth:`query_frames`."""
        return {d["_id"] for d in self._query(self._frames, criteria(**filters), ["_id"])}

    def structure_ids(self, **filters: Any) -> set[str]:
        """Distinct structure fingerprints of the frames matching the filters of :meth:`query_frames`."""
        docs = self._query(self._frames, criteria(**filters), ["structure_id"])
        out = {d["structure_id"] for d in docs if d.get("structure_id")}
        legacy = [d["_id"] for d in docs if not d.get("structure_id")]  # stored before structure_id existed
        if legacy:
            out |= {
                f.structure_id for f in self._to_frames(self._query(self._frames, {"_id": {"$in": legacy}}))
            }
        return out

    def counts_by(self, fields: Sequence[str] = ("fidelity", "status"), **filters: Any) -> dict[tuple, int]:
        """Frame counts grouped by ``fields``: ``{(value_1, value_2, ...): n}`` (missing field -> None)."""
        fields = tuple(fields)
        docs = self._query(self._frames, criteria(**filters), list(fields))
        counter: Counter[tuple] = Counter(tuple(d.get(f) for f in fields) for d in docs)
        return dict(sorted(counter.items(), key=lambda kv: tuple(str(v) for v in kv[0])))

    def missing_structure_ids(self) -> int:
        """Number of stored frames written before ``structure_id`` existed."""
        return self._call(lambda: self._frames.count({"structure_id": {"$exists": False}}), "count")

    def backfill_structure_ids(self) -> int:
        """Store ``structure_id`` on frames written before it existed (so the index finds them); returns how
        many were updated."""
        docs = self._query(self._frames, {"structure_id": {"$exists": False}})
        if not docs:
            return 0
        frames = self._to_frames(docs)
        fixed = [f.model_dump(mode="json") | {"_id": f.frame_id} for f in frames]
        with self._writing("add structure ids"):
            for start in range(0, len(fixed), WRITE_CHUNK):
                part = fixed[start : start + WRITE_CHUNK]
                self._call(lambda p=part: self._frames.update(p, key="_id"), "add structure ids")
        logger.info("%s: added structure_id to %d frames stored before it existed", self.location, len(fixed))
        return len(fixed)

    # -- rounds --------------------------------------------------------------------------------------------
    def upsert_round(self, doc: RoundDoc) -> None:
        """Insert or replace the RoundDoc of (campaign, round)."""
        try:
            doc = RoundDoc.model_validate(doc.model_dump() if isinstance(doc, RoundDoc) else doc)
        except ValidationError as err:
            raise StoreError(f"round document failed validation: {first_lines(err)}") from err
        data = doc.model_dump(mode="json")
        bad = bad_key(data)
        if bad:
            raise StoreError(f"round {doc.campaign}:{doc.round}: key {bad!r} contains '.' or starts with '$'")
        data["_id"] = f"{doc.campaign}:{doc.round}"
        if doc_size(data) > MAX_DOC_BYTES:
            raise StoreError(f"round {data['_id']}: document above MongoDB's 16 MB limit")
        with self._writing(f"write round {data['_id']}"):
            self._call(lambda: self._rounds.update([data], key="_id"), f"upsert round {data['_id']}")

    def rounds(self, campaign: str | None = None) -> list[RoundDoc]:
        """RoundDocs of ``campaign`` (all campaigns if None), ordered by campaign and round."""
        docs = self._query(self._rounds, {} if campaign is None else {"campaign": campaign})
        out = []
        for d in docs:
            d.pop("_id", None)
            try:
                out.append(RoundDoc.model_validate(d))
            except ValidationError as err:
                raise StoreError(f"{self.location}: stored round is invalid: {first_lines(err)}") from err
        return sorted(out, key=lambda r: (r.campaign, r.round))

    # -- blobs ---------------------------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (replacing an older version); returns its sha256 (hex)."""
        check_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(f"blob {key!r}: data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        sha = sha256_hex(data)
        with self._writing(f"write blob {key!r}"):
            self._call(lambda: self._blobs.put(key, data, sha), f"write blob {key!r}")
        return sha

    def get_blob(self, key: str, sha256: str | None = None) -> bytes:
        """The bytes stored under ``key``, checked against their recorded sha256 (and ``sha256`` if given).

        StoreError if there are none, or if they do not match (corrupt or a different version)."""
        check_key(key)
        data, recorded = self._call(lambda: self._blobs.get(key), f"read blob {key!r}")
        verified(key, data, recorded, self.location)
        if sha256 is not None and sha256_hex(data) != sha256:
            raise StoreError(
                f"blob {key!r} in {self.location}: sha256 {sha256_hex(data)[:12]}… is not the "
                f"expected {sha256[:12]}… (another version)"
            )
        return data

    def close(self) -> None:
        """Release connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for store in (self._frames, self._rounds):
            with contextlib.suppress(Exception):
                store.close()
        self._blobs.close()
