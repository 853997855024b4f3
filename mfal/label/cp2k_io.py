"""Parse a CP2K ``cp2k.out`` (plain or gzipped) into a :class:`Cp2kOutput`.

We parse the text ourselves because pymatgen's ``Cp2kOutput`` has no Mulliken parser and a Hirshfeld
regex that breaks above 9 atoms, and atomate2's task document reports forces in Ha/bohr and no moments.
Only the last run in the file counts: a file that holds a restart (several ``PROGRAM STARTED`` headers)
is cut at the last header. Units of the result: energy eV (total), forces eV/Å, stress GPa in CP2K's
pressure-like sign (positive = compressive, as VASP), moments μB, times s.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from monty.io import zopen
from pydantic import BaseModel, ConfigDict, Field

from mfal.errors import DataError

logger = logging.getLogger(__name__)

HA_TO_EV = 27.211386245988
BOHR_TO_ANG = 0.529177210903
HA_PER_BOHR_TO_EV_PER_ANG = HA_TO_EV / BOHR_TO_ANG

_WALLTIME_MARK = "exceeded requested execution time"


class Cp2kOutput(BaseModel):
    """What one CP2K run printed (last run in the file only)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the parsed file")
    completed: bool = Field(False, description="'PROGRAM ENDED' printed")
    uks: bool | None = Field(None, description="spin-unrestricted (UKS) run; None if not printed")
    multiplicity: int | None = Field(None, description="DFT| Multiplicity")
    n_electrons: int | None = Field(None, description="total electrons (sum over spins)")
    elements: list[str] | None = Field(None, description="element per atom from the forces block")
    energy: float | None = Field(None, description="total energy (eV)")
    forces: list[list[float]] | None = Field(None, description="[n_atoms, 3] forces (eV/Å)")
    stress: list[list[float]] | None = Field(None, description="[3, 3] stress (GPa, CP2K sign)")
    magmoms_mulliken: list[float] | None = Field(None, description="[n_atoms] Mulliken spin (μB)")
    magmoms_hirshfeld: list[float] | None = Field(None, description="[n_atoms] Hirshfeld spin (μB)")
    charges_mulliken: list[float] | None = Field(None, description="[n_atoms] Mulliken net charge (e)")
    scf_converged: bool = Field(False, description="last SCF converged (inner and outer loop)")
    scf_steps: int | None = Field(None, description="SCF steps of the last SCF, incl. outer loops")
    plus_u_method: str | None = Field(None, description="DFT+U method printed, e.g. LOWDIN")
    u_eff_ev: list[float] = Field(default_factory=list, description="U_eff per +U kind (eV)")
    walltime_exceeded: bool = Field(False, description="CP2K stopped at its WALLTIME")
    cp2k_time_s: float | None = Field(None, description="CP2K's own total wall time (s)")
    error: str | None = Field(None, description="text of a CP2K [ABORT] box, if any")

    def magmoms(self, method: str) -> list[float] | None:
        """Per-site moments (μB) by ``method`` ('hirshfeld' or 'mulliken')."""
        if method == "hirshfeld":
            return self.magmoms_hirshfeld
        if method == "mulliken":
            return self.magmoms_mulliken
        raise ValueError(f"moment method {method!r} unknown; expected 'hirshfeld' or 'mulliken'")


def find_output(path: str | Path) -> Path:
    """``path`` itself, or ``cp2k.out(.gz)`` inside the directory ``path``."""
    p = Path(path)
    if p.is_dir():
        for name in ("cp2k.out", "cp2k.out.gz"):
            if (p / name).is_file():
                return p / name
        raise DataError(f"{p}: no cp2k.out or cp2k.out.gz in this directory")
    if not p.is_file():
        raise DataError(f"{p}: CP2K output file not found")
    return p


def _read_last_run(fn: Path) -> list[str]:
    try:
        with zopen(fn, "rt", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError) as err:
        raise DataError(f"{fn}: cannot read CP2K output ({err})") from err
    starts = [i for i, line in enumerate(lines) if "PROGRAM STARTED AT" in line]
    return lines[starts[-1] :] if starts else lines


def _last_index(lines: list[str], pred) -> int | None:
    for i in range(len(lines) - 1, -1, -1):
        if pred(lines[i]):
            return i
    return None


def _floats(tokens: list[str]) -> list[float]:
    return [float(t.replace("D", "E")) for t in tokens]


def _parse_forces(lines: list[str]) -> tuple[list[str], list[list[float]]] | None:
    i = _last_index(lines, lambda s: s.strip().startswith("ATOMIC FORCES in [a.u.]"))
    if i is None:
        return None
    elements, forces = [], []
    for line in lines[i + 3 :]:
        parts = line.split()
        if len(parts) != 6 or line.strip().startswith("SUM OF"):
            break
        elements.append(parts[2])
        forces.append([f * HA_PER_BOHR_TO_EV_PER_ANG for f in _floats(parts[3:6])])
    return elements, forces


def _parse_stress(lines: list[str]) -> list[list[float]] | None:
    i = _last_index(lines, lambda s: re.search(r"STRESS\| (Analytical|Numerical) stress tensor \[GPa\]", s))
    if i is None:
        return None
    rows = []
    for line in lines[i + 2 : i + 5]:
        parts = line.split()
        rows.append(_floats(parts[2:5]))  # float() reads Infinity/NaN as printed by CP2K
    return rows


def _parse_mulliken(lines: list[str]) -> tuple[list[float], list[float]] | None:
    i = _last_index(lines, lambda s: "Mulliken Population Analysis" in s)
    if i is None:
        return None
    spins, charges = [], []
    for line in lines[i + 3 :]:
        parts = line.split()
        if not parts or parts[0] == "#":
            break
        vals = _floats(parts[3:])
        if len(vals) == 4:  # UKS: pop alpha, pop beta, net charge, spin moment
            charges.append(vals[2])
            spins.append(vals[3])
        else:  # RKS: population, net charge
            charges.append(vals[-1])
            spins.append(0.0)
    return spins, charges


def _parse_hirshfeld(lines: list[str]) -> list[float] | None:
    i = _last_index(lines, lambda s: s.strip() == "Hirshfeld Charges")
    if i is None:
        return None
    spins = []
    for line in lines[i + 3 :]:
        parts = line.split()
        if not parts or parts[0] == "Total":
            break
        vals = _floats(parts[3:])
        # UKS: ref charge, pop alpha, pop beta, spin moment, net charge; RKS: ref, population, net
        spins.append(vals[3] if len(vals) == 5 else 0.0)
    return spins


def _parse_scf(lines: list[str]) -> tuple[bool, int | None]:
    """(converged, steps) of the last SCF: OT outer loops count all inner steps."""
    i = _last_index(
        lines,
        lambda s: (
            "SCF run converged in" in s
            or "SCF run NOT converged" in s
            or "outer SCF loop converged in" in s
            or "outer SCF loop FAILED to converge" in s
        ),
    )
    if i is None:
        return False, None
    line = lines[i]
    if "outer SCF loop" in line:
        m = re.search(r"(\d+)\s+iterations or\s+(\d+)\s+steps", line)
        return "FAILED" not in line, int(m.group(2)) if m else None
    m = re.search(r"in\s+(\d+)\s+steps", line)
    steps = int(m.group(1)) if m else _count_scf_steps(lines, i)
    return "NOT converged" not in line, steps


def _count_scf_steps(lines: list[str], end: int) -> int | None:
    start = _last_index(lines[:end], lambda s: "Step     Update method" in s)
    if start is None:
        return None
    return sum(1 for s in lines[start + 2 : end] if re.match(r"\s+\d+\s+\S", s))


def _parse_abort(lines: list[str]) -> str | None:
    i = _last_index(lines, lambda s: "[ABORT]" in s)
    if i is None:
        return None
    text = []
    for line in lines[i : i + 8]:
        if line.strip().startswith("****"):
            break
        body = line.strip().strip("*").strip()
        body = re.sub(r"^(\[ABORT\]|\\___/|\|\s*$|O/\||/\| \||/ \\)", "", body).strip()
        if body:
            text.append(body)
    return " ".join(" ".join(text).split())


def _electrons(lines: list[str], uks: bool | None) -> int | None:
    vals = [int(s.split()[-1]) for s in lines if s.strip().startswith("Number of electrons:")]
    if not vals:
        return None
    return vals[-1] + vals[-2] if uks and len(vals) >= 2 else vals[-1]


def parse_cp2k_output(path: str | Path) -> Cp2kOutput:
    """Parse ``cp2k.out`` (or the directory holding it); raises DataError if the file is unreadable."""
    fn = find_output(path)
    lines = _read_last_run(fn)
    out: dict = {"path": str(fn)}
    out["completed"] = any("PROGRAM ENDED AT" in s for s in lines[-60:])
    if any("Spin unrestricted (spin-polarized) Kohn-Sham" in s for s in lines):
        out["uks"] = True
    elif any("Spin restricted Kohn-Sham (RKS)" in s for s in lines):
        out["uks"] = False
    mult = [s.split()[-1] for s in lines if s.strip().startswith("DFT| Multiplicity")]
    if mult and mult[-1].isdigit():
        out["multiplicity"] = int(mult[-1])
    out["n_electrons"] = _electrons(lines, out.get("uks"))
    energies = [s.split()[-1] for s in lines if "ENERGY| Total FORCE_EVAL ( QS ) energy" in s]
    if energies:
        out["energy"] = float(energies[-1]) * HA_TO_EV
    if (forces := _parse_forces(lines)) is not None:
        out["elements"], out["forces"] = forces
    out["stress"] = _parse_stress(lines)
    if (mull := _parse_mulliken(lines)) is not None:
        out["magmoms_mulliken"], out["charges_mulliken"] = mull
    out["magmoms_hirshfeld"] = _parse_hirshfeld(lines)
    out["scf_converged"], out["scf_steps"] = _parse_scf(lines)
    method = [s.split()[-1] for s in lines if s.startswith(" DFT+U| Method")]
    out["plus_u_method"] = method[-1] if method else None
    out["u_eff_ev"] = [float(s.split()[-1]) for s in lines if "U(eff) = (U - J) value in [eV]" in s]
    out["walltime_exceeded"] = any(_WALLTIME_MARK in s for s in lines)
    timing = [s for s in lines if re.match(r"\s*CP2K\s+1\s+1\.0\s", s)]
    if timing:
        out["cp2k_time_s"] = float(timing[-1].split()[-1])
    out["error"] = _parse_abort(lines)
    result = Cp2kOutput(**out)
    logger.debug("parsed %s: completed=%s scf=%s", fn, result.completed, result.scf_converged)
    return result


def error_tail(run_dir: Path, n_lines: int = 12) -> str:
    """Last non-empty lines of cp2k.out and std_err.txt in ``run_dir``, joined for a status reason."""
    parts = []
    for name in ("cp2k.out", "std_err.txt"):
        fn = run_dir / name
        if fn.is_file():
            text = [s.strip() for s in fn.read_text(errors="replace").splitlines() if s.strip()]
            if text:
                parts.append(f"{name}: " + " | ".join(text[-n_lines:]))
    return " || ".join(parts) if parts else "no output written"
