"""Documents stored by mfal: one :class:`FrameDoc` per labeled frame, one :class:`RoundDoc` per round.

These are the contracts the rest of the system builds on (see DESIGN.md §3); keep them stable.
Units: energy eV (total, per cell), forces eV/Å, stress GPa in CHGNet's sign convention
(= VASP stress × −0.1, i.e. positive = tensile), magnetic moments μB per site, cost core-seconds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymatgen.core import Structure

from mfal.errors import DataError
from mfal.fidelity import DEFAULT_FIDELITIES, fidelity_index
from mfal.store.validate import check_finite, structure_from_dict, validate_structure

FrameStatus = Literal["ok", "failed", "quarantined"]
FrameSource = Literal["vasp", "cp2k", "teacher", "replay", "import"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def structure_fingerprint(structure: Structure, decimals: int = 4) -> str:
    """sha256 of species, lattice (Å) and fractional coordinates rounded to ``decimals``."""
    lat = np.round(structure.lattice.matrix, decimals) + 0.0  # +0.0 folds -0.0 into 0.0
    frac = np.round(np.mod(structure.frac_coords, 1.0), decimals) % 1.0 + 0.0
    payload = {
        "species": [site.species_string for site in structure],
        "lattice": lat.tolist(),
        "frac": frac.tolist(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def make_frame_id(structure: Structure, fidelity: str, calc: dict[str, Any] | None = None) -> str:
    """Stable id of a frame: hash of the rounded structure + fidelity + calculation settings."""
    h = hashlib.sha256()
    h.update(structure_fingerprint(structure).encode())
    h.update(fidelity.encode())
    h.update(json.dumps(calc or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


class CalcSummary(BaseModel):
    """Summary of the calculation settings that produced a frame (enters ``frame_id``)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="vasp, cp2k, chgnet-teacher, replay, ...")
    ispin: int | None = Field(None, description="1 non-spin-polarized, 2 spin-polarized")
    hubbard_u: dict[str, float] = Field(default_factory=dict, description="U_eff per element (eV)")
    magmom_init: list[float] | None = Field(None, description="initial moments per site (μB)")
    functional: str | None = None
    kpoints: str | None = Field(None, description="k-point mesh summary, e.g. 'Gamma 1x1x1'")


class FrameDoc(BaseModel):
    """One labeled (or failed) frame. Energies are totals per cell in eV."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str = Field(description="hash of rounded structure + fidelity + calc settings")
    structure: dict[str, Any] = Field(description="pymatgen Structure.as_dict()")
    structure_id: str = Field(
        "", description="structure fingerprint (structure_fingerprint); derived from the structure, indexed"
    )
    formula: str = Field("", description="reduced formula")
    elements: list[str] = Field(default_factory=list, description="sorted element symbols")
    nsites: int = Field(0, description="number of sites")
    fidelity: str = Field(description="fidelity name, e.g. 'lf' or 'hf'")
    fidelity_index: int = Field(0, description="1-based fidelity index (lf=1, hf=2 as in the paper)")
    energy: float | None = Field(None, description="total energy (eV)")
    forces: list[list[float]] | None = Field(None, description="[n_sites, 3] forces (eV/Å)")
    stress: list[list[float]] | None = Field(None, description="[3, 3] stress (GPa, CHGNet sign)")
    magmoms: list[float] | None = Field(None, description="[n_sites] magnetic moments (μB), HF only")
    source: FrameSource = Field(description="who produced the label")
    status: FrameStatus = Field("ok", description="ok, failed or quarantined")
    status_reason: str | None = Field(None, description="why a frame is failed or quarantined")
    calc: dict[str, Any] = Field(default_factory=dict, description="CalcSummary as dict")
    cost: float = Field(0.0, description="cost of the label (core-seconds)")
    campaign: str | None = None
    round: int | None = Field(None, description="acquisition round that labeled the frame")
    task_dir: str | None = None
    task_id: str | None = None
    created_at: datetime = Field(default_factory=_utcnow)

    @model_validator(mode="after")
    def _derive(self) -> FrameDoc:
        where = f"frame {self.frame_id}"
        try:
            s = structure_from_dict(self.structure, where)
            validate_structure(s, where)
            check_finite(self.cost, "cost", where)
        except DataError as err:
            raise ValueError(str(err)) from None
        n = len(s)
        self.structure_id = structure_fingerprint(
            s
        )  # always derived: a stale or foreign id never joins wrongly
        if not self.formula:
            self.formula = s.composition.reduced_formula
        if not self.elements:
            self.elements = sorted(el.symbol for el in s.composition.elements)
        self.nsites = n
        if self.fidelity_index == 0 and self.fidelity in DEFAULT_FIDELITIES:
            self.fidelity_index = fidelity_index(self.fidelity)
        if self.status == "ok":
            _check_labels(self, n)
        elif not self.status_reason:
            raise ValueError(f"frame {self.frame_id}: status={self.status!r} needs a status_reason")
        return self

    @field_validator("structure", mode="before")
    @classmethod
    def _structure_dict(cls, v: Any) -> Any:
        """Accept a Structure or its dict; normalise to plain JSON types (tuples -> lists)."""
        if isinstance(v, Structure):
            v = v.as_dict()
        return json.loads(json.dumps(v))

    @field_validator("forces", "stress", mode="before")
    @classmethod
    def _to_list(cls, v: Any) -> Any:
        return np.asarray(v, dtype=float).tolist() if v is not None else None

    @field_validator("magmoms", mode="before")
    @classmethod
    def _magmom_list(cls, v: Any) -> Any:
        return np.asarray(v, dtype=float).reshape(-1).tolist() if v is not None else None

    def get_structure(self) -> Structure:
        """The frame's pymatgen Structure."""
        return Structure.from_dict(self.structure)

    @property
    def energy_per_atom(self) -> float | None:
        """Energy per atom (eV/atom)."""
        return None if self.energy is None else self.energy / max(self.nsites, 1)

    @classmethod
    def from_structure(
        cls,
        structure: Structure,
        *,
        fidelity: str,
        source: FrameSource,
        calc: dict[str, Any] | None = None,
        **fields: Any,
    ) -> FrameDoc:
        """Build a FrameDoc; ``frame_id`` is derived from structure, fidelity and calc."""
        calc = dict(calc or {})
        frame_id = fields.pop("frame_id", None) or make_frame_id(structure, fidelity, calc)
        return cls(
            frame_id=frame_id,
            structure=structure.as_dict(),
            fidelity=fidelity,
            source=source,
            calc=calc,
            **fields,
        )


def _check_labels(doc: FrameDoc, n: int) -> None:
    """Raise ValueError naming the frame if an ok frame has malformed or non-finite labels."""
    fid = doc.frame_id
    if doc.energy is not None and not np.isfinite(doc.energy):
        raise ValueError(f"frame {fid}: energy is not finite ({doc.energy})")
    for name, value, shape in (
        ("forces", doc.forces, (n, 3)),
        ("stress", doc.stress, (3, 3)),
        ("magmoms", doc.magmoms, (n,)),
    ):
        if value is None:
            continue
        arr = np.asarray(value, dtype=float)
        if arr.shape != shape:
            raise ValueError(f"frame {fid}: {name} has shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"frame {fid}: {name} contains NaN or inf")


class FidelityStats(BaseModel):
    """Per-fidelity numbers of one round."""

    model_config = ConfigDict(extra="allow")

    n_selected: int = 0
    n_labeled: int = 0
    n_failed: int = 0
    cost: float = Field(0.0, description="label cost spent this round (core-seconds)")
    energy_mae: float | None = Field(None, description="validation energy MAE (eV/atom)")
    force_mae: float | None = Field(None, description="validation force MAE (eV/Å)")
    stress_mae: float | None = Field(None, description="validation stress MAE (GPa)")
    magmom_mae: float | None = Field(None, description="validation magmom MAE (μB)")
    calibration_rho: float | None = Field(
        None,
        description="Spearman ρ of predicted force std vs true force error on the new frames (RoundDoc.calibration "
        "has ρ, miscalibration area and 1σ/2σ coverage per quantity, validation frames included)",
    )
    uncertainty_mean: float | None = Field(None, description="mean candidate force std (calibrated, eV/Å)")
    uncertainty_max: float | None = Field(None, description="max candidate force std (calibrated, eV/Å)")


class RoundDoc(BaseModel):
    """One acquisition round of a campaign."""

    model_config = ConfigDict(extra="forbid")

    campaign: str
    round: int
    state: Literal["running", "done", "failed", "stopped"] = "running"
    stop_reason: str | None = None
    n_candidates: int = 0
    n_out_of_window: int = Field(0, description="candidates above the trust window's hi (likely unphysical)")
    candidate_ids: list[str] = Field(default_factory=list)
    selected: dict[str, list[str]] = Field(default_factory=dict, description="fidelity -> candidate ids")
    selection_reason: dict[str, Any] = Field(default_factory=dict, description="scores, thresholds, budget")
    fidelities: dict[str, FidelityStats] = Field(default_factory=dict)
    checkpoints: list[dict[str, str]] = Field(
        default_factory=list, description="ensemble members: {'path' or 'key', 'sha256'}"
    )
    promoted: bool | None = Field(None, description="did the new ensemble pass the validation gate")
    calibration: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="fidelity -> quantity (forces eV/Å, energy eV/atom, moments μB) -> CalibrationStats dict "
        "(rho, n, miscalibration_area, coverage_1sigma/2sigma, scale, scale_applied) of the round's spread as "
        "used vs the true errors of its new labels and the validation frames; empty in rounds recorded before "
        "calibration",
    )
    uncertainty_scale: dict[str, float] = Field(
        default_factory=dict,
        description="fidelity -> force-spread scale for the next round (calibrated force_std_max = scale × raw, "
        "eV/Å); 1 = uncalibrated",
    )
    wall_time: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    started_at: datetime = Field(default_factory=_utcnow)
    finished_at: datetime | None = None
