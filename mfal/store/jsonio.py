"""JSON export/import of frames: a JSON array of ``FrameDoc.model_dump(mode="json")`` objects."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from mfal.errors import DataError
from mfal.store.docs import FrameDoc


def frames_to_json(frames: Iterable[FrameDoc], indent: int | None = None) -> str:
    """JSON array text of the frames."""
    return json.dumps([f.model_dump(mode="json") for f in frames], indent=indent)


def write_json(frames: Iterable[FrameDoc], path: str | Path | IO[str], indent: int | None = None) -> int:
    """Write frames as a JSON array to ``path`` (file path, written atomically, or a text stream)."""
    data = [f.model_dump(mode="json") for f in frames]
    text = json.dumps(data, indent=indent)
    if isinstance(path, str | Path):
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(path)
    else:
        path.write(text + "\n")
    return len(data)


def read_json(path: str | Path) -> list[FrameDoc]:
    """Frames from a JSON array file written by :func:`write_json` (DataError naming file and index)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of frames, got {type(data).__name__}")
    frames = []
    for i, item in enumerate(data):
        try:
            frames.append(FrameDoc.model_validate(item))
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "frame"
            raise DataError(f"{path} frame {i}: field {loc!r}: {first['msg']}") from err
    return frames
