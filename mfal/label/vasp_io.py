"""VASP outputs -> FrameDocs: every ionic step one frame, with per-site moments and quality gates.

One parser for everything VASP (``mfal import`` and the ``vasp`` labeler both call :func:`parse_vasp_dir`).

- energy: total energy (eV per cell) extrapolated to σ→0 (``e_0_energy``), with the fix pymatgen applies to
  ``Vasprun.final_energy`` for the VASP 5.x vasprun bug that writes a wrong per-step ``e_0_energy``
  (``e_fr_energy + (e_0 − e_fr)`` of the step's last SCF iteration); for ISMEAR=−5 both are equal;
- forces eV/Å; stress: vasprun kBar → GPa in CHGNet's sign convention (× −0.1);
- per-site moments (μB): the ``tot`` column of the OUTCAR ``magnetization (x)`` table that VASP (LORBIT ≥ 10)
  writes before each step's ``POSITION … TOTAL-FORCE`` block, so *every* ionic step gets its own moments; if the
  tables cannot be matched to the steps, only the last step gets moments (``Outcar.magnetization``);
- quality gates (:mod:`mfal.label.quality`): SCF at NELM in any step, walltime stops, implausible forces, HF
  moments collapsed/flipped against the intended MAGMOM, LF runs that were spin-polarized → ``quarantined``.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monty.io import zopen
from pymatgen.core import Structure

from mfal.errors import DataError
from mfal.fidelity import DEFAULT, Fidelities
from mfal.label.quality import QualityConfig, apply_quality, check_electronic
from mfal.store.docs import FrameDoc, FrameSource, make_frame_id

log = logging.getLogger(__name__)

KBAR_TO_GPA_CHGNET = -0.1  # VASP stress (kBar) -> CHGNet stress (GPa, sign flipped)
_TABLE_RE = re.compile(r"^\s*magnetization \(x\)")
_POSITION_RE = re.compile(r"^\s*POSITION\s+TOTAL-FORCE")


def find_file(directory: Path, stem: str) -> Path | None:
    """``stem``, ``stem.gz`` (or other compression), or pymatgen-style ``vasprun.*.xml.gz`` in ``directory``."""
    for suffix in ("", ".gz", ".bz2", ".xz", ".lzma"):
        p = directory / f"{stem}{suffix}"
        if p.is_file():
            return p
    if stem == "vasprun.xml":
        found = sorted(directory.glob("vasprun*.xml*"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise DataError(f"{directory}: several vasprun files {[p.name for p in found]}; expected one")
    return None


def _vasp_dir(path: Path) -> Path:
    """The directory holding the outputs: ``path`` itself, or its ``outputs/`` (atomate2 golden layout)."""
    if path.is_file():
        return path.parent
    if not path.is_dir():
        raise DataError(f"{path}: no such VASP run directory")
    if find_file(path, "vasprun.xml") is None and (path / "outputs").is_dir():
        return path / "outputs"
    return path


def read_vasprun(path: Path) -> Any:
    """pymatgen Vasprun without DOS/eigenvalues/POTCAR; unreadable or truncated file -> DataError naming it."""
    from pymatgen.io.vasp import Vasprun

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unconverged-run warnings: the quality gates report those
            return Vasprun(
                str(path),
                parse_dos=False,
                parse_eigen=False,
                parse_projected_eigen=False,
                parse_potcar_file=False,
                exception_on_bad_xml=True,
            )
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise DataError(
            f"{path}: cannot parse vasprun.xml ({type(err).__name__}: {first}); truncated or corrupt?"
        ) from err


def outcar_step_moments(path: Path) -> list[np.ndarray]:
    """Per-ionic-step site moments (μB, ``tot`` column) from an OUTCAR, one array per ``POSITION`` block.

    VASP prints the ``magnetization (x)`` table of a step before that step's forces; the last table (after the
    final forces) repeats the last step and is ignored. Returns ``[]`` when the OUTCAR has no tables.
    """
    steps: list[np.ndarray] = []
    current: list[float] | None = None
    last_table: np.ndarray | None = None
    in_table = False
    with zopen(str(path), "rt") as fh:
        for line in fh:
            if _TABLE_RE.match(line):
                in_table, current = True, []
                continue
            if in_table:
                parts = line.split()
                if parts and parts[0].isdigit() and current is not None:
                    current.append(float(parts[-1]))
                elif parts and parts[0] == "tot":
                    last_table, in_table = np.asarray(current, dtype=float), False
                continue
            if _POSITION_RE.match(line) and last_table is not None:
                steps.append(last_table)
                last_table = None
    return steps


def _read_outcar_moments(path: Path, n_steps: int, n_sites: int) -> list[np.ndarray | None]:
    """Moments per ionic step; falls back to the last step only (``Outcar.magnetization``)."""
    try:
        steps = outcar_step_moments(path)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: cannot read the magnetization tables ({err})") from err
    if len(steps) == n_steps and all(len(m) == n_sites for m in steps):
        return list(steps)
    from pymatgen.io.vasp import Outcar

    try:
        mag = Outcar(str(path)).magnetization
    except Exception as err:
        raise DataError(f"{path}: cannot parse OUTCAR ({type(err).__name__}: {err})") from err
    out: list[np.ndarray | None] = [None] * n_steps
    if mag and len(mag) == n_sites:
        out[-1] = np.asarray([site["tot"] for site in mag], dtype=float)
    log.info(
        "%s: per-step moments not matched (%d tables, %d steps): last step only", path, len(steps), n_steps
    )
    return out


def outcar_cost(directory: str | Path) -> float | None:
    """Core-seconds of a VASP run from its OUTCAR: elapsed wall time × cores (None if not recorded)."""
    outcar = find_file(Path(directory), "OUTCAR")
    if outcar is None:
        return None
    elapsed = cores = None
    with zopen(str(outcar), "rt") as fh:
        for line in fh:
            if cores is None and "total cores" in line:
                m = re.search(r"running on\s+(\d+)\s+total cores", line)
                cores = int(m.group(1)) if m else None
            elif "Elapsed time (sec):" in line:
                elapsed = float(line.split(":")[1])
    if elapsed is None:
        return None
    return elapsed * (cores or 1)


def _walltime_hit(directory: Path) -> bool:
    """A STOPCAR, or a custodian.json whose corrections name the WalltimeHandler."""
    if find_file(directory, "STOPCAR") is not None:
        return True
    cj = find_file(directory, "custodian.json")
    if cj is None:
        return False
    try:
        with zopen(str(cj), "rt") as fh:
            text = fh.read()
        json.loads(text)
    except (OSError, ValueError) as err:
        raise DataError(f"{cj}: not valid JSON ({err})") from err
    return "WalltimeHandler" in text


def _kpoints_summary(vrun: Any) -> str | None:
    kp = getattr(vrun, "kpoints", None)
    if kp is None:
        return None
    style = getattr(kp.style, "name", str(kp.style))
    if kp.kpts and len(kp.kpts) == 1 and len(kp.kpts[0]) == 3:
        return f"{style} {'x'.join(str(int(k)) for k in kp.kpts[0])}"
    return f"{style} {len(vrun.actual_kpoints)} kpoints"


def calc_summary(vrun: Any) -> dict[str, Any]:
    """Settings summary of a VASP run (enters ``frame_id``): ISPIN, U per element, initial MAGMOM, k-points."""
    params = vrun.parameters
    ispin = int(params.get("ISPIN", 1))
    magmom = vrun.incar.get("MAGMOM") if ispin == 2 else None
    return {
        "code": "vasp",
        "ispin": ispin,
        "hubbard_u": {el: float(u) for el, u in (vrun.hubbards or {}).items() if u},
        "magmom_init": [float(m) for m in magmom] if magmom is not None else None,
        "functional": vrun.run_type,
        "kpoints": _kpoints_summary(vrun),
        "encut": float(params.get("ENCUT", 0.0)) or None,
        "potcars": list(vrun.potcar_symbols),
        "energy_key": "e_0_energy",
    }


def _step_energy(step: dict[str, Any]) -> float:
    """σ→0 energy of one ionic step (eV), fixing the VASP 5.x per-step e_0_energy bug like pymatgen does."""
    e0, efr = step["e_0_energy"], step["e_fr_energy"]
    esteps = step.get("electronic_steps") or []
    if esteps and "e_0_energy" in esteps[-1] and "e_fr_energy" in esteps[-1]:
        fixed = round(esteps[-1]["e_0_energy"] - esteps[-1]["e_fr_energy"] + efr, 8)
        if abs(fixed - e0) > 1e-7:
            return float(fixed)
    return float(e0)


def detect_fidelity(
    ispin: int,
    moments: Sequence[np.ndarray | None],
    structure: Structure,
    quality: QualityConfig,
    fidelities: Fidelities = DEFAULT,
) -> str:
    """The high fidelity (hf) for a spin-polarized run (ISPIN=2), the low one (lf) for ISPIN=1.

    A spin-polarized run of a cell without magnetic elements whose moments all vanish (≤ ``lf_max_moment``)
    is physically a non-magnetic calculation and is taken as lf.
    """
    if ispin != 2:
        return fidelities.low
    known = [m for m in moments if m is not None]
    has_magnetic = any(el.symbol in quality.min_moment for el in structure.composition.elements)
    if known and not has_magnetic and all(np.abs(m).max() <= quality.lf_max_moment for m in known):
        return fidelities.low
    return fidelities.high


def parse_vasp_dir(
    path: str | Path,
    *,
    fidelity: str = "auto",
    source: FrameSource = "import",
    intended_magmoms: Sequence[float] | None = None,
    quality: QualityConfig | None = None,
    require_outcar: bool = False,
    cost: float | None = None,
    fidelities: Fidelities = DEFAULT,
    extra_calc: dict[str, Any] | None = None,
    **fields: Any,
) -> list[FrameDoc]:
    """Frames of one VASP run directory (or its vasprun file): one FrameDoc per ionic step.

    ``fidelity``: "lf", "hf" or "auto" (ISPIN=2 → hf, ISPIN=1 → lf). ``intended_magmoms`` (μB per site) is the
    spin state the HF gate checks against; default: the run's own INCAR MAGMOM. A spin-polarized run without an
    OUTCAR has no site moments: its HF frames are quarantined (spin state unverifiable), or with
    ``require_outcar=True`` a DataError names the missing file. ``cost`` (core-seconds of the whole run; default
    from the OUTCAR: elapsed time × cores) is spread evenly over the frames. ``frame_id`` hashes structure, fidelity, calc and the ionic-step index, so
    re-importing a run gives the same ids. Other ``fields`` (campaign, round, task_id, ...) go into every FrameDoc.
    ``fidelities`` gives the names (and which are spin-polarized); ``extra_calc`` (e.g. the labeler's ``ordering``)
    is merged into every frame's ``calc``. A missing/truncated/corrupt vasprun raises :class:`DataError` naming the file.
    """
    quality = quality or QualityConfig()
    directory = _vasp_dir(Path(path))
    vasprun_path = Path(path) if Path(path).is_file() else find_file(directory, "vasprun.xml")
    if vasprun_path is None:
        raise DataError(f"{directory}: no vasprun.xml(.gz) found (expected a VASP run directory)")
    vrun = read_vasprun(vasprun_path)
    steps = vrun.ionic_steps
    if not steps:
        raise DataError(f"{vasprun_path}: no ionic steps (run crashed before the first step?)")

    calc = {**calc_summary(vrun), **(extra_calc or {})}
    ispin = calc["ispin"]
    n_sites = len(steps[0]["structure"])
    outcar = find_file(directory, "OUTCAR")
    if ispin == 2 and outcar is not None:
        moments = _read_outcar_moments(outcar, len(steps), n_sites)
    else:
        if ispin == 2 and require_outcar:
            raise DataError(
                f"{directory}: OUTCAR missing (needed for the site moments of a spin-polarized run)"
            )
        moments = [None] * len(steps)

    if fidelity == "auto":
        fidelity = detect_fidelity(ispin, moments, steps[-1]["structure"], quality, fidelities)
    magnetic = fidelities.is_magnetic(fidelity)
    if intended_magmoms is None and magnetic:
        intended_magmoms = calc["magmom_init"]
    if intended_magmoms is not None and len(intended_magmoms) != n_sites:
        raise DataError(
            f"{directory}: intended_magmoms has {len(intended_magmoms)} values, expected {n_sites} sites"
        )

    nelm = int(vrun.parameters.get("NELM", 60))
    walltime = _walltime_hit(directory)
    if cost is None:
        cost = outcar_cost(directory)
    per_frame_cost = (cost or 0.0) / len(steps)
    frames: list[FrameDoc] = []
    for i, step in enumerate(steps):
        structure = step["structure"]
        step_moments = moments[i]
        doc = FrameDoc.from_structure(
            structure,
            # the step index enters the id: the last steps of a relaxation can agree to 1e-4 Å
            frame_id=make_frame_id(structure, fidelity, {**calc, "ionic_step": i}),
            fidelity=fidelity,
            source=source,
            calc=calc,
            energy=_step_energy(step),
            forces=np.asarray(step["forces"], dtype=float),
            stress=np.asarray(step["stress"], dtype=float) * KBAR_TO_GPA_CHGNET,
            magmoms=step_moments if magnetic else None,
            task_dir=str(directory),
            cost=per_frame_cost,
            **fields,
        )
        last = i == len(steps) - 1
        scf_reason = check_electronic(len(step.get("electronic_steps") or []), nelm, step=i + 1)
        doc = apply_quality(
            doc,
            intended_magmoms=intended_magmoms,
            electronic_converged=scf_reason or True,
            ionic_converged=vrun.converged_ionic if last else None,
            walltime_hit=walltime and last,
            ispin=ispin,
            config=quality,
            magnetic=magnetic,
        )
        if magnetic and step_moments is None and doc.status == "ok":
            # no table for this step (only the last step had one): the spin state is unverifiable
            reason = "no site moments for this ionic step in OUTCAR"
            doc = doc.model_copy(update={"status": "quarantined", "status_reason": reason})
        elif magnetic and outcar is None and doc.status_reason and "no site moments" in doc.status_reason:
            doc = doc.model_copy(
                update={"status_reason": f"{doc.status_reason} (OUTCAR missing in {directory})"}
            )
        frames.append(doc)
    log.info(
        "%s: %d frames (%s), %d quarantined",
        vasprun_path,
        len(frames),
        fidelity,
        sum(f.status != "ok" for f in frames),
    )
    return frames


def parse_task_dir(dir_name: str | Path, **kwargs: Any) -> list[FrameDoc]:
    """:func:`parse_vasp_dir` of an atomate2 TaskDoc's ``dir_name`` (``"host:/path"`` or a plain path)."""
    text = str(dir_name)
    if ":" in text and not Path(text).exists():
        host, _, rest = text.partition(":")
        if "/" not in host:
            text = rest
    return parse_vasp_dir(text, **kwargs)


def oszicar_convergence(directory: str | Path, nelm: int | None = None) -> list[str | None]:
    """Per ionic step of an OSZICAR: ``None`` if the SCF converged, else the reason (SCF at NELM).

    ``nelm`` defaults to the directory's INCAR NELM (VASP default 60). Useful when a run left no vasprun.xml.
    """
    from pymatgen.io.vasp import Incar, Oszicar

    directory = Path(directory)
    osz = find_file(directory, "OSZICAR")
    if osz is None:
        raise DataError(f"{directory}: no OSZICAR found")
    if nelm is None:
        incar = find_file(directory, "INCAR")
        nelm = int(Incar.from_file(str(incar)).get("NELM", 60)) if incar else 60
    try:
        ionic = Oszicar(str(osz)).electronic_steps
    except Exception as err:
        raise DataError(f"{osz}: cannot parse OSZICAR ({type(err).__name__}: {err})") from err
    return [check_electronic(len(esteps), nelm, step=i + 1) for i, esteps in enumerate(ionic)]
