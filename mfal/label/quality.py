"""Quality gates for labels: a frame that fails one is ``quarantined`` with its reason and never trained on.

Small pure functions; each returns ``None`` when the check passes, else a one-line reason. :func:`check_frame`
combines them for one frame and :func:`apply_quality` returns the frame with status and reason set.

Checks (thresholds in :class:`QualityConfig`):

- electronic convergence: an SCF loop that ran ``NELM`` steps is *not* converged, even when the run
  "terminated normally" (VASP then just moves on);
- ionic convergence (relaxations): recorded; quarantines only with ``quarantine_ionic_unconverged`` because every
  ionic step with a converged SCF is a valid single-point label;
- walltime stops (custodian returns normally then): the interrupted step is quarantined;
- forces finite and plausible (max |F| below ``max_force`` eV/Å), energy finite;
- HF: moments on the magnetic elements (Fe, Mn by default) high-spin (≥ ``min_moment`` μB), no flipped sign
  against the intended moment, total moment on those sites within ``max_total_moment_change`` μB of the guess;
- LF: really non-spin-polarized (ISPIN=1, or all |m| ≤ ``lf_max_moment`` μB).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mfal.fidelity import MAGNETIC_FIDELITIES
from mfal.store.docs import FrameDoc

Status = Literal["ok", "failed", "quarantined"]


class QualityConfig(BaseModel):
    """Thresholds of the quality gates."""

    model_config = ConfigDict(extra="forbid")

    max_force: float = Field(50.0, gt=0, description="largest plausible |F| on any atom (eV/Å)")
    min_moment: dict[str, float] = Field(
        default_factory=lambda: {"Fe": 2.5, "Mn": 2.5},
        description="per magnetic element: smallest |m| of a high-spin site (μB); below = collapse / lost moment",
    )
    sign_check_moment: float = Field(
        1.0, ge=0, description="intended |m| (μB) above which a flipped sign on the site is flagged"
    )
    max_total_moment_change: float = Field(
        2.0, ge=0, description="largest |Σm - Σm_intended| over the magnetic-element sites (μB)"
    )
    lf_max_moment: float = Field(
        0.05, ge=0, description="largest |m| (μB) an LF (non-magnetic) frame may carry"
    )
    quarantine_ionic_unconverged: bool = Field(
        False, description="also quarantine the steps of a relaxation that did not reach its force criterion"
    )


#: reason fragments (from the checks below) of a spin-state problem that another ordering / moment guess may fix
SPIN_PROBLEMS: dict[str, tuple[str, ...]] = {
    "collapsed": ("low-spin collapse",),
    "flipped": ("spin flipped against the intended order", "total moment on magnetic sites"),
    "unconverged": ("electronic SCF",),
}
#: reason fragments that another INCAR (retry_incar_settings), not another spin state, may fix
SCF_PROBLEMS: tuple[str, ...] = ("electronic SCF", "walltime handler")


def spin_problems(reason: str | None) -> list[str]:
    """Kinds of spin-state problem (collapsed, flipped, unconverged) named in a quality ``reason``; [] if none."""
    if not reason:
        return []
    return [kind for kind, marks in SPIN_PROBLEMS.items() if any(m in reason for m in marks)]


def is_scf_problem(reason: str | None) -> bool:
    """The reason names an SCF/walltime problem (the INCAR retry's business)."""
    return bool(reason) and any(m in reason for m in SCF_PROBLEMS)


def check_electronic(n_scf: int, nelm: int | None, *, step: int | None = None) -> str | None:
    """An SCF loop of ``n_scf`` steps with limit ``nelm``: at the limit = not converged."""
    if nelm is not None and n_scf >= nelm:
        where = f" in ionic step {step}" if step is not None else ""
        return f"electronic SCF hit NELM={nelm}{where} (not converged)"
    return None


def check_forces(forces: Any, config: QualityConfig | None = None) -> tuple[Status, str | None]:
    """Forces [n, 3] (eV/Å): finite and max |F| below ``config.max_force``."""
    config = config or QualityConfig()
    arr = np.asarray(forces, dtype=float)
    if arr.size and not np.all(np.isfinite(arr)):
        return "quarantined", "forces contain NaN or inf"
    fmax = float(np.linalg.norm(arr.reshape(-1, 3), axis=1).max()) if arr.size else 0.0
    if fmax >= config.max_force:
        return "quarantined", f"max |F| = {fmax:.1f} eV/Å ≥ max_force={config.max_force} eV/Å (implausible)"
    return "ok", None


def check_hf_moments(
    magmoms: Sequence[float] | None,
    species: Sequence[str],
    intended_magmoms: Sequence[float] | None = None,
    config: QualityConfig | None = None,
) -> str | None:
    """HF moments (μB per site) consistent with the intended high-spin state on the magnetic elements."""
    config = config or QualityConfig()
    mag_sites = [i for i, el in enumerate(species) if el in config.min_moment]
    if not mag_sites:
        return None
    if magmoms is None:
        elements = ", ".join(sorted({species[i] for i in mag_sites}))
        return f"no site moments to check the spin state of {elements} (HF needs ISPIN=2 and LORBIT≥10)"
    m = np.asarray(magmoms, dtype=float)
    low = [i for i in mag_sites if abs(m[i]) < config.min_moment[species[i]]]
    if low:
        desc = ", ".join(f"{species[i]}{i}={m[i]:+.2f}" for i in low[:4])
        return (
            f"lost moment / low-spin collapse on {len(low)} of {len(mag_sites)} magnetic sites ({desc} μB;"
            f" min_moment={ {species[i]: config.min_moment[species[i]] for i in low} })"
        )
    if intended_magmoms is not None:
        guess = np.asarray(intended_magmoms, dtype=float)
        flipped = [
            i
            for i in mag_sites
            if abs(guess[i]) >= config.sign_check_moment and np.sign(m[i]) != np.sign(guess[i])
        ]
        if flipped:
            desc = ", ".join(f"{species[i]}{i}: {guess[i]:+.2f}->{m[i]:+.2f}" for i in flipped[:4])
            return f"spin flipped against the intended order on {len(flipped)} sites ({desc} μB)"
        total, total0 = float(m[mag_sites].sum()), float(guess[mag_sites].sum())
        if abs(total - total0) > config.max_total_moment_change:
            return (
                f"total moment on magnetic sites {total:+.2f} μB far from the initial guess {total0:+.2f} μB"
                f" (tolerance {config.max_total_moment_change} μB)"
            )
    return None


def check_lf_nonmagnetic(
    ispin: int | None, magmoms: Sequence[float] | None, config: QualityConfig | None = None
) -> str | None:
    """LF must be non-spin-polarized: ISPIN=1 (when known) and no site moment above ``lf_max_moment``."""
    config = config or QualityConfig()
    if ispin is not None and ispin != 1:
        return f"LF frame from a spin-polarized run (ISPIN={ispin}, expected 1)"
    if magmoms is not None and len(magmoms):
        mmax = float(np.max(np.abs(magmoms)))
        if mmax > config.lf_max_moment:
            return (
                f"LF frame carries site moments up to {mmax:.2f} μB (> lf_max_moment={config.lf_max_moment})"
            )
    return None


def check_frame(
    doc: FrameDoc,
    *,
    intended_magmoms: Sequence[float] | None = None,
    electronic_converged: bool | str = True,
    ionic_converged: bool | None = None,
    walltime_hit: bool = False,
    ispin: int | None = None,
    config: QualityConfig | None = None,
    magnetic: bool | None = None,
) -> tuple[Status, str | None]:
    """Status and reason of one frame. ``electronic_converged`` may be a reason string (= not converged).

    ``magnetic``: the frame's fidelity is spin-polarized (HF gates); default: its name is in the default
    magnetic fidelities (:data:`mfal.fidelity.MAGNETIC_FIDELITIES`).
    """
    config = config or QualityConfig()
    if doc.status == "failed":
        return "failed", doc.status_reason
    reasons: list[str] = []
    if electronic_converged is not True:
        reasons.append(
            electronic_converged if isinstance(electronic_converged, str) else "electronic SCF not converged"
        )
    if walltime_hit:
        reasons.append("run stopped by the walltime handler (step interrupted)")
    if ionic_converged is False and config.quarantine_ionic_unconverged:
        reasons.append("ionic relaxation not converged")
    if doc.energy is None or not np.isfinite(doc.energy):
        reasons.append(f"energy missing or not finite ({doc.energy})")
    if doc.forces is not None:
        _, reason = check_forces(doc.forces, config)
        if reason:
            reasons.append(reason)
    species = [site["species"][0]["element"] for site in doc.structure["sites"]]
    ispin = ispin if ispin is not None else doc.calc.get("ispin")
    if magnetic is None:
        magnetic = doc.fidelity in MAGNETIC_FIDELITIES
    if magnetic:
        reason = check_hf_moments(doc.magmoms, species, intended_magmoms, config)
    else:
        reason = check_lf_nonmagnetic(ispin, doc.magmoms, config)
    if reason:
        reasons.append(reason)
    if reasons:
        return "quarantined", "; ".join(reasons)
    return "ok", None


def apply_quality(doc: FrameDoc, **kwargs: Any) -> FrameDoc:
    """A copy of ``doc`` with status/reason from :func:`check_frame` (keyword arguments passed on)."""
    status, reason = check_frame(doc, **kwargs)
    if status == doc.status and reason == doc.status_reason:
        return doc
    return doc.model_copy(update={"status": status, "status_reason": reason})
