"""Import existing DFT data into a store: VASP run directories (vasprun.xml/OUTCAR, gz or not), extxyz, JSON.

All inputs are parsed and validated before anything is written, so a bad file leaves the store untouched.
Frames are upserted by ``frame_id``, so an interrupted import (even kill -9) is completed by running it again:
nothing is lost and nothing is duplicated. Every frame's structure passes
:func:`~mfal.store.validate.validate_structure` (through :class:`~mfal.store.docs.FrameDoc`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from mfal.errors import DataError
from mfal.fidelity import DEFAULT_FIDELITIES, UnknownFidelityError
from mfal.store.docs import FrameDoc
from mfal.store.frames import FrameStore

logger = logging.getLogger(__name__)

EXTXYZ_SUFFIXES = (".xyz", ".extxyz")
FIDELITY_CHOICES = ("auto", *DEFAULT_FIDELITIES)


@dataclass
class ImportSource:
    """One thing to import: a VASP run directory (or vasprun file), an extxyz file or a JSON frame array."""

    path: Path
    kind: str  # "vasp" | "extxyz" | "json"
    frames: list[FrameDoc] = field(default_factory=list)


@dataclass
class ImportSummary:
    """What an import did (counts of frames)."""

    sources: list[ImportSource]
    total: int  # distinct frames read
    new: int
    already_present: int
    not_ok: int  # quarantined or failed (stored, never used for training)
    by_fidelity_status: dict[tuple[str, str], int]


def _has_vasprun(d: Path) -> bool:
    return any(d.glob("vasprun*.xml*"))


def _strip_gz(name: str) -> str:
    for suffix in (".gz", ".bz2", ".xz", ".lzma"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def discover(paths: Iterable[str | Path]) -> list[ImportSource]:
    """Classify input paths. A directory without a vasprun is searched recursively for VASP run directories."""
    out: list[ImportSource] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            if _has_vasprun(p) or (p / "outputs").is_dir() and _has_vasprun(p / "outputs"):
                out.append(ImportSource(p, "vasp"))
                continue
            runs = sorted({f.parent for f in p.rglob("vasprun*.xml*") if f.is_file()})
            if not runs:
                raise DataError(f"{p}: no vasprun.xml(.gz) in it or below (expected a VASP run directory)")
            out.extend(ImportSource(r, "vasp") for r in runs)
        elif p.is_file():
            name = _strip_gz(p.name.lower())
            if name.endswith(EXTXYZ_SUFFIXES):
                out.append(ImportSource(p, "extxyz"))
            elif name.endswith(".json"):
                out.append(ImportSource(p, "json"))
            elif name.startswith("vasprun") and name.endswith(".xml"):
                out.append(ImportSource(p, "vasp"))
            else:
                raise DataError(
                    f"{p}: unsupported file type; expected a VASP run directory, vasprun*.xml(.gz), "
                    f"*.xyz/*.extxyz or a *.json frame array"
                )
        else:
            raise DataError(f"{p}: no such file or directory")
    return out


def check_fidelity_choice(fidelity: str) -> str:
    """``fidelity`` if it is "auto", "lf" or "hf", else UnknownFidelityError naming the allowed values."""
    if fidelity not in FIDELITY_CHOICES:
        raise UnknownFidelityError(f"--fidelity {fidelity!r} not in {list(FIDELITY_CHOICES)}")
    return fidelity


def read_source(
    src: ImportSource, *, fidelity: str = "auto", source: str = "import", max_bytes: int | None = None
) -> list[FrameDoc]:
    """Frames of one source; fills ``src.frames``. Raises DataError naming the file on bad input.

    ``max_bytes``: refuse an extxyz/JSON file bigger than this before reading it (default: the readers' limit).
    """
    try:
        frames = _read(src, fidelity=fidelity, source=source, max_bytes=max_bytes)
    except ValidationError as err:  # a parser built an invalid FrameDoc (e.g. NaN positions in a vasprun)
        from mfal.store.jsonio import validation_detail

        raise DataError(f"{src.path}: not a valid frame: {validation_detail(err)}") from None
    except MemoryError:
        raise DataError(f"{src.path}: too large to load into memory; split it") from None
    src.frames = frames
    return frames


def _read(src: ImportSource, *, fidelity: str, source: str, max_bytes: int | None) -> list[FrameDoc]:
    from mfal.store.extxyz import read_extxyz
    from mfal.store.jsonio import read_json

    check_fidelity_choice(fidelity)
    if src.kind == "vasp":
        from mfal.label.vasp_io import parse_vasp_dir

        frames = parse_vasp_dir(src.path, fidelity=fidelity, source=source)
    elif src.kind == "extxyz":
        fid = None if fidelity == "auto" else fidelity
        frames = read_extxyz(src.path, fidelity=fid, source=source, max_bytes=max_bytes)
    elif src.kind == "json":
        frames = read_json(src.path, max_bytes=max_bytes)
        if fidelity != "auto":
            wrong = [f.frame_id for f in frames if f.fidelity != fidelity]
            if wrong:
                raise DataError(f"{src.path}: frame {wrong[0]} has fidelity != requested {fidelity!r}")
    else:  # pragma: no cover - discover() only makes the kinds above
        raise DataError(f"{src.path}: unknown source kind {src.kind!r}")
    return frames


def import_paths(
    store: FrameStore,
    paths: Sequence[str | Path],
    *,
    fidelity: str = "auto",
    on_source: Callable[[ImportSource], None] | None = None,
    max_bytes: int | None = None,
) -> ImportSummary:
    """Parse every path, then upsert all frames in one batch (nothing is written if any path is bad)."""
    check_fidelity_choice(fidelity)
    return import_sources(store, discover(paths), fidelity=fidelity, on_source=on_source, max_bytes=max_bytes)


def read_sources(
    sources: Sequence[ImportSource],
    *,
    fidelity: str = "auto",
    on_source: Callable[[ImportSource], None] | None = None,
    max_bytes: int | None = None,
) -> list[ImportSource]:
    """Read (parse and validate) every source; ``on_source`` is called after each (e.g. a progress bar)."""
    check_fidelity_choice(fidelity)
    for src in sources:
        read_source(src, fidelity=fidelity, max_bytes=max_bytes)
        if on_source is not None:
            on_source(src)
    return list(sources)


def store_sources(store: FrameStore, sources: Sequence[ImportSource]) -> ImportSummary:
    """Upsert the frames of already-read sources in one validated batch; counts of what happened."""
    frames: dict[str, FrameDoc] = {}
    for src in sources:
        for f in src.frames:
            frames[f.frame_id] = f
    new = store.upsert_frames(frames.values())
    counts = Counter((f.fidelity, f.status) for f in frames.values())
    summary = ImportSummary(
        sources=list(sources),
        total=len(frames),
        new=new,
        already_present=len(frames) - new,
        not_ok=sum(f.status != "ok" for f in frames.values()),
        by_fidelity_status=dict(sorted(counts.items())),
    )
    logger.info("imported %d frames (%d new) from %d sources", summary.total, new, len(sources))
    return summary


def import_sources(
    store: FrameStore,
    sources: Sequence[ImportSource],
    *,
    fidelity: str = "auto",
    on_source: Callable[[ImportSource], None] | None = None,
    max_bytes: int | None = None,
) -> ImportSummary:
    """Read every source of :func:`discover`, then upsert all frames in one validated batch."""
    read = read_sources(sources, fidelity=fidelity, on_source=on_source, max_bytes=max_bytes)
    return store_sources(store, read)
