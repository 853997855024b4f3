"""CP2K single-point settings (pydantic, ``extra="forbid"``): the ``options`` of a ``kind: cp2k`` labeler.

LF and HF share everything but the spin treatment (RKS vs UKS with initial moments).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from mfal.errors import ConfigError
from mfal.label.magmoms import MomentSource, check_ordering
from mfal.label.quality import QualityConfig

#: valence charge q of the GTH-PBE-q{q} pseudopotential per element (CP2K data, GTH_POTENTIALS / POTENTIAL_UZH)
GTH_VALENCE: dict[str, int] = {
    "H": 1, "Li": 3, "Be": 4, "B": 3, "C": 4, "N": 5, "O": 6, "F": 7, "Na": 9, "Mg": 10, "Al": 3, "Si": 4,
    "P": 5, "S": 6, "Cl": 7, "K": 9, "Ca": 10, "Ti": 12, "V": 13, "Cr": 14, "Mn": 15, "Fe": 16, "Co": 17,
    "Ni": 18, "Cu": 11, "Zn": 12,
}  # fmt: skip


def default_data_dir() -> Path:
    """pymatgen CP2K data dir written by scripts/setup-cp2k.sh: ``${MFAL_CP2K_DATA:-~/.cache/mfal/cp2k}/pmg_cp2k_data``."""
    root = os.environ.get("MFAL_CP2K_DATA") or str(Path.home() / ".cache" / "mfal" / "cp2k")
    return Path(root).expanduser() / "pmg_cp2k_data"


class Cp2kSettings(BaseModel):
    """Settings of one CP2K PBE(+U) single point. LF and HF share everything but the spin treatment."""

    model_config = ConfigDict(extra="forbid")

    hubbard_u: dict[str, float] = Field(
        default_factory=lambda: {"Fe": 4.0, "Mn": 3.9},
        description="U_eff = U − J on the d shell per element (eV). Fe 4.0: the value the team's CP2K recipe was "
        "tested with (FeO, LiFePO4 moments/timings in DESIGN.md); Mn 3.9: Materials Project's Mn U "
        "(Wang, Maxisch, Ceder, PRB 73, 195107, 2006), as on the VASP path. VASP-fitted U values do not "
        "transfer exactly to CP2K's Löwdin projection: settings, not constants.",
    )
    plus_u_method: Literal["LOWDIN", "MULLIKEN", "MULLIKEN_CHARGES"] = Field(
        "LOWDIN", description="DFT+U projection; MULLIKEN gave negative E_U on LiFePO4 HF (recipe pitfall 16)"
    )
    functional: Literal["PBE"] = "PBE"
    basis: str = Field("DZVP-MOLOPT-SR-GTH", description="basis set name for every element (BASIS_MOLOPT)")
    valence: dict[str, int] = Field(
        default_factory=dict, description="override of GTH valence q per element (potential GTH-PBE-q{q})"
    )
    cutoff_ry: float = Field(400.0, gt=0, description="plane-wave cutoff (Ry); 250 Ry gives wrong Fe forces")
    rel_cutoff_ry: float = Field(50.0, gt=0, description="REL_CUTOFF (Ry)")
    ngrids: int = Field(4, ge=1, description="multigrid levels")
    eps_default: float = Field(1e-8, gt=0, description="QS EPS_DEFAULT")
    eps_scf: float = Field(1e-5, gt=0, description="SCF convergence (OT: max orbital gradient)")
    max_scf: int = Field(40, ge=1, description="inner SCF steps per outer loop")
    outer_max_scf: int = Field(10, ge=1, description="outer SCF loops (OT)")
    scf_step_limit: int = Field(
        400, ge=1, description="hard cap on SCF steps of one calculation: outer loops are cut to fit"
    )
    ot: bool = Field(
        True, description="orbital transformation (needs a gap); False = diagonalisation + smearing"
    )
    ot_minimizer: Literal["DIIS", "CG", "BROYDEN"] = "DIIS"
    ot_preconditioner: str = Field("FULL_ALL", description="OT preconditioner")
    ot_algorithm: Literal["STRICT", "IRAC"] = "STRICT"
    ot_rotation: bool = False
    ot_energy_gap: float = Field(0.05, description="OT preconditioner gap estimate (Ha)")
    smearing_temperature_k: float = Field(
        300.0, gt=0, description="Fermi-Dirac smearing (K), diagonalisation only"
    )
    mixing_alpha: float = Field(0.2, gt=0, le=1, description="Broyden mixing α, diagonalisation only")
    wall_time_limit_s: float = Field(
        3600.0, gt=0, description="CP2K GLOBAL/WALLTIME per calculation (s); killed 120 s after it"
    )
    omp_threads: int = Field(2, ge=1, description="OMP_NUM_THREADS for cp2k.psmp")
    mpi_ranks: int = Field(1, ge=1, description="MPI ranks (>1 runs through mpirun)")
    cp2k_exe: str = Field("cp2k.psmp", description="CP2K executable (Debian ships only cp2k.psmp)")
    initial_moments: dict[str, float] = Field(
        default_factory=lambda: {"Fe": 4.0, "Mn": 5.0},
        description="HF initial |m| per element (μB): high-spin Fe2+ d6 = 4, Mn2+ d5 = 5; others start at 0",
    )
    magmom_source: MomentSource = Field(
        "table",
        description="table: |m| from initial_moments; oxidation: high-spin |m| of the guessed oxidation state "
        "for transition metals (Fe2+ 4, Fe3+ 5, Mn2+ 5 μB), the table for the rest",
    )
    ordering: str = Field(
        "afm",
        validation_alias=AliasChoices("ordering", "magnetic_order"),
        description="collinear order of the initial moments: fm, afm (alternating over magnetic sites in site "
        "order), afm-a/afm-b/afm-c (layered along that axis) or a sign string such as '+-+-'; a 'magmom' "
        "site property on the structure wins (old name: magnetic_order)",
    )
    moment_method: Literal["hirshfeld", "mulliken"] = Field(
        "hirshfeld",
        description="which per-site spin moments become FrameDoc.magmoms (Hirshfeld is less "
        "basis-dependent than Mulliken with the non-orthogonal MOLOPT basis)",
    )
    retry: dict[str, Any] = Field(
        default_factory=lambda: {"ot": False, "max_scf": 200},
        description="settings changed for the one retry after SCF/step-limit/wall-time failure ({} = no retry)",
    )
    reuse_finished: bool = Field(
        True, description="reuse a completed run of the identical cp2k.inp found in the task dir (resume)"
    )
    keep_wfn: bool = Field(False, description="keep CP2K's *.wfn restart files (MB each)")
    data_dir: str | None = Field(None, description="pymatgen CP2K data dir (default: see default_data_dir())")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="quality gates of every label")

    @field_validator("hubbard_u", "initial_moments", "valence")
    @classmethod
    def _known_elements(cls, v: dict) -> dict:
        from pymatgen.core import Element

        for el in v:
            if not Element.is_valid_symbol(el):
                raise ValueError(f"unknown element {el!r}")
        return v

    @field_validator("ordering")
    @classmethod
    def _ordering(cls, v: str) -> str:
        return check_ordering(v)

    @property
    def magnetic_order(self) -> str:
        """Old name of :attr:`ordering`."""
        return self.ordering

    @model_validator(mode="after")
    def _check_retry(self) -> Cp2kSettings:
        if "retry" in self.retry:
            raise ValueError("retry settings may not contain 'retry'")
        if self.retry:
            Cp2kSettings(**{**self.model_dump(exclude={"retry"}), **self.retry, "retry": {}})
        return self

    def retry_settings(self) -> Cp2kSettings | None:
        """The settings of the retry, or None if no retry is configured."""
        if not self.retry:
            return None
        return Cp2kSettings(**{**self.model_dump(exclude={"retry"}), **self.retry, "retry": {}})

    @property
    def effective_outer_max_scf(self) -> int:
        """Outer loops so that max_scf × outer ≤ scf_step_limit."""
        return max(1, min(self.outer_max_scf, self.scf_step_limit // self.max_scf))

    @property
    def scf_limit(self) -> int:
        """SCF steps one calculation may take: max_scf × outer loops (OT) or max_scf (diagonalisation)."""
        if self.ot:
            return self.max_scf * self.effective_outer_max_scf
        return min(self.max_scf, self.scf_step_limit)

    @property
    def cores(self) -> int:
        """Cores one calculation uses (for the cost in core-seconds)."""
        return self.omp_threads * self.mpi_ranks

    def valence_of(self, element: str) -> int:
        """GTH valence charge of ``element``; ConfigError if unknown."""
        if element in self.valence:
            return self.valence[element]
        if element not in GTH_VALENCE:
            raise ConfigError(
                f"no GTH valence known for {element!r}: set Cp2kSettings.valence (known: {sorted(GTH_VALENCE)})"
            )
        return GTH_VALENCE[element]
