"""Locks and retries of the embedded (sqlite) store, and the checks that go with them.

- :func:`retry_locked`: run a store call, retrying a bounded number of times on sqlite's "database is locked".
- :class:`WriteLock`: a file lock that serialises writers (readers never take it); a directory that cannot be
  written gives one-line :class:`~mfal.errors.StoreError` naming it instead of an ``OSError`` traceback.
- :func:`is_writable`: does a real write probe (``os.access`` says yes to root even on a read-only mount).
- :func:`network_fs_type`: sqlite's locking is unreliable on NFS/Lustre/…: detect them to warn.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from mfal.errors import StoreError

logger = logging.getLogger(__name__)

T = TypeVar("T")

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
#: errno values that mean "this place cannot be written" (read-only mount, permissions, immutable)
READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
RETRIES = 30


def is_locked_error(err: BaseException) -> bool:
    """True for sqlite's transient "database is locked"/"busy" errors."""
    text = str(err).lower()
    return isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def is_read_only_error(err: BaseException) -> bool:
    """True if ``err`` says the store cannot be written (OS permissions or a read-only sqlite database)."""
    if isinstance(err, OSError) and err.errno in READ_ONLY_ERRNOS:
        return True
    text = str(err).lower()
    return isinstance(err, sqlite3.OperationalError) and ("readonly" in text or "read-only" in text)


def retry_locked(fn: Callable[[], T], what: str, retries: int = RETRIES) -> T:
    """Run ``fn``, retrying on sqlite's "database is locked"; other sqlite errors become one-line StoreError."""
    delay = 0.02
    for attempt in range(retries):
        try:
            return fn()
        except sqlite3.OperationalError as err:
            if not is_locked_error(err) or attempt == retries - 1:
                raise StoreError(f"{what}: sqlite error: {err}") from err
            logger.debug("%s: database is locked, retry %d", what, attempt + 1)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
    raise StoreError(f"{what}: database stayed locked")  # pragma: no cover - the loop returns or raises


def is_writable(directory: Path) -> tuple[bool, str]:
    """(True, "") if a file can be created in ``directory``, else (False, reason). A real probe, not os.access."""
    probe = directory / f".mfal-write-probe.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        if err.errno in READ_ONLY_ERRNOS:
            return False, err.strerror or "permission denied"
        raise StoreError(f"store {directory}: cannot be used ({err.strerror})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return True, ""


class WriteLock:
    """Inter-process write lock of an embedded store (a ``filelock.FileLock`` on ``<store>/.write.lock``).

    Re-entrant within a process. ``read_only`` (a reason string) makes every acquisition a StoreError naming
    the store: writes of a read-only store fail in one line before anything is touched.
    """

    def __init__(self, root: Path, timeout: float, read_only: str | None = None):
        import filelock

        self.root = root
        self.read_only = read_only
        self._lock = filelock.FileLock(str(root / ".write.lock"), timeout=timeout)

    def refuse(self, what: str) -> StoreError:
        """The StoreError of a write to a read-only store."""
        return StoreError(f"store {self.root} is read-only ({self.read_only}): cannot {what}")

    @contextlib.contextmanager
    def hold(self, what: str) -> Iterator[None]:
        """Hold the lock while ``what`` (e.g. "write frames") runs."""
        import filelock

        if self.read_only:
            raise self.refuse(what)
        try:
            with self._lock:
                yield
        except filelock.Timeout as err:
            raise StoreError(
                f"store {self.root}: timed out waiting for the write lock {err.lock_file}"
            ) from err
        except OSError as err:
            if err.errno in READ_ONLY_ERRNOS:
                self.read_only = err.strerror or "permission denied"
                raise self.refuse(what) from None
            raise


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
