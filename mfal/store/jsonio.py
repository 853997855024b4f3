"""JSON export/import of frames: a JSON array of ``FrameDoc.model_dump(mode="json")`` objects.

The output is always strict JSON (a quarantined frame's NaN forces become ``null``, which reads back as NaN);
reading refuses binary, truncated or oversized files and bad frames in one line naming file, frame and field.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from mfal import fileio
from mfal.errors import DataError
from mfal.store.docs import FrameDoc
from mfal.store.validate import check_file_size


def validation_detail(err: ValidationError) -> str:
    """One line of a pydantic error: ``field 'x': message`` (or just the message of a whole-model check)."""
    first = err.errors()[0]
    msg = str(first["msg"]).removeprefix("Value error, ")
    loc = ".".join(str(p) for p in first["loc"])
    return f"field {loc!r}: {msg}" if loc else msg


def frames_to_json(frames: Iterable[FrameDoc], indent: int | None = None) -> str:
    """Strict JSON array text of the frames (NaN/inf -> null)."""
    return fileio.dumps_strict([f.model_dump(mode="json") for f in frames], indent=indent)


def write_json(frames: Iterable[FrameDoc], path: str | Path | IO[str], indent: int | None = None) -> int:
    """Write frames as a strict JSON array to ``path`` (file path, written atomically, or a text stream)."""
    data = [f.model_dump(mode="json") for f in frames]
    text = fileio.dumps_strict(data, indent=indent) + "\n"
    if isinstance(path, str | Path):
        fileio.atomic_write_text(path, text)
    else:
        path.write(text)
    return len(data)


def read_json(path: str | Path, *, max_bytes: int | None = None) -> list[FrameDoc]:
    """Frames from a JSON array file written by :func:`write_json` (DataError naming file, frame and field).

    ``max_bytes``: refuse bigger files before reading (default :data:`mfal.fileio.MAX_READ_BYTES`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    limit = fileio.MAX_READ_BYTES if max_bytes is None else max_bytes
    size = check_file_size(path, limit, "a JSON frame file")
    try:
        data: Any = fileio.read_json(path)
    except MemoryError:
        raise DataError(f"{path}: too large to load into memory ({size / 2**20:.0f} MiB); split it") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of frames, got {type(data).__name__}")
    frames = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise DataError(f"{path} frame {i}: expected a frame object, got {type(item).__name__}")
        try:
            frames.append(FrameDoc.model_validate(item))
        except ValidationError as err:
            raise DataError(f"{path} frame {i}: {validation_detail(err)}") from None
        except MemoryError:
            raise DataError(f"{path} frame {i}: too large to load into memory") from None
    return frames
