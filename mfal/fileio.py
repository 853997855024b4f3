"""Atomic file writes and tolerant JSON reads: the one place mfal writes a file it may later resume from.

Every writer goes through a temp file in the same folder, fsync and rename, so a kill -9 leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
from pathlib import Path
from typing import Any

from mfal.errors import DataError

log = logging.getLogger(__name__)

#: the largest JSON/YAML file mfal reads whole (bytes); a bigger one is refused before it is read
MAX_READ_BYTES = 512 * 1024**2


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file beside it, fsync, rename); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode())


def _strict(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (strict JSON has no NaN/Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    return obj


def dumps_strict(obj: Any, *, indent: int | None = 1) -> str:
    """Strict JSON text of ``obj``: NaN/±inf become ``null``, other objects their ``str``."""
    return json.dumps(_strict(obj), indent=indent, default=str, allow_nan=False)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Strict-JSON dump of ``obj`` to ``path``, atomically."""
    return atomic_write_text(path, dumps_strict(obj))


def read_json(path: str | Path, default: Any = None) -> Any:
    """Parsed JSON of ``path``; ``default`` when the file does not exist.

    An unreadable, oversized, binary or truncated file is a one-line :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        return default
    try:
        size = path.stat().st_size
        if size > MAX_READ_BYTES:
            raise DataError(f"{path}: {size / 1024**2:.0f} MiB is over the {MAX_READ_BYTES // 1024**2} MiB limit")
        return json.loads(path.read_bytes().decode())
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text JSON file (binary content at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from err


def check_private_file(path: str | Path, what: str = "credentials file") -> str | None:
    """Warn (and return the warning) if ``path`` is readable or writable by group/others: it may hold a
    password. A missing or unreadable file returns None (reading it reports the problem)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        msg = (
            f"{what} {path} is accessible by other users (mode {stat.S_IMODE(mode):04o}); "
            f"it may hold a database password: run chmod 600 {path}"
        )
        log.warning(msg)
        return msg
    return None
