"""Structures in, input files out: read structures to label, and write a DFT labeler's inputs without running.

- :func:`read_structures`: POSCAR/CONTCAR/*.vasp, CIF, extxyz/xyz (every frame), pymatgen JSON; a file that
  cannot be read becomes one :class:`DataError` line naming it.
- :func:`write_inputs`: exactly the input files the VASP or CP2K labeler would run (one folder per structure),
  runs nothing, and returns a one-line summary per structure (ISPIN, +U, MAGMOM / multiplicity).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from mfal.errors import ConfigError, DataError
from mfal.fidelity import DEFAULT, Fidelities
from mfal.fileio import atomic_write_text, read_json

EXTXYZ_SUFFIXES = (".xyz", ".extxyz")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def _read_json(path: Path) -> list[Structure]:
    data = read_json(path)
    items = data if isinstance(data, list) else [data]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and "structure" in item and "lattice" not in item:
            item = item["structure"]  # a FrameDoc or a task document
        try:
            out.append(Structure.from_dict(item))
        except Exception as err:
            raise DataError(f"{path}: entry {i} is not a pymatgen Structure dict ({_one_line(err)})") from err
    return out


def _read_extxyz(path: Path) -> list[Structure]:
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    images = ase.io.read(str(path), index=":")
    out = []
    for i, atoms in enumerate(images):
        if not all(atoms.pbc) or atoms.cell.rank < 3:
            raise DataError(f"{path}: frame {i} has no 3D periodic cell (need Lattice= and pbc)")
        out.append(AseAtomsAdaptor.get_structure(atoms))
    return out


def read_structures(path: str | Path) -> list[Structure]:
    """All structures in one file (extxyz: every frame); malformed or missing file -> DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such structure file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix == ".json":
                structures = _read_json(path)
            elif path.suffix in EXTXYZ_SUFFIXES:
                structures = _read_extxyz(path)
            else:
                structures = [Structure.from_file(str(path))]
    except DataError:
        raise
    except Exception as err:
        raise DataError(
            f"{path}: not a readable structure file (POSCAR, CIF, extxyz or JSON expected; {_one_line(err)})"
        ) from err
    if not structures:
        raise DataError(f"{path}: contains no structures")
    for s in structures:
        if len(s) == 0:
            raise DataError(f"{path}: contains an empty structure")
        if not s.is_ordered:
            raise DataError(
                f"{path}: structure {s.composition} is disordered (partial occupancies); order it first"
            )
    return structures


def write_inputs(
    labeler_spec: Any,
    fidelity: str,
    structures: Sequence[Structure],
    out_dir: str | Path,
    *,
    ordering: str | None = None,
    magmom_source: str | None = None,
    fidelities: Fidelities = DEFAULT,
) -> list[str]:
    """Write the inputs the labeler would run at ``fidelity`` into ``out_dir/NNN_<formula>/``; run nothing.

    ``labeler_spec``: a LabelerSpec, its dict (``{kind: vasp, options: {...}}``) or a kind name (vasp, cp2k).
    ``ordering`` overrides the spec's magnetic ordering (fm, afm, afm-a|b|c, or a sign string).
    ``magmom_source`` overrides the spec's moment source: ``chemistry`` (oxidation-state high spin), ``table``,
    ``oxidation``, or ``model:CHECKPOINT`` (|m| predicted by that checkpoint's HF moment head, signs from the
    ordering); a checkpoint that is missing or unreadable is a ConfigError naming the option.
    VASP: INCAR, KPOINTS, POSCAR, POTCAR.spec; CP2K: cp2k.inp (+ BASIS/POTENTIAL references). Returns one line
    per structure, also written to ``out_dir/inputs.txt``.
    """
    from mfal.label.base import validate_structures
    from mfal.label.config import parse_labeler_spec

    spec = parse_labeler_spec({"kind": labeler_spec} if isinstance(labeler_spec, str) else labeler_spec)
    if spec.kind not in ("vasp", "cp2k"):
        raise ConfigError(f"labeler={spec.kind!r} writes no input files (only vasp and cp2k do)")
    fidelities.check(fidelity)
    if ordering is not None:
        from mfal.label.magmoms import check_ordering

        try:
            check_ordering(ordering)
        except ValueError as err:
            raise ConfigError(f"--ordering: {err}") from None
        spec = spec.model_copy(update={"options": spec.options.model_copy(update={"ordering": ordering})})
    validate_structures(structures, spec.kind)
    if magmom_source is not None:
        structures, source = _moment_source(magmom_source, structures, fidelity, fidelities)
        spec = spec.model_copy(update={"options": spec.options.model_copy(update={"magmom_source": source})})
    root = Path(out_dir)
    writer = _write_vasp if spec.kind == "vasp" else _write_cp2k
    lines = []
    for i, structure in enumerate(structures):
        folder = root / f"{i:03d}_{structure.composition.reduced_formula}"
        folder.mkdir(parents=True, exist_ok=True)
        lines.append(f"{folder.name}: " + writer(spec.options, fidelity, structure, folder, fidelities))
    atomic_write_text(root / "inputs.txt", "".join(f"{line}\n" for line in lines))
    return lines


#: plain --magmom-source values (besides model:CHECKPOINT)
CHEMISTRY_SOURCES = ("chemistry", "table", "oxidation")


def _moment_source(
    value: str, structures: Sequence[Structure], fidelity: str, fidelities: Fidelities
) -> tuple[list[Structure], str]:
    """(structures, source) for ``--magmom-source``: model:CKPT attaches the checkpoint's predicted moments."""
    from mfal.label.magmoms import attach_predicted, predict_magmoms

    if value in CHEMISTRY_SOURCES:
        return list(structures), value
    if not value.startswith("model:") or not value[len("model:") :]:
        raise ConfigError(
            f"--magmom-source={value!r}: expected one of {list(CHEMISTRY_SOURCES)} or model:CHECKPOINT"
        )
    path = Path(value[len("model:") :]).expanduser()
    if not path.is_file():
        raise ConfigError(f"--magmom-source {value}: checkpoint {path} does not exist")
    if not fidelities.is_magnetic(fidelity):
        return list(structures), "model"  # no initial moments at a non-magnetic fidelity
    try:
        predicted = predict_magmoms(path, structures, fidelity)
    except (DataError, ConfigError) as err:  # unreadable checkpoint, or a model without a magnetic fidelity
        raise ConfigError(f"--magmom-source {value}: {err}") from None
    return [attach_predicted(s, m) for s, m in zip(structures, predicted, strict=True)], "model"


def _u_text(u_by_element: dict[str, float]) -> str:
    nonzero = {el: u for el, u in u_by_element.items() if u}
    return " ".join(f"{el}={u:g}" for el, u in sorted(nonzero.items())) or "none"


def _write_vasp(
    options: Any, fidelity: str, structure: Structure, folder: Path, fidelities: Fidelities
) -> str:
    from mfal.label.magmoms import summary
    from mfal.label.vasp import VaspLabeler, _prepare

    labeler = VaspLabeler(options, fidelities=fidelities)
    prepared, record = _prepare(structure, fidelity, None, options, fidelities)
    generator = labeler.maker(fidelity).input_set_generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POTCAR/KPOINTS notices: the spec file is what we write
        input_set = generator.get_input_set(prepared, potcar_spec=True)
        input_set.write_input(str(folder))
    incar = input_set.incar
    elements = [site.specie.symbol for site in prepared]
    species = list(dict.fromkeys(elements))
    u = dict(zip(species, incar.get("LDAUU", [0] * len(species)), strict=False)) if incar.get("LDAU") else {}
    magmom = incar.get("MAGMOM") if int(incar.get("ISPIN", 1)) == 2 else None
    ordering = f" ordering={record['ordering']} source={record['magmom_source']}" if record else ""
    return f"vasp {fidelity} ISPIN={incar.get('ISPIN', 1)} +U {_u_text(u)} MAGMOM={summary(magmom)}{ordering}"


def _write_cp2k(
    options: Any, fidelity: str, structure: Structure, folder: Path, fidelities: Fidelities
) -> str:
    from mfal.label.cp2k_input import electron_count, moments_and_record, multiplicity, write_cp2k_input
    from mfal.label.cp2k_settings import default_data_dir
    from mfal.label.magmoms import summary

    magnetic = fidelities.is_magnetic(fidelity)
    magmoms, record = moments_and_record(structure, options) if magnetic else (None, None)
    data_dir = Path(options.data_dir).expanduser() if options.data_dir else default_data_dir()
    n_el = electron_count(structure, options)
    odd = n_el % 2 == 1
    # the first rung of the SCF ladder is what the labeler runs first (without +U: smeared RKS, not OT)
    plus_u = options.plus_u_on(structure.symbol_set)
    first = options.rungs(options.treatment(n_el, magnetic), plus_u=plus_u)[0]
    write_cp2k_input(
        structure, fidelity, first.settings, folder, magmoms=magmoms, data_dir=data_dir, magnetic=magnetic
    )
    roks = odd and options.odd_restricted == "roks" and first.settings.ot
    spin = "UKS" if magnetic else ("ROKS" if roks else "RKS")
    mult = multiplicity(n_el, magmoms) if magnetic else (2 if spin == "ROKS" else 1)
    u = {el: v for el, v in options.hubbard_u.items() if el in structure.symbol_set}
    failing = not magnetic and odd and options.odd_restricted == "fail"
    note = f" (odd electron count {n_el}: the RKS label would fail)" if failing else ""
    ordering = f" ordering={record['ordering']}" if record else ""
    return (
        f"cp2k {fidelity} {spin} multiplicity={mult} +U {_u_text(u)} "
        f"MAGNETIZATION={summary(magmoms)}{ordering}{note}"
    )
