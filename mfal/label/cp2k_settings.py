"""CP2K single-point settings (pydantic, ``extra="forbid"``): the ``options`` of a ``kind: cp2k`` labeler.

LF and HF share everything but the spin treatment (RKS vs UKS with initial moments).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from mfal.errors import ConfigError
from mfal.label.magmoms import NAMED_ORDERINGS as DEFAULT_SPIN_LADDER
from mfal.label.magmoms import MomentSource, check_ordering
from mfal.label.quality import QualityConfig

#: valence charge q of the GTH-PBE-q{q} pseudopotential per element (CP2K data, GTH_POTENTIALS / POTENTIAL_UZH)
GTH_VALENCE: dict[str, int] = {
    "H": 1, "Li": 3, "Be": 4, "B": 3, "C": 4, "N": 5, "O": 6, "F": 7, "Na": 9, "Mg": 10, "Al": 3, "Si": 4,
    "P": 5, "S": 6, "Cl": 7, "K": 9, "Ca": 10, "Ti": 12, "V": 13, "Cr": 14, "Mn": 15, "Fe": 16, "Co": 17,
    "Ni": 18, "Cu": 11, "Zn": 12,
}  # fmt: skip


#: spin treatments a rung ladder exists for: restricted = RKS (even electron count at a non-magnetic fidelity),
#: open_shell = ROKS doublet (odd count at a non-magnetic fidelity), unrestricted = UKS (magnetic fidelity)
TREATMENTS = ("restricted", "open_shell", "unrestricted")
_CG = {"ot_minimizer": "CG", "ot_linesearch": "3PNT"}
#: SCF fallbacks measured on 28-atom LMFP cells (mfal/data/science/README.md, "SCF settings tried"): OT is
#: variational and converges monotonically where diagonalisation + smearing oscillated by ~1 Ha; DIIS is the
#: fastest while it works (LiFePO4 ≈ 55 steps), CG + 3-point line search continues from DIIS's wavefunction
#: when DIIS stalls (Mn/delithiated cells). Smearing stays as the last rung (a metal needs it).
DEFAULT_LADDER: dict[str, list[dict[str, Any]]] = {
    "restricted": [
        {"name": "ot-diis"},  # the base settings (the first set's: LiFePO4 in ≈ 55 steps)
        {"name": "ot-cg", "restart_from_previous": True, **_CG, "ot_energy_gap": 0.002, "outer_max_scf": 15,
         "scf_step_limit": 600},
        {"name": "fd3000-pulay", "ot": False, "smearing_temperature_k": 3000.0, "mixing_method": "PULAY_MIXING",
         "mixing_alpha": 0.05, "mixing_nbuffer": 10, "added_mos": 60, "max_scf": 300},
    ],
    "open_shell": [
        # ENERGY_GAP does not act with FULL_SINGLE_INVERSE (a 0.002 rerun repeated the 0.05 run to 10 digits)
        {"name": "roks-ot-diis", "ot_preconditioner": "FULL_SINGLE_INVERSE", "ot_rotation": True},
        {"name": "roks-ot-cg", "restart_from_previous": True, **_CG, "ot_preconditioner": "FULL_SINGLE_INVERSE",
         "ot_rotation": True, "outer_max_scf": 15, "scf_step_limit": 600},
        {"name": "fd3000-pulay", "ot": False, "smearing_temperature_k": 3000.0, "mixing_method": "PULAY_MIXING",
         "mixing_alpha": 0.05, "mixing_nbuffer": 10, "added_mos": 60, "max_scf": 300},
    ],
    "unrestricted": [
        {"name": "ot-diis"},
        # from the atomic guess, not DIIS's wavefunction: on MnO a restart from a stalled DIIS locked in a wrong
        # spin state (0.82 eV higher, Mn 3.39/−3.95 μB, O 0.28 μB); from scratch: ±4.41 μB, O 0
        {"name": "ot-cg", **_CG, "outer_max_scf": 15, "scf_step_limit": 600},
        {"name": "ot-cg-uramp", **_CG, "u_ramping_ev": 1.0, "outer_max_scf": 15, "scf_step_limit": 600},
    ],
}  # fmt: skip
_FD1000 = {"ot": False, "smearing_temperature_k": 1000.0, "added_mos": 40}
#: restricted PBE without +U (the LF for Mn-substituted/delithiated LMFP, docs/labeling.md "LF without U"):
#: without U the restricted d shell of Mn²⁺/Fe³⁺ has no gap, so smeared diagonalisation goes first (all five
#: Mn/delithiated 28-atom cells converged on the first rung in 40–45 steps, where every +U setting oscillated or
#: crept); an odd electron count takes fractional RKS occupations, no ROKS. Used when no +U acts on the cell and
#: ``ladder`` is not set.
NO_U_LADDER: list[dict[str, Any]] = [
    {"name": "fd1000-broyden", **_FD1000, "mixing_method": "BROYDEN_MIXING", "mixing_alpha": 0.1, "max_scf": 200},
    {"name": "fd1000-pulay", **_FD1000, "mixing_method": "PULAY_MIXING", "mixing_alpha": 0.05, "mixing_nbuffer": 10,
     "added_mos": 60, "max_scf": 300},
]  # fmt: skip
#: keys of a rung that are not Cp2kSettings fields, and fields a rung may not change
RUNG_KEYS = ("name", "restart_from_previous")
_NOT_IN_RUNG = (
    "ladder", "retry", "max_attempts", "restart_wfn", "quality", "max_spin_attempts", "spin_ladder",
    "keep_lowest_energy",
)  # fmt: skip


class Rung(BaseModel):
    """One SCF attempt recipe: its name, whether it starts from the previous attempt's wavefunction, settings."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str
    restart_from_previous: bool = False
    changes: dict[str, Any] = Field(default_factory=dict, description="Cp2kSettings fields changed")
    settings: Any = Field(description="the Cp2kSettings of this rung (base + changes)")


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
    ot_linesearch: Literal["2PNT", "3PNT", "GOLD"] = Field(
        "2PNT", description="OT line search (3PNT with CG: never raises the energy)"
    )
    smearing_temperature_k: float = Field(
        300.0, gt=0, description="Fermi-Dirac smearing (K), diagonalisation only"
    )
    mixing_method: Literal["BROYDEN_MIXING", "PULAY_MIXING"] = "BROYDEN_MIXING"
    mixing_alpha: float = Field(0.2, gt=0, le=1, description="density mixing α, diagonalisation only")
    mixing_beta: float = Field(
        0.5, gt=0, description="Kerker damping of the mixing (bohr⁻¹), diagonalisation only"
    )
    mixing_nbuffer: int = Field(8, ge=1, description="mixing history length, diagonalisation only")
    added_mos: int = Field(
        0, ge=-1, description="unoccupied orbitals for smearing (-1: all; 0: pymatgen's default, all)"
    )
    u_ramping_ev: float = Field(
        0.0, ge=0, description="> 0: DFT+U ramped up in steps of this size (eV) once the SCF error < 1e-3"
    )
    odd_restricted: Literal["roks", "fail"] = Field(
        "roks",
        description="restricted (non-magnetic) fidelity of an odd electron count: roks = restricted open-shell "
        "doublet (one singly occupied orbital, α and β share all spatial orbitals, so no local moments: the "
        "closest to RKS; UKS doublet would polarise the d shells, i.e. become an HF-like label); fail = "
        "status failed without running",
    )
    restart_wfn: bool = Field(
        True,
        description="a rung after a wall-time stop (or marked restart_from_previous) starts from the "
        "previous attempt's saved wavefunction (CP2K writes it every 10 SCF steps)",
    )
    ladder: dict[str, list[dict[str, Any]]] = Field(
        default_factory=lambda: {k: [dict(r) for r in v] for k, v in DEFAULT_LADDER.items()},
        description="SCF fallbacks per spin treatment (restricted: RKS, even electrons; open_shell: ROKS, odd "
        "electrons at a restricted fidelity; unrestricted: UKS): rungs tried in order, each a 'name', optional "
        "'restart_from_previous' and changes of these settings; a wall-time stop repeats the rung once from "
        "the saved wavefunction. Setting 'retry' (old one-retry field) replaces the ladder by [base, retry]",
    )
    max_attempts: int = Field(6, ge=1, description="CP2K runs per frame at most (all rungs and repeats)")
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
        description="old single retry: only when set explicitly, the SCF ladder is [base settings, base + "
        "retry] ({} = one attempt, no retry); unset, 'ladder' decides",
    )
    reuse_finished: bool = Field(
        True, description="reuse a completed run of the identical cp2k.inp found in the task dir (resume)"
    )
    keep_wfn: bool = Field(False, description="keep CP2K's *.wfn restart files (MB each)")
    data_dir: str | None = Field(None, description="pymatgen CP2K data dir (default: see default_data_dir())")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="quality gates of every label")
    max_spin_attempts: int = Field(
        3,
        ge=1,
        description="HF spin states tried per structure (mfal.label.ladder: configured ordering, other moment "
        "guess, spin_ladder orderings), each with the full SCF ladder; 1 = no spin ladder",
    )
    spin_ladder: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SPIN_LADDER),
        description="orderings the HF spin ladder tries after the configured one, in order",
    )
    keep_lowest_energy: bool = Field(
        False, description="run every spin rung and keep the lowest-energy accepted spin state (all charged)"
    )

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

    @model_validator(mode="after")
    def _check_ladder(self) -> Cp2kSettings:
        if unknown := sorted(set(self.ladder) - set(TREATMENTS)):
            raise ValueError(
                f"ladder: unknown spin treatment(s) {unknown}; expected some of {list(TREATMENTS)}"
            )
        for treatment, rungs in self.ladder.items():
            if not rungs:
                raise ValueError(f"ladder.{treatment}: no rungs (give at least one, e.g. {{'name': 'base'}})")
            for i, rung in enumerate(rungs):
                if "name" not in rung or (bad := [k for k in _NOT_IN_RUNG if k in rung]):
                    what = "a 'name'" if "name" not in rung else f"no {bad}"
                    raise ValueError(f"ladder.{treatment}[{i}]: a rung needs {what}")
                unknown = sorted(set(rung) - set(RUNG_KEYS) - set(type(self).model_fields))
                if unknown:
                    raise ValueError(f"ladder.{treatment}[{i}]: {unknown} are not CP2K settings fields")
        return self

    def treatment(self, n_electrons: int, magnetic: bool) -> str:
        """Spin treatment of a calculation: unrestricted (magnetic), restricted (even) or open_shell (odd)."""
        if magnetic:
            return "unrestricted"
        return "open_shell" if n_electrons % 2 else "restricted"

    def plus_u_on(self, elements: set[str] | frozenset[str]) -> bool:
        """Does a non-zero +U act on any of ``elements``?"""
        return any(u and el in elements for el, u in self.hubbard_u.items())

    def rungs(self, treatment: str, *, plus_u: bool = True) -> list[Rung]:
        """The SCF ladder of ``treatment`` (see ``ladder``); ``retry`` set explicitly → [base, base + retry].

        ``plus_u`` False (no +U acts on the cell) and ``ladder`` left at its default: a restricted or open-shell
        treatment climbs :data:`NO_U_LADDER` (smeared RKS) instead."""
        if "retry" in self.model_fields_set:
            retry = self.retry_settings()
            out = [Rung(name="base", settings=self._plain())]
            return out + ([Rung(name="retry", changes=dict(self.retry), settings=retry)] if retry else [])
        rungs = self.ladder.get(treatment) or [{"name": "base"}]
        if not plus_u and treatment != "unrestricted" and "ladder" not in self.model_fields_set:
            rungs = NO_U_LADDER
        out = []
        for rung in rungs:
            changes = {k: v for k, v in rung.items() if k not in RUNG_KEYS}
            out.append(
                Rung(
                    name=str(rung["name"]),
                    restart_from_previous=bool(rung.get("restart_from_previous", False)),
                    changes=changes,
                    settings=self._plain(changes),
                )
            )
        return out

    def _plain(self, changes: dict[str, Any] | None = None) -> Cp2kSettings:
        """These settings with ``changes`` applied and no ladder/retry of their own (one calculation)."""
        data = self.model_dump(exclude={"retry", "ladder"})
        return Cp2kSettings(
            **{**data, **(changes or {}), "retry": {}, "ladder": {"restricted": [{"name": "-"}]}}
        )

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
