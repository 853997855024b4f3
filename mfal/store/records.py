"""Store documents of FrameDocs and the Mongo filters of FrameStore queries (no I/O here).

A frame's document is ``FrameDoc.model_dump(mode="json")`` plus ``_id = frame_id``; it is validated again,
checked for keys MongoDB/montydb reject (dots, a leading ``$``) and for MongoDB's 16 MB limit before any
write, so a bad frame fails its whole batch with one StoreError line naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from mfal.errors import StoreError
from mfal.store.docs import FrameDoc

#: MongoDB's BSON document size limit (bytes)
MAX_DOC_BYTES = 16 * 1024 * 1024
#: indexed FrameDoc fields (``_id`` = frame_id is unique by construction)
FRAME_INDEXES = ("frame_id", "structure_id", "fidelity", "status", "round", "elements", "source", "campaign")


def bad_key(obj: Any, path: str = "") -> str | None:
    """Path of the first dict key containing '.' or starting with '$' (MongoDB/montydb reject them)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{path}/{k}" if path else str(k)
            if not isinstance(k, str) or "." in k or k.startswith("$"):
                return here
            found = bad_key(v, here)
            if found:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:1000]):
            found = bad_key(v, f"{path}[{i}]")
            if found:
                return found
    return None


def doc_size(doc: dict) -> int:
    import bson

    return len(bson.encode(doc))


def first_lines(err: Exception) -> str:
    return " ".join(m.strip() for m in str(err).splitlines()[:3])


def frame_to_doc(frame: Any, i: int) -> dict:
    """Validated store document of a FrameDoc (or dict); StoreError naming the frame on any problem."""
    try:
        data = frame.model_dump() if isinstance(frame, FrameDoc) else frame
        doc_model = FrameDoc.model_validate(data)  # again: pydantic does not validate attribute assignment
    except (ValidationError, ValueError, TypeError) as err:
        fid = getattr(frame, "frame_id", None) or (frame.get("frame_id") if isinstance(frame, dict) else None)
        raise StoreError(
            f"frame #{i} ({fid or 'no frame_id'}) failed validation: {first_lines(err)}"
        ) from err
    doc = doc_model.model_dump(mode="json")
    bad = bad_key(doc)
    if bad:
        raise StoreError(f"frame {doc['frame_id']}: key {bad!r} contains '.' or starts with '$'")
    doc["_id"] = doc["frame_id"]
    size = doc_size(doc)
    if size > MAX_DOC_BYTES:
        raise StoreError(
            f"frame {doc['frame_id']}: document is {size / 2**20:.1f} MB, above MongoDB's 16 MB limit"
        )
    return doc


def criteria(
    *,
    fidelity: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    round: int | Sequence[int] | None = None,  # noqa: A002 - mirrors the FrameDoc field
    elements: str | Sequence[str] | None = None,
    source: str | Sequence[str] | None = None,
    campaign: str | Sequence[str] | None = None,
    frame_ids: Iterable[str] | None = None,
    structure_id: str | Iterable[str] | None = None,
) -> dict[str, Any]:
    """Mongo filter from query arguments; a sequence means "any of"; ``elements`` means "all present"."""

    def any_of(v: Any) -> Any:
        return v if isinstance(v, str | int) else {"$in": list(v)}

    crit: dict[str, Any] = {}
    for name, value in (
        ("fidelity", fidelity),
        ("status", status),
        ("round", round),
        ("source", source),
        ("campaign", campaign),
        ("structure_id", structure_id),
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
