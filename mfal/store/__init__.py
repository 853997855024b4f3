"""Training-data store: FrameDoc/RoundDoc documents, a FrameStore on maggma stores, extxyz/JSON export.

Modules: ``docs`` (FrameDoc, RoundDoc), ``validate`` (what a usable structure/label is), ``records`` (store
documents and query filters), ``frames`` (FrameStore on maggma's public Store API), ``backends`` (open_store:
embedded, mongo, memory), ``embedded`` (the only module below maggma's API: montydb/sqlite), ``locking``
(write lock, retries, read-only and network-FS checks), ``blobs`` (sha256-checked blobs), ``config``,
``extxyz``, ``jsonio``, ``importer``.
Heavy backends (maggma, montydb, pymongo) are imported when a store is opened.
"""

from __future__ import annotations

from mfal.store.backends import open_store
from mfal.store.config import StoreConfig, resolve_store_config
from mfal.store.docs import FrameDoc, RoundDoc, make_frame_id, structure_fingerprint
from mfal.store.frames import FrameStore
from mfal.store.validate import check_finite, validate_structure

__all__ = [
    "FrameDoc",
    "FrameStore",
    "RoundDoc",
    "StoreConfig",
    "check_finite",
    "make_frame_id",
    "open_store",
    "resolve_store_config",
    "structure_fingerprint",
    "validate_structure",
]
