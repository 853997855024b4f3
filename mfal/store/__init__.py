"""Training-data store: FrameDoc/RoundDoc documents, maggma-backed FrameStore, extxyz/JSON export.

Heavy backends (maggma, montydb, pymongo) are imported when a store is opened.
"""

from __future__ import annotations

from mfal.store.config import StoreConfig, resolve_store_config
from mfal.store.docs import FrameDoc, RoundDoc, make_frame_id
from mfal.store.frames import FrameStore, open_store

__all__ = [
    "FrameDoc",
    "FrameStore",
    "RoundDoc",
    "StoreConfig",
    "make_frame_id",
    "open_store",
    "resolve_store_config",
]
