"""Raw outputs of a DFT label, kept as provenance: a deterministic tar.gz of a run's text outputs.

:func:`bundle_outputs` packs the files that say what was run and what came out (VASP: INCAR, KPOINTS, POSCAR,
CONTCAR, OUTCAR, OSZICAR, vasprun.xml, vasp.out, std_err.txt, custodian.json, POTCAR.spec, STOPCAR and
custodian's error.N.tar.gz backups of failed attempts; CP2K: *.inp, *.inc, *.out, *.log, *.err), gzipped or
not. Never bundled: POTCARs (copyrighted), wavefunctions and densities (WAVECAR, CHGCAR, *.wfn, *.cube, ...),
anything not on that list. Members are sorted, with zero mtimes/owners and fixed modes, and the gzip header has
no name or time, so identical runs give identical bytes (and the same sha256). ``MANIFEST.json`` inside lists
each member's size and sha256 and every file left out with the reason.

The campaign's label step stores the bundle with ``FrameStore.put_blob`` under :func:`blob_key` and links it
as ``FrameDoc.calc["raw_outputs"] = {"key", "sha256", "bytes"}``; :func:`fetch_raw_outputs` gets it back.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import json
import logging
import tarfile
from pathlib import Path
from typing import Any

from mfal.errors import DataError

log = logging.getLogger(__name__)

#: patterns of the raw outputs kept (matched on the file name without a .gz/.bz2/.xz suffix)
KEEP_PATTERNS: tuple[str, ...] = (
    "INCAR",
    "INCAR.*",
    "KPOINTS",
    "KPOINTS.*",
    "POSCAR",
    "POSCAR.*",
    "CONTCAR",
    "CONTCAR.*",
    "OUTCAR",
    "OUTCAR.*",
    "OSZICAR",
    "OSZICAR.*",
    "vasprun.xml",
    "vasprun.xml.*",
    "vasp.out",
    "std_err.txt",
    "custodian.json",
    "POTCAR.spec",
    "STOPCAR",
    "error.*.tar",
    "*.inp",
    "*.inc",
    "*.out",
    "*.log",
    "*.err",
)
#: never bundled, even when a pattern above matches (licence or size)
NEVER_PATTERNS: tuple[str, ...] = ("POTCAR*", "WAVECAR*", "CHGCAR*", "CHG", "*.wfn*", "*.cube")  # POTCAR.spec ok
COMPRESSED = (".gz", ".bz2", ".xz")
MANIFEST = "MANIFEST.json"
DEFAULT_MAX_BYTES = 64 * 1024**2  # bytes of files (as on disk) put into one bundle

__all__ = [
    "RAW_OUTPUTS",
    "attach_raw_outputs",
    "blob_key", "bundle_outputs", "fetch_raw_outputs", "raw_output_files", "unbundle"]
RAW_OUTPUTS = "raw_outputs"  # the FrameDoc.calc key of the link


def _base(name: str) -> str:
    for suffix in COMPRESSED:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _kept(name: str) -> bool:
    base = _base(name)
    if base == "POTCAR.spec":
        return True
    if any(fnmatch.fnmatchcase(base, p) for p in NEVER_PATTERNS):
        return False
    return any(fnmatch.fnmatchcase(base, p) for p in KEEP_PATTERNS)


def raw_output_files(
    run_dir: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[list[Path], list[dict[str, Any]]]:
    """The files of ``run_dir`` (recursively) that go into the bundle, sorted by relative path, and the
    ones left out (``{"name", "bytes", "reason"}``). Over ``max_bytes`` in total, the largest files are dropped
    first. DataError if ``run_dir`` is not a directory."""
    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(f"raw outputs: {root} is not a directory")
    candidates, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        if _kept(path.name):
            candidates.append((size, rel, path))
        else:
            skipped.append({"name": rel, "bytes": size, "reason": "not a raw text output"})
    chosen, total = [], 0
    for size, rel, path in sorted(candidates):  # smallest first: a cap drops the largest files
        if total + size > max_bytes:
            skipped.append({"name": rel, "bytes": size, "reason": f"over max_bytes={max_bytes}"})
            continue
        total += size
        chosen.append(path)
    skipped.sort(key=lambda s: s["name"])
    return sorted(chosen, key=lambda p: p.relative_to(root).as_posix()), skipped


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def bundle_outputs(run_dir: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A deterministic tar.gz of the raw outputs of the DFT run in ``run_dir`` (see the module docstring).

    DataError if ``run_dir`` is not a directory or holds no raw output at all."""
    root = Path(run_dir)
    files, skipped = raw_output_files(root, max_bytes=max_bytes)
    if not files:
        raise DataError(f"raw outputs: no input or output file of a DFT run in {root}")
    raw = io.BytesIO()
    entries = []
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            name = path.relative_to(root).as_posix()
            entries.append({"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            tar.addfile(_member(name, len(data)), io.BytesIO(data))
        manifest = json.dumps({"files": entries, "skipped": skipped}, indent=1, sort_keys=True).encode()
        tar.addfile(_member(MANIFEST, len(manifest)), io.BytesIO(manifest))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def unbundle(data: bytes, dest: str | Path) -> list[Path]:
    """Unpack a bundle into ``dest`` (created); returns the files written, manifest last.

    DataError if ``data`` is not a bundle or a member would land outside ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise DataError(f"raw outputs bundle: member {m.name!r} is not a plain relative file")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # Python without extraction filters: the members were checked above
                tar.extractall(dest)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"raw outputs bundle: not a readable tar.gz ({err})") from None
    names = [m.name for m in members if m.name != MANIFEST] + [MANIFEST]
    return [dest / n for n in names]


def blob_key(frame_id: str, sha256: str) -> str:
    """Blob key of a frame's bundle: content-addressed, so a re-bundle never overwrites another version."""
    return f"{RAW_OUTPUTS}/{frame_id}/{sha256[:16]}.tar.gz"


def fetch_raw_outputs(store: Any, frame_id: str, dest: str | Path) -> list[Path]:
    """Unpack the raw outputs linked from frame ``frame_id`` of ``store`` (a FrameStore) into ``dest``.

    The blob is checked against the sha256 recorded in the frame. DataError if there is no such frame or it has
    no raw outputs (surrogate labels, imports and frames labeled before this link existed)."""
    frames = store.query_frames(frame_ids=[frame_id])
    if not frames:
        raise DataError(f"frame {frame_id}: not in {store.location}")
    link = frames[-1].calc.get(RAW_OUTPUTS)
    if not isinstance(link, dict) or "key" not in link:
        raise DataError(
            f"frame {frame_id}: no calc.{RAW_OUTPUTS} link (source {frames[-1].source}: only DFT labels keep "
            "their outputs)"
        )
    return unbundle(store.get_blob(link["key"], link.get("sha256")), dest)


def attach_raw_outputs(store: Any, frame: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """``frame`` (a FrameDoc) with its run's bundle stored in ``store`` and linked as ``calc["raw_outputs"]``.

    Any status (the outputs of a failed run say why it failed). Returned unchanged when the frame has no
    ``task_dir`` (surrogate labels), is linked already, or its directory is gone or holds no raw output
    (logged). The link does not enter ``frame_id``."""
    if not frame.task_dir or RAW_OUTPUTS in frame.calc:
        return frame
    try:
        data = bundle_outputs(frame.task_dir, max_bytes=max_bytes)
    except DataError as err:
        log.warning("frame %s (%s): raw outputs not kept: %s", frame.frame_id, frame.status, err)
        return frame
    sha = hashlib.sha256(data).hexdigest()
    key = blob_key(frame.frame_id, sha)
    store.put_blob(key, data)  # sha256-checked on every read
    link = {"key": key, "sha256": sha, "bytes": len(data)}
    return frame.model_copy(update={"calc": {**frame.calc, RAW_OUTPUTS: link}})
