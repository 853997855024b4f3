"""The embedded store: maggma ``MontyStore`` (montydb on sqlite) in a directory, blobs as files in ``<dir>/blobs``.

This is the one module that touches montydb below maggma's Store API; its sharp edges are handled here:

- **crash-safe creation**: every creation step is idempotent and the marker ``.mfal-store.json`` is written
  last (atomically). A store without the marker is (re)built on open: the montydb config is rewritten and a
  collection file that sqlite created without its table (kill -9 inside montydb's first write: "no such table:
  documents") gets its table. Creation is serialised by ``<dir>/.create.lock``; a finished store is opened
  without any lock or write (montydb's ``set_storage`` rewrote its config on every ``connect`` — a race).
- **read-only stores**: a directory that cannot be written opens for queries (sqlite ``immutable`` mode, no
  lock files); every write is one StoreError line naming the directory.
- **one writer at a time**: writes hold ``<dir>/.write.lock``; readers never lock and retry on "database is
  locked". montydb ignores unique indexes, so ``_id`` = ``frame_id`` (sqlite's primary key) keeps frames unique.
- **fast upserts**: maggma's ``MontyStore.update`` replaces one document at a time (each a scan of the
  collection); :class:`MfalMontyStore` inserts new documents in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from maggma.stores import MontyStore

from mfal.errors import StoreError
from mfal.fileio import atomic_write_json, read_json
from mfal.store.blobs import DirBlobs
from mfal.store.config import STORE_MARKER, StoreConfig
from mfal.store.frames import FrameStore
from mfal.store.locking import WriteLock, is_writable, network_fs_type, retry_locked

logger = logging.getLogger(__name__)

#: version of the on-disk layout written to the marker (2: frames carry ``structure_id``)
STORE_FORMAT = 2
_STORAGE = {"storage": "sqlite", "use_bson": True, "mongo_version": "4.0"}
_MONTY_FILES = (".monty.storage", "monty.storage.cfg")


def _creation_step(name: str) -> None:
    """Test seam between the steps of creating a store (fault tests SIGKILL the process here)."""


class MfalMontyStore(MontyStore):
    """MontyStore that does not rewrite montydb's config on connect, can read a read-only directory, and
    inserts new documents in one transaction."""

    def __init__(self, *args: Any, immutable: bool = False, **kwargs: Any):
        self.immutable = immutable
        super().__init__(*args, **kwargs)

    def connect(self, force_reset: bool = False) -> None:
        """Connect; montydb's config is written only when it is missing (store creation)."""
        if self._coll is not None and not force_reset:
            return
        from montydb import MontyClient, set_storage

        root = Path(self.database_path)
        if not all((root / name).is_file() for name in _MONTY_FILES):
            set_storage(self.database_path, **_STORAGE)
        client = MontyClient(self.database_path, **self.client_kwargs)
        coll = client[self.database_name][self.collection_name]
        if self.immutable:
            _open_sqlite_immutable(coll)
        self._coll = coll

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        """Upsert by ``_id``: new documents in one ``insert_many`` (one sqlite transaction), others replaced."""
        docs = [docs] if isinstance(docs, dict) else list(docs)
        if (key or self.key) != "_id":
            super().update(docs, key=key)
            return
        from montydb.errors import DuplicateKeyError

        # (no jsanitize: FrameStore passes JSON-mode dumps, and montydb encodes them with BSON)
        try:  # the common case, all new: one key scan and one transaction
            self._collection.insert_many(docs)
            return
        except (DuplicateKeyError, sqlite3.IntegrityError):  # none or only earlier docs written: redone below
            pass
        ids = [d["_id"] for d in docs]
        present = {d["_id"] for d in self._collection.find({"_id": {"$in": ids}}, {"_id": 1})}
        fresh = [d for d in docs if d["_id"] not in present]
        if fresh:
            self._collection.insert_many(fresh)
        for d in docs:
            if d["_id"] in present:
                self._collection.replace_one({"_id": d["_id"]}, d, upsert=True)

    def remove_docs(self, criteria: dict) -> None:
        """Remove matching documents (montydb fails on ``delete_many`` of an empty collection)."""
        if self.count(criteria):
            super().remove_docs(criteria)

    def close(self) -> None:
        """Close the client (idempotent)."""
        if self._coll is not None:
            with contextlib.suppress(Exception):
                self._coll.database.client.close()
        self._coll = None


def _open_sqlite_immutable(coll: Any) -> None:
    """Make montydb's sqlite engine of ``coll`` open files read-only and immutable (no -wal/-shm files are
    created, so a read-only directory can be queried)."""
    engine = coll._storage._conn

    def connect(db_file: str, wconcern: Any = None) -> contextlib.closing:
        conn = sqlite3.connect(f"file:{quote(db_file)}?mode=ro&immutable=1", uri=True)
        conn.text_factory = str
        return contextlib.closing(conn)

    engine._connect = connect


def _ensure_table(path: Path) -> None:
    """Give the collection file ``path`` montydb's table if sqlite created the file without it."""
    from montydb.storage.sqlite import CREATE_TABLE, SQLITE_RECORD_TABLE

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("PRAGMA journal_mode=WAL")
            _creation_step("table_file")
            found = conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name=?", (SQLITE_RECORD_TABLE,)
            ).fetchone()
            if found is None:
                conn.execute(CREATE_TABLE.format(SQLITE_RECORD_TABLE))
    except sqlite3.DatabaseError as err:  # not a database at all: nothing was ever stored in it (no marker)
        broken = path.with_name(path.name + ".broken")
        logger.warning("%s: %s; moved to %s and recreated", path, err, broken.name)
        path.replace(broken)
        _ensure_table(path)


def _create_or_repair(root: Path, cfg: StoreConfig) -> None:
    """Build the store in ``root`` (or finish an interrupted build); the marker is written last."""
    import filelock

    try:
        with filelock.FileLock(str(root / ".create.lock"), timeout=cfg.lock_timeout):
            if (root / STORE_MARKER).is_file():
                return  # another process finished it while we waited
            from montydb import set_storage

            set_storage(str(root), **_STORAGE)
            _creation_step("storage_config")
            for coll in (cfg.frames, cfg.rounds):
                _ensure_table(root / cfg.database / f"{coll}.collection")
                _creation_step("collection")
            (root / cfg.blobs).mkdir(exist_ok=True)
            (root / ".write.lock").touch()
            meta = {"format": STORE_FORMAT, "database": cfg.database, "collections": [cfg.frames, cfg.rounds]}
            atomic_write_json(root / STORE_MARKER, meta)
    except filelock.Timeout as err:
        raise StoreError(f"store {root}: timed out waiting for lock {err.lock_file}") from err
    except OSError as err:
        raise StoreError(f"store {root}: cannot create ({err.strerror})") from None
    except sqlite3.Error as err:
        raise StoreError(f"store {root}: cannot create its sqlite files ({err})") from None


def _read_only_reason(root: Path, cfg: StoreConfig) -> str | None:
    """Why the existing store in ``root`` cannot be written (None if it can)."""
    for d in (root, root / cfg.database):
        if d.is_dir():
            ok, reason = is_writable(d)
            if not ok:
                return f"{d}: {reason}"
    return None


def open_embedded(cfg: StoreConfig, *, create: bool = True, read_only: bool | None = None) -> FrameStore:
    """Open (create, repair) the embedded store of ``cfg``.

    ``create=False``: the store must exist (an interrupted creation is finished). ``read_only``: True never
    writes data (only a probe file is made and removed); False requires a writable store (StoreError otherwise); None: required when ``create`` (writers
    fail before they spend compute), detected otherwise (a read-only store serves queries).
    """
    root = Path(cfg.path).expanduser().resolve()  # type: ignore[arg-type]
    marker = root / STORE_MARKER
    if not marker.is_file():
        started = any((root / name).exists() for name in _MONTY_FILES)  # an interrupted creation
        if read_only and started:
            raise StoreError(f"store {root} is not completely created; open it once with a writing command")
        if read_only or not (create or started):
            raise StoreError(
                f"no mfal store at {root} (expected a store directory made by mfal, or a campaign dir)"
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"store directory {root}: cannot create ({err.strerror})") from None
        probe = _read_only_reason(root, cfg)
        if probe:
            raise StoreError(f"store {root}: cannot create ({probe})")
        _create_or_repair(root, cfg)
    probe = _read_only_reason(root, cfg)
    if probe and (read_only is False or (read_only is None and create)):
        raise StoreError(
            f"store {root} is read-only ({probe}); a writable store is needed (queries: open it read-only)"
        )
    reason = probe or ("opened read-only" if read_only else None)
    fs = network_fs_type(root)
    if fs:
        logger.warning(
            "embedded store %s is on a network file system (%s): sqlite locking is unreliable there; "
            "use a local disk or a mongo store",
            root,
            fs,
        )
    stores = {
        name: MfalMontyStore(
            coll, database_path=str(root), database_name=cfg.database, key="_id", immutable=probe is not None
        )
        for name, coll in (("frames", cfg.frames), ("rounds", cfg.rounds))
    }
    try:
        for store in stores.values():
            retry_locked(store.connect, f"{root}: connect")
    except StoreError:
        raise
    except Exception as err:  # montydb's own errors (a damaged config file, ...)
        raise StoreError(f"store {root}: cannot open ({type(err).__name__}: {err})") from None
    lock = WriteLock(root, cfg.lock_timeout, read_only=reason)
    store = FrameStore(
        stores["frames"],
        stores["rounds"],
        DirBlobs(root / cfg.blobs),
        kind="embedded",
        location=str(root),
        write_lock=lock,
    )
    try:
        _upgrade(store, marker)
    except BaseException:
        store.close()
        raise
    return store


def _upgrade(store: FrameStore, marker: Path) -> None:
    """Bring a store written by an older mfal to :data:`STORE_FORMAT` (writable stores only)."""
    meta = read_json(marker, default={}) or {}
    if not isinstance(meta, dict) or meta.get("format", 1) >= STORE_FORMAT:
        return
    if store.read_only:
        if store.missing_structure_ids():
            logger.warning(
                "%s: frames stored by an older mfal have no structure_id yet; structure_id filters "
                "miss them until the store is opened once by a writing command",
                store.location,
            )
        return
    store.backfill_structure_ids()
    atomic_write_json(marker, meta | {"format": STORE_FORMAT})
