"""Extended-XYZ export/import of :class:`~mfal.store.docs.FrameDoc` frames (via ASE).

Layout of one frame (readable by ``ase.io.read(path, index=":")``):

- calculator results (ASE's ``SinglePointCalculator``, so ``atoms.get_potential_energy()`` etc. work):
  ``energy`` (eV, total per cell), ``forces`` (eV/Å, per-atom array), ``stress`` (**ASE units and Voigt order**:
  eV/Å³, ``[xx, yy, zz, yz, xz, xy]``; ASE's sign is the same as CHGNet's, i.e. positive = tensile, so
  ``stress_ase = stress_gpa / 160.2176634``), ``magmoms`` (μB per site, per-atom array; HF frames only);
- ``info["mfal_stress_gpa"]``: the exact 3×3 stress in GPa, CHGNet sign (= VASP stress × −0.1), flattened
  row-major to 9 numbers; when present it takes precedence over ASE's ``stress`` on reading;
- ``info`` strings/numbers: ``frame_id``, ``fidelity``, ``source``, ``status``, ``status_reason``, ``calc_code``,
  ``mfal_calc`` (the full calc summary as JSON), ``cost`` (core-seconds), ``campaign``, ``round``, ``task_dir``,
  ``task_id``, ``created_at`` (ISO 8601).

Frames from other tools (no ``fidelity``/``frame_id`` info) are accepted when a fidelity is given; their
``frame_id`` is derived from structure, fidelity and calc as for every other frame.

Reading streams the file frame by frame (``ase.io.iread``) and refuses a file over ``max_bytes``
(:data:`MAX_EXTXYZ_BYTES`) before reading it; any bad frame — non-finite cell, positions or labels, unknown
element, a malformed info value — is one DataError line naming the file, the frame and the field.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mfal.errors import DataError
from mfal.fidelity import DEFAULT_FIDELITIES, UnknownFidelityError, check_fidelity
from mfal.fileio import MAX_READ_BYTES, atomic_write_text
from mfal.store.docs import FrameDoc
from mfal.store.validate import check_file_size, check_finite, validate_structure

logger = logging.getLogger(__name__)

#: 1 GPa in eV/Å³ is 1/EV_A3_TO_GPA
EV_A3_TO_GPA = 160.21766208

#: the largest extxyz file read (bytes); bigger ones are refused before reading (split them, or pass max_bytes)
MAX_EXTXYZ_BYTES = MAX_READ_BYTES

_STR_FIELDS = ("source", "status", "status_reason", "campaign", "task_dir", "task_id")


def frame_to_atoms(frame: FrameDoc):
    """ASE ``Atoms`` of one frame with its labels attached (see the module docstring for the layout)."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(frame.get_structure())
    # AseAtomsAdaptor copies site properties such as magmom into initial_magmoms; keep only our labels
    for key in list(atoms.arrays):
        if key not in ("numbers", "positions"):
            del atoms.arrays[key]
    results: dict[str, Any] = {}
    if frame.energy is not None:
        results["energy"] = float(frame.energy)
    if frame.forces is not None:
        results["forces"] = np.asarray(frame.forces, dtype=float)
    if frame.stress is not None:
        s = np.asarray(frame.stress, dtype=float) / EV_A3_TO_GPA
        results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        atoms.info["mfal_stress_gpa"] = np.asarray(frame.stress, dtype=float).reshape(9)
    if frame.magmoms is not None:
        results["magmoms"] = np.asarray(frame.magmoms, dtype=float)
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    info: dict[str, Any] = {
        "frame_id": frame.frame_id,
        "fidelity": frame.fidelity,
        "cost": float(frame.cost),
        "created_at": frame.created_at.isoformat(),
    }
    for key in _STR_FIELDS:
        value = getattr(frame, key)
        if value not in (None, ""):  # ASE's extxyz writer mangles empty strings
            info[key] = str(value)
    if frame.round is not None:
        info["round"] = int(frame.round)
    if frame.calc:
        info["mfal_calc"] = json.dumps(frame.calc, sort_keys=True, default=str)
        if frame.calc.get("code"):
            info["calc_code"] = str(frame.calc["code"])
    atoms.info.update(info)
    return atoms


def write_extxyz(frames: Iterable[FrameDoc], path: str | Path | Any) -> int:
    """Write ``frames`` to an extxyz file (``path``: file path or an open text stream); returns the count."""
    import ase.io

    images = [frame_to_atoms(f) for f in frames]
    if isinstance(path, str | Path):
        buf = io.StringIO()
        ase.io.write(buf, images, format="extxyz")
        atomic_write_text(path, buf.getvalue())  # nothing half-written
    else:
        ase.io.write(path, images, format="extxyz")
    return len(images)


def atoms_to_frame(
    atoms,
    *,
    fidelity: str | None = None,
    source: str = "import",
    where: str = "atoms",
    raw_frame_id: str | None = None,
) -> FrameDoc:
    """FrameDoc from ASE ``Atoms`` written by :func:`write_extxyz` or another tool.

    ``fidelity``: used when the frame has no ``fidelity`` info; if both are given they must agree.
    ``where`` names the frame in error messages (e.g. ``"data.xyz frame 3"``). ``raw_frame_id``: the id as
    written in the file, for ids that ASE parsed as a number (an all-digit hex id such as ``"0123…"``).
    """
    from pydantic import ValidationError
    from pymatgen.core import Lattice, Structure

    from mfal.store.jsonio import validation_detail

    info = dict(atoms.info)
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    file_fid = info.get("fidelity")
    if file_fid is not None and fidelity is not None and str(file_fid) != fidelity:
        raise DataError(f"{where}: fidelity={file_fid!r} in the file but {fidelity!r} was requested")
    fid = str(file_fid) if file_fid is not None else fidelity
    if fid is None:
        raise DataError(
            f"{where}: no 'fidelity' info key; pass a fidelity (one of {list(DEFAULT_FIDELITIES)})"
        )
    try:
        check_fidelity(fid)
    except UnknownFidelityError as err:
        raise DataError(f"{where}: {err}") from err

    check_finite(atoms.cell[:], "lattice", where)
    check_finite(atoms.positions, "positions", where)
    if not atoms.pbc.all() or atoms.cell.rank != 3:
        raise DataError(f"{where}: needs a periodic 3D cell (pbc={atoms.pbc.tolist()})")
    try:
        structure = Structure(
            Lattice(np.asarray(atoms.cell[:])),
            atoms.get_chemical_symbols(),
            atoms.positions,
            coords_are_cartesian=True,
        )
    except ValueError as err:
        raise DataError(f"{where}: not a valid structure ({err})") from err
    validate_structure(structure, where)

    energy = results.get("energy", info.get("energy"))
    forces = results.get("forces", atoms.arrays.get("forces"))
    magmoms = results.get("magmoms", atoms.arrays.get("magmoms"))
    stress = _stress_gpa(info, results, where)

    calc: dict[str, Any] = {}
    if "mfal_calc" in info:
        try:
            calc = json.loads(str(info["mfal_calc"]))
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: info 'mfal_calc' is not valid JSON ({err})") from err
    elif info.get("calc_code") is not None:
        calc = {"code": str(info["calc_code"])}

    fields: dict[str, Any] = {"energy": None if energy is None else _number(energy, "energy", where)}
    fields["forces"] = forces
    fields["stress"] = stress
    fields["magmoms"] = magmoms
    for key in _STR_FIELDS:
        if info.get(key) is not None:
            fields[key] = str(info[key])
    fields.setdefault("source", source)
    if info.get("round") is not None:
        fields["round"] = _integer(info["round"], "round", where)
    if info.get("cost") is not None:
        fields["cost"] = _number(info["cost"], "cost", where)
    if info.get("created_at") is not None:
        fields["created_at"] = str(info["created_at"])
    frame_id = raw_frame_id if raw_frame_id is not None else info.get("frame_id")
    if isinstance(frame_id, str) and frame_id:
        fields["frame_id"] = frame_id
    elif frame_id is not None:
        logger.warning(
            "%s: frame_id %r is not text; re-deriving it from structure+fidelity+calc", where, frame_id
        )
    try:
        return FrameDoc.from_structure(structure, fidelity=fid, calc=calc, **fields)
    except ValidationError as err:
        raise DataError(f"{where}: not a valid frame: {validation_detail(err)}") from None
    except ValueError as err:
        raise DataError(f"{where}: not a valid frame: {str(err).splitlines()[0]}") from None


def _number(value: Any, field: str, where: str) -> float:
    """``value`` as a float, DataError naming ``field`` if it is not a number (NaN is judged by FrameDoc)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: info {field!r} is {value!r}; expected a number") from None


def _integer(value: Any, field: str, where: str) -> int:
    number = _number(value, field, where)
    if not number.is_integer():
        raise DataError(f"{where}: info {field!r} is {value!r}; expected an integer")
    return int(number)


def _stress_gpa(info: dict, results: dict, where: str) -> np.ndarray | None:
    """3×3 stress (GPa, CHGNet sign) from ``mfal_stress_gpa`` (9 numbers) or ASE's stress (eV/Å³, Voigt)."""
    from ase.stress import voigt_6_to_full_3x3_stress

    if "mfal_stress_gpa" in info:
        try:
            arr = np.asarray(info["mfal_stress_gpa"], dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(
                f"{where}: info 'mfal_stress_gpa' is not numeric; expected 9 numbers (GPa)"
            ) from None
        if arr.size != 9:
            raise DataError(
                f"{where}: info 'mfal_stress_gpa' has {arr.size} numbers; expected 9 (3x3 stress in GPa, row-major)"
            )
        return arr.reshape(3, 3)
    if results.get("stress") is None:
        return None
    try:
        s = np.asarray(results["stress"], dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{where}: stress is not numeric; expected 6 (Voigt) or 9 numbers (eV/Å³)") from None
    if s.shape == (6,):
        return voigt_6_to_full_3x3_stress(s) * EV_A3_TO_GPA
    if s.size == 9:
        return s.reshape(3, 3) * EV_A3_TO_GPA
    raise DataError(f"{where}: stress has {s.size} numbers; expected 6 (Voigt) or 9 (eV/Å³)")


def read_extxyz(
    path: str | Path,
    *,
    fidelity: str | None = None,
    source: str = "import",
    max_bytes: int | None = None,
) -> list[FrameDoc]:
    """Read every frame of an extxyz file as FrameDocs (all frames are validated; any bad one raises DataError).

    ``fidelity``: for frames without a ``fidelity`` info key ("lf"/"hf"; ``None`` or ``"auto"`` = from the file).
    ``source``: for frames without a ``source`` info key. ``max_bytes``: refuse bigger files before reading
    (default :data:`MAX_EXTXYZ_BYTES`).
    """
    return list(iter_extxyz(path, fidelity=fidelity, source=source, max_bytes=max_bytes))


def iter_extxyz(
    path: str | Path,
    *,
    fidelity: str | None = None,
    source: str = "import",
    max_bytes: int | None = None,
) -> Iterator[FrameDoc]:
    """The frames of an extxyz file one at a time (see :func:`read_extxyz`); memory holds one ASE frame."""
    import ase.io

    path = Path(path)
    if fidelity == "auto":
        fidelity = None
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    limit = MAX_EXTXYZ_BYTES if max_bytes is None else max_bytes
    check_file_size(path, limit, "an extxyz file (it is read whole into memory)")
    raw_ids: list[str | None] | None = None
    i = -1
    images = ase.io.iread(path, index=":", format="extxyz")
    while True:
        try:
            atoms = next(images, None)
        except MemoryError:
            raise DataError(f"{path} frame {i + 1}: too large to load into memory") from None
        except Exception as err:  # ASE raises many types (ValueError, IndexError, XYZError, ...) on bad files
            raise DataError(
                f"{path}: not a readable extxyz file (frame {i + 1}: {type(err).__name__}: {err})"
            ) from None
        if atoms is None:
            break
        i += 1
        raw_id = None
        if "frame_id" in atoms.info and not isinstance(atoms.info["frame_id"], str):
            if raw_ids is None:
                raw_ids = _raw_info_values(path, "frame_id") or []
            raw_id = raw_ids[i] if i < len(raw_ids) else None
        yield atoms_to_frame(
            atoms, fidelity=fidelity, source=source, where=f"{path} frame {i}", raw_frame_id=raw_id
        )
    if i < 0:
        raise DataError(f"{path}: contains no frames")


def _raw_info_values(path: Path, key: str) -> list[str | None] | None:
    """The unparsed ``key=value`` of every frame's comment line (ASE turns digit-only strings into numbers)."""
    import re

    pattern = re.compile(rf'(?:^|\s){re.escape(key)}=(?:"([^"]*)"|(\S+))')
    values: list[str | None] = []
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with fh:
        while True:
            try:
                head = fh.readline()
            except UnicodeDecodeError:
                return None
            if not head.strip():
                break
            try:
                natoms = int(head.split()[0])
            except ValueError:
                return None
            m = pattern.search(fh.readline())
            values.append(None if m is None else (m.group(1) if m.group(1) is not None else m.group(2)))
            for _ in range(natoms):
                fh.readline()
    return values
