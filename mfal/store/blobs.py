"""Binary blobs (checkpoints, big arrays) addressed by key and checked by sha256 on every read.

Two backends behind one small interface (:class:`BlobBackend`: ``put``/``get``/``close``):

- :class:`DirBlobs`: files under a directory (the embedded store's ``<store>/blobs``). Each file is a one-line
  header ``MFALBLOB1 <sha256> <size>`` followed by the bytes, written atomically, so a kill -9 leaves the old
  or the new version and a read always knows the checksum to verify.
- :class:`StoreBlobs`: any maggma ``Store`` through its public API: ``GridFSStore`` on clusters (no 16 MB
  document limit), ``MemoryStore`` in tests. A blob is the document ``{key, sha256, size, data: base64}``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any, Protocol

from mfal.errors import StoreError
from mfal.fileio import atomic_write_bytes

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")
_HEADER = b"MFALBLOB1 "


def check_key(key: Any) -> str:
    """``key`` if it is a safe relative blob key (letters, digits, ``._-/``; no leading ``/``, no ``..``)."""
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key.split("/") or key.endswith("/"):
        raise StoreError(f"blob key {key!r}: expected letters, digits, '._-/' (no leading '/', no '..')")
    return key


def sha256_hex(data: bytes) -> str:
    """sha256 of ``data`` (hex)."""
    return hashlib.sha256(data).hexdigest()


def verified(key: str, data: bytes, sha: str | None, where: str) -> bytes:
    """``data`` if its sha256 equals ``sha`` (None: nothing recorded, legacy blob), else StoreError."""
    if sha is not None and sha256_hex(data) != sha:
        raise StoreError(
            f"blob {key!r} in {where} is corrupt: sha256 {sha256_hex(data)[:12]}… != recorded {sha[:12]}…"
        )
    return data


class BlobBackend(Protocol):
    """Where a FrameStore keeps its blobs."""

    def put(self, key: str, data: bytes, sha: str) -> None:
        """Store ``data`` (its sha256 is ``sha``) under ``key``, replacing an older version."""

    def get(self, key: str) -> tuple[bytes, str | None]:
        """The bytes under ``key`` and their recorded sha256 (StoreError if there are none)."""

    def close(self) -> None:
        """Release resources."""


class DirBlobs:
    """Blobs as files under ``root`` (header line + bytes, written atomically)."""

    def __init__(self, root: Path):
        self.root = root

    def put(self, key: str, data: bytes, sha: str) -> None:
        atomic_write_bytes(self.root / key, _HEADER + f"{sha} {len(data)}\n".encode() + data)

    def get(self, key: str) -> tuple[bytes, str | None]:
        path = self.root / key
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise StoreError(f"blob {key!r} not found in {self.root}") from None
        except OSError as err:
            raise StoreError(f"blob {key!r}: cannot read {path} ({err.strerror})") from None
        if not raw.startswith(_HEADER):
            return raw, None  # written before checksummed blobs: nothing to verify against
        head, _, data = raw.partition(b"\n")
        parts = head.split()
        if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) != len(data):
            raise StoreError(f"blob {key!r}: {path} is truncated or has a bad header")
        return data, parts[1].decode()

    def close(self) -> None:
        pass


class StoreBlobs:
    """Blobs as documents of a connected maggma Store (``key="key"``), e.g. GridFSStore or MemoryStore."""

    def __init__(self, store: Any, where: str):
        self.store = store
        self.where = where

    def put(self, key: str, data: bytes, sha: str) -> None:
        doc = {"key": key, "sha256": sha, "size": len(data), "data": base64.b64encode(data).decode("ascii")}
        # GridFSStore also keeps sha256/size in the files' metadata (queryable without reading the data)
        extra = {"additional_metadata": ["sha256", "size"]} if self._gridfs else {}
        self.store.update([doc], key="key", **extra)

    def get(self, key: str) -> tuple[bytes, str | None]:
        doc = self.store.query_one(criteria={"key": key})
        if not doc or "data" not in doc:
            raise StoreError(f"blob {key!r} not found in {self.where}")
        try:
            data = base64.b64decode(doc["data"], validate=True)
        except (ValueError, TypeError):
            raise StoreError(f"blob {key!r} in {self.where} is not valid base64") from None
        return data, doc.get("sha256")

    @property
    def _gridfs(self) -> bool:
        from maggma.stores import GridFSStore

        return isinstance(self.store, GridFSStore)

    def count(self, key: str) -> int:
        """Number of stored versions of ``key`` (1 after any number of puts)."""
        return self.store.count({"key": key})

    def close(self) -> None:
        from contextlib import suppress

        with suppress(Exception):
            self.store.close()
