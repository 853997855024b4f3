"""CP2K labeler: LF = restricted (RKS) PBE+U, HF = unrestricted (UKS) PBE+U with initial moments per site.

Run path ("direct"): pymatgen's ``StaticSet`` writes ``cp2k.inp`` (Gamma only: DFT+U in CP2K 2023.1 has no
k-points), custodian's ``Cp2kJob`` runs ``cp2k.psmp`` and we parse ``cp2k.out`` ourselves
(:mod:`mfal.label.cp2k_io`). We chose it over atomate2's ``StaticMaker`` + ``run_locally`` because it has fewer
moving parts for the same numbers (the team recipe reproduced the atomate2 energies to 1e-6 eV): no jobflow
store, no TaskDocument (which crashes on every RKS run in atomate2 0.1.5 and reports forces in Ha/bohr and no
moments), no gzip-everything default; the labeler stays usable from a plain function or a jobflow job alike.
We drive ``Cp2kJob`` (setup/run/postprocess) ourselves with a hard timeout instead of custodian's handler loop,
so that exactly one, recorded retry happens, with settings we chose.
Basis sets and potentials are resolved by name once per element from the pymatgen CP2K data dir built by
``scripts/setup-cp2k.sh`` (DftSet would re-parse the element YAML for every input: 10–80 s each here).

Every result goes through :func:`mfal.label.quality.check_frame`. SCF not converged, the SCF step limit or the
wall-time limit → one retry with ``Cp2kSettings.retry`` applied, then ``quarantined`` with the reason; an odd
electron count at LF (restricted needs an even count) or a CP2K crash → ``failed`` with the reason.
Cost = CP2K wall seconds × cores used (core-seconds).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pymatgen.core import Structure

from mfal.errors import ConfigError, DataError, LabelError
from mfal.fidelity import MAGNETIC_FIDELITIES, check_fidelity
from mfal.label.cp2k_io import Cp2kOutput, error_tail, parse_cp2k_output
from mfal.label.quality import QualityConfig, check_frame
from mfal.store.docs import FrameDoc, make_frame_id

logger = logging.getLogger(__name__)

SETUP_HINT = "run scripts/setup-cp2k.sh"

#: valence charge q of the GTH-PBE-q{q} pseudopotential per element (CP2K data, GTH_POTENTIALS / POTENTIAL_UZH)
GTH_VALENCE: dict[str, int] = {
    "H": 1, "Li": 3, "Be": 4, "B": 3, "C": 4, "N": 5, "O": 6, "F": 7, "Na": 9, "Mg": 10, "Al": 3, "Si": 4,
    "P": 5, "S": 6, "Cl": 7, "K": 9, "Ca": 10, "Ti": 12, "V": 13, "Cr": 14, "Mn": 15, "Fe": 16, "Co": 17,
    "Ni": 18, "Cu": 11, "Zn": 12,
}  # fmt: skip

#: a Runner runs CP2K in ``run_dir`` (cp2k.inp present) writing cp2k.out; returns the wall seconds it took.
Runner = Callable[[Path, list[str], dict[str, str], float], float]


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
    magnetic_order: Literal["afm", "fm"] = Field(
        "afm",
        description="sign pattern of the initial moments: afm alternates over magnetic sites in site "
        "order; a 'magmom' site property on the structure wins over both",
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

    @field_validator("hubbard_u", "initial_moments", "valence")
    @classmethod
    def _known_elements(cls, v: dict) -> dict:
        from pymatgen.core import Element

        for el in v:
            if not Element.is_valid_symbol(el):
                raise ValueError(f"unknown element {el!r}")
        return v

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


# --------------------------------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------------------------------
def check_cp2k_ready(settings: Cp2kSettings) -> Path:
    """Return the pymatgen CP2K data dir; LabelError with the fix if cp2k or the data dir is missing."""
    if shutil.which(settings.cp2k_exe) is None:
        raise LabelError(f"CP2K executable {settings.cp2k_exe!r} not found on PATH: {SETUP_HINT}")
    if settings.mpi_ranks > 1 and shutil.which("mpirun") is None:
        raise LabelError(f"mpi_ranks={settings.mpi_ranks} needs mpirun, which is not on PATH")
    data_dir = Path(settings.data_dir).expanduser() if settings.data_dir else default_data_dir()
    if not (data_dir / "Fe").is_file():
        raise LabelError(f"pymatgen CP2K data dir {data_dir} missing or incomplete: {SETUP_HINT}")
    return data_dir


#: serialises the short env/SETTINGS swaps below, so that label() may run in several threads
_ENV_LOCK = threading.RLock()


@contextlib.contextmanager
def _environ(set_vars: dict[str, str], unset: Sequence[str] = ()) -> Iterator[None]:
    with _ENV_LOCK:
        yield from _swap_environ(set_vars, unset)


def _swap_environ(set_vars: dict[str, str], unset: Sequence[str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in [*set_vars, *unset]}
    try:
        os.environ.update(set_vars)
        for k in unset:
            os.environ.pop(k, None)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def pymatgen_cp2k_env(data_dir: Path, functional: str = "PBE") -> Iterator[None]:
    """Point pymatgen at ``data_dir`` and ``functional`` while inputs are written; restore afterwards.

    pymatgen's ``DftSet`` reads ``$CP2K_DATA_DIR`` first, then ``SETTINGS["PMG_CP2K_DATA_DIR"]``, and the
    functional from ``$DEFAULT_CP2K_FUNCTIONAL`` or ``SETTINGS["PMG_DEFAULT_CP2K_FUNCTIONAL"]``. SETTINGS is
    built from the ``PMG_*`` environment once, on first access (pymatgen 2026.10), so setting env vars after
    that has no effect: we set both the env vars and the cached dict, and unset ``CP2K_DATA_DIR`` (which would
    otherwise win; cp2k.psmp has /usr/share/cp2k compiled in and does not need it).
    """
    from pymatgen.core import SETTINGS

    keys = {"PMG_CP2K_DATA_DIR": str(data_dir), "PMG_DEFAULT_CP2K_FUNCTIONAL": functional}
    with _ENV_LOCK:
        old = {k: SETTINGS.get(k) for k in keys}
        try:
            SETTINGS.update(keys)
            with _environ(keys, unset=("CP2K_DATA_DIR", "DEFAULT_CP2K_FUNCTIONAL")):
                yield
        finally:
            for k, v in old.items():
                if v is None:
                    SETTINGS.pop(k, None)
                else:
                    SETTINGS[k] = v


@functools.lru_cache(maxsize=64)
def _element_data(path: str) -> dict[str, Any]:
    """One element file of the pymatgen CP2K data dir, read with PyYAML's C loader (ruamel: 10–80 s)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as err:
        raise LabelError(f"{path}: unreadable pymatgen CP2K data file ({err}): {SETUP_HINT}") from err


def resolve_basis_and_potential(data_dir: Path, element: str, basis: str, potential: str) -> dict[str, Any]:
    """pymatgen basis/potential objects for ``element`` by name, chosen as pymatgen's DftSet would.

    DftSet re-reads the element YAML with pure-Python ruamel for every input it writes (20–80 s per frame on a
    busy 2-core machine); we read it once per element and hand DftSet the objects.
    """
    from pymatgen.io.cp2k.inputs import GaussianTypeOrbitalBasisSet, GthPotential

    fn = data_dir / element
    if not fn.is_file():
        raise LabelError(f"no CP2K basis data for {element} in {data_dir}: {SETUP_HINT}")
    data = _element_data(str(fn))
    want_b, want_p = GaussianTypeOrbitalBasisSet(name=basis), GthPotential(name=potential)
    bases = [
        b
        for d in data.get("basis_sets", {}).values()
        if want_b.softmatch(b := GaussianTypeOrbitalBasisSet.from_dict(d))
    ]
    pots = [
        p for d in data.get("potentials", {}).values() if want_p.softmatch(p := GthPotential.from_dict(d))
    ]
    for b in bases:
        match = [p for p in pots if p.info.electrons == b.info.electrons]
        if match:
            return {"basis": b, "potential": match[0]}
    have = sorted({d.get("name", "?") for d in data.get("basis_sets", {}).values()})
    raise ConfigError(
        f"no basis {basis!r} with potential {potential!r} for {element} in {fn} (basis sets there: {have})"
    )


# --------------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------------
def initial_magmoms(structure: Structure, settings: Cp2kSettings) -> list[float]:
    """HF initial moments per site (μB): the 'magmom' site property, else ``initial_moments`` + order."""
    if "magmom" in structure.site_properties:
        return [float(np.sum(m)) for m in structure.site_properties["magmom"]]
    moments, n_mag = [], 0
    for site in structure:
        m = settings.initial_moments.get(site.specie.symbol, 0.0)
        if m and settings.magnetic_order == "afm":
            m = m if n_mag % 2 == 0 else -m
        n_mag += bool(m)
        moments.append(float(m))
    return moments


def electron_count(structure: Structure, settings: Cp2kSettings) -> int:
    """Valence electrons of the neutral cell with the GTH pseudopotentials."""
    return sum(settings.valence_of(site.specie.symbol) for site in structure)


def multiplicity(n_electrons: int, magmoms: Sequence[float] | None) -> int:
    """2S+1 from |Σm| (rounded), nudged up by one if its parity does not fit the electron count."""
    n_unpaired = round(abs(float(np.sum(magmoms)))) if magmoms is not None else 0
    if (n_electrons - n_unpaired) % 2:
        n_unpaired += 1
    return n_unpaired + 1


def _clean_structure(structure: Structure, magmoms: Sequence[float] | None) -> Structure:
    """Copy without oxidation states and site properties (they create extra KINDs or BS sections)."""
    s = Structure(structure.lattice, [site.specie.symbol for site in structure], structure.frac_coords)
    if magmoms is not None:
        s.add_site_property("magmom", list(magmoms))
    return s


def _kind_aliases(structure: Structure, element: str) -> list[str]:
    """KIND names pymatgen creates for ``element`` (Fe_1, Fe_2, ...: one per distinct magmom)."""
    from pymatgen.io.cp2k.utils import get_unique_site_indices

    return sorted(k for k in get_unique_site_indices(structure.copy()) if k.split("_")[0] == element)


def _override_params(structure: Structure, settings: Cp2kSettings) -> dict[str, Any]:
    """DFT+U per KIND ([eV] units: CP2K's default unit is Hartree) and Mulliken/Hirshfeld printing."""
    dft: dict[str, Any] = {"PRINT": {"MULLIKEN": {}, "HIRSHFELD": {}}}
    subsys: dict[str, Any] = {}
    for el, u in settings.hubbard_u.items():
        if el not in structure.symbol_set or u == 0:
            continue
        for alias in _kind_aliases(structure, el):
            subsys[alias] = {"DFT_PLUS_U": {"L": 2, "U_MINUS_J": f"[eV] {u}"}}
    if subsys:
        dft["PLUS_U_METHOD"] = settings.plus_u_method
    if not settings.ot:  # pymatgen writes MAX_SCF 400 for diagonalisation, whatever max_scf says
        dft["SCF"] = {"MAX_SCF": settings.scf_limit}
    return {
        "FORCE_EVAL": {"DFT": dft, "SUBSYS": subsys},
        "GLOBAL": {"WALLTIME": _hhmmss(settings.wall_time_limit_s)},
    }


def _hhmmss(seconds: float) -> str:
    """CP2K WALLTIME value (HH:MM:SS)."""
    s = max(1, round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _input_settings(
    structure: Structure, settings: Cp2kSettings, spin: bool, mult: int, data_dir: Path
) -> dict[str, Any]:
    """Keyword arguments of pymatgen's StaticSet."""
    uis: dict[str, Any] = {
        "spin_polarized": spin,
        "multiplicity": mult,
        "basis_and_potential": {
            el: resolve_basis_and_potential(
                data_dir, el, settings.basis, f"GTH-{settings.functional}-q{settings.valence_of(el)}"
            )
            for el in sorted(structure.symbol_set)
        },
        "xc_functionals": [settings.functional],
        "cutoff": settings.cutoff_ry,
        "rel_cutoff": settings.rel_cutoff_ry,
        "ngrids": settings.ngrids,
        "eps_default": settings.eps_default,
        "eps_pgf_orb": None,
        "eps_scf": settings.eps_scf,
        "max_scf": settings.max_scf,
        "outer_max_scf": settings.effective_outer_max_scf,
        "ot": settings.ot,
        # pymatgen's DftSet prints cube files, PDOS etc. by default
        "print_pdos": False,
        "print_dos": False,
        "print_mo_cubes": False,
        "print_v_hartree": False,
        "print_e_density": False,
    }
    if settings.ot:
        uis.update(
            minimizer=settings.ot_minimizer,
            preconditioner=settings.ot_preconditioner,
            algorithm=settings.ot_algorithm,
            rotation=settings.ot_rotation,
            energy_gap=settings.ot_energy_gap,
        )
    else:
        uis.update(smearing=True, elec_temp=settings.smearing_temperature_k, alpha=settings.mixing_alpha)
    return uis


def write_cp2k_input(
    structure: Structure,
    fidelity: str,
    settings: Cp2kSettings,
    run_dir: Path,
    *,
    magmoms: Sequence[float] | None = None,
    data_dir: Path | None = None,
) -> Path:
    """Write ``run_dir/cp2k.inp`` for one LF (RKS) or HF (UKS, MAGNETIZATION per KIND) single point."""
    from pymatgen.io.cp2k.sets import StaticSet

    hf = fidelity in MAGNETIC_FIDELITIES
    if hf and magmoms is None:
        magmoms = initial_magmoms(structure, settings)
    s = _clean_structure(structure, magmoms if hf else None)
    mult = multiplicity(electron_count(s, settings), magmoms) if hf else 1
    data_dir = data_dir or default_data_dir()
    uis = _input_settings(s, settings, spin=hf, mult=mult, data_dir=data_dir)
    # basis/potential are resolved objects: point pymatgen's own data-dir lookup at an empty path
    with pymatgen_cp2k_env(data_dir / "_resolved_by_mfal", settings.functional), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ci = StaticSet(structure=s, kpoints=None, **uis)  # no k-points: DFT+U is Gamma-only
        except ValueError as err:
            raise ConfigError(f"CP2K input for {s.composition.reduced_formula}: {err}") from err
    ci.update(_override_params(s, settings))
    run_dir.mkdir(parents=True, exist_ok=True)
    ci.write_file("cp2k.inp", str(run_dir))
    return run_dir / "cp2k.inp"


# --------------------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------------------
def run_cp2k_custodian(run_dir: Path, cmd: list[str], env: dict[str, str], timeout_s: float) -> float:
    """Run CP2K in ``run_dir`` with custodian's ``Cp2kJob``; kill it after ``timeout_s``. Returns wall s."""
    from custodian.cp2k.jobs import Cp2kJob

    job = Cp2kJob(cmd, input_file="cp2k.inp", output_file="cp2k.out", stderr_file="std_err.txt")
    t0 = time.perf_counter()
    with _environ(env):
        job.setup(str(run_dir))
        proc = job.run(str(run_dir))
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("CP2K in %s exceeded %.0f s: killed", run_dir, timeout_s)
        proc.kill()
        proc.wait()
        (run_dir / "mfal_killed.txt").write_text(f"killed after {timeout_s:.0f} s\n")
    job.postprocess(str(run_dir))
    return time.perf_counter() - t0


def _cmd(settings: Cp2kSettings) -> list[str]:
    if settings.mpi_ranks > 1:
        return ["mpirun", "--allow-run-as-root", "-np", str(settings.mpi_ranks), "-x", "OMP_NUM_THREADS",
                settings.cp2k_exe]  # fmt: skip
    return [settings.cp2k_exe]


# --------------------------------------------------------------------------------------------------------------
# results -> FrameDoc
# --------------------------------------------------------------------------------------------------------------
class Attempt(BaseModel):
    """Outcome of one CP2K run of one frame."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str
    output: Cp2kOutput | None = None
    wall_s: float = 0.0
    killed: bool = False
    crash: str | None = Field(None, description="why no usable output: CP2K abort text or output tail")
    retryable: str | None = Field(None, description="SCF/step-limit/wall-time reason that a retry may fix")


def _assess(run_dir: Path, wall_s: float, settings: Cp2kSettings) -> Attempt:
    killed = (run_dir / "mfal_killed.txt").is_file()
    try:
        out = parse_cp2k_output(run_dir)
    except Exception as err:  # noqa: BLE001 - any unreadable output is a crash of this calculation
        return Attempt(
            run_dir=str(run_dir), wall_s=wall_s, killed=killed, crash=f"{err}; {error_tail(run_dir)}"
        )
    att = Attempt(run_dir=str(run_dir), output=out, wall_s=wall_s, killed=killed)
    if killed or out.walltime_exceeded:
        att.retryable = f"wall-time limit {settings.wall_time_limit_s:.0f} s reached"
    elif out.error:
        att.crash = f"CP2K aborted: {out.error}"
    elif not out.completed:
        att.crash = f"CP2K did not finish (no 'PROGRAM ENDED'): {error_tail(run_dir)}"
    elif not out.scf_converged and out.scf_steps is not None:
        limit = settings.scf_limit
        what = "SCF step limit reached" if out.scf_steps >= limit else "SCF not converged"
        att.retryable = f"{what} ({out.scf_steps} steps, limit {limit}, eps_scf {settings.eps_scf:g})"
    elif out.energy is None or out.forces is None:
        att.crash = f"CP2K stopped without energy/forces: {error_tail(run_dir)}"
    return att


def _nonfinite(out: Cp2kOutput) -> list[str]:
    bad = []
    for name in ("stress", "magmoms_hirshfeld", "magmoms_mulliken"):  # energy/forces: check_frame
        value = getattr(out, name)
        if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=float))):
            bad.append(f"{name} not finite in {Path(out.path).name}")
    return bad


class Cp2kLabeler:
    """Labels structures with CP2K at LF (RKS PBE+U) or HF (UKS PBE+U); see the module docstring."""

    name = "cp2k"

    def __init__(
        self,
        settings: Cp2kSettings | dict[str, Any] | None = None,
        *,
        quality: QualityConfig | None = None,
        runner: Runner | None = None,
        **overrides: Any,
    ) -> None:
        """``settings`` (or keyword ``overrides`` of its fields); ``runner`` replaces the CP2K call (tests)."""
        base = settings.model_dump() if isinstance(settings, Cp2kSettings) else dict(settings or {})
        try:
            self.settings = Cp2kSettings(**{**base, **overrides})
        except ValidationError as err:
            raise ConfigError(f"cp2k labeler settings: {err}") from err
        self.quality = quality or QualityConfig()
        self.runner = runner or run_cp2k_custodian

    def calc_summary(
        self, structure: Structure, fidelity: str, magmoms: Sequence[float] | None
    ) -> dict[str, Any]:
        """FrameDoc.calc of ``structure`` at ``fidelity`` (enters frame_id); U only for elements present."""
        s = self.settings
        return {
            "code": "cp2k",
            "ispin": 2 if fidelity in MAGNETIC_FIDELITIES else 1,
            "hubbard_u": {el: u for el, u in sorted(s.hubbard_u.items()) if u and el in structure.symbol_set},
            "magmom_init": list(magmoms) if magmoms is not None else None,
            "functional": s.functional,
            "kpoints": "Gamma",
            "cutoff_ry": s.cutoff_ry,
            "rel_cutoff_ry": s.rel_cutoff_ry,
            "plus_u_method": s.plus_u_method,
            "basis": s.basis,
            "eps_scf": s.eps_scf,
            "moment_method": s.moment_method,
        }

    def label(
        self,
        structures: Sequence[Structure],
        fidelity: str,
        *,
        workdir: Path | None = None,
        campaign: str | None = None,
        round: int | None = None,
        progress: bool = False,
    ) -> list[FrameDoc]:
        """One FrameDoc per structure, in order; task dirs under ``workdir`` (default ./cp2k_runs)."""
        check_fidelity(fidelity)
        data_dir = check_cp2k_ready(self.settings)
        root = Path(workdir or "cp2k_runs").resolve()
        items: Sequence[Structure] = structures
        if progress:
            from tqdm import tqdm

            items = tqdm(structures, desc=f"cp2k {fidelity}", unit="frame")
        docs = [self._label_one(s, fidelity, root, data_dir, campaign, round) for s in items]
        return docs

    # one frame --------------------------------------------------------------------------------------------
    def _label_one(
        self,
        structure: Structure,
        fidelity: str,
        root: Path,
        data_dir: Path,
        campaign: str | None,
        round_: int | None,
    ) -> FrameDoc:
        hf = fidelity in MAGNETIC_FIDELITIES
        magmoms = initial_magmoms(structure, self.settings) if hf else None
        calc = self.calc_summary(structure, fidelity, magmoms)
        frame_id = make_frame_id(structure, fidelity, calc)
        task_dir = root / f"{fidelity}_{frame_id}"
        common = {"campaign": campaign, "round": round_, "task_dir": str(task_dir), "frame_id": frame_id}
        new = _clean_structure(structure, None)

        n_el = electron_count(new, self.settings)
        if not hf and n_el % 2:
            reason = f"odd electron count {n_el} at LF: restricted (RKS) PBE+U needs an even count"
            return FrameDoc.from_structure(
                new,
                fidelity=fidelity,
                source="cp2k",
                calc=calc,
                status="failed",
                status_reason=reason,
                **common,
            )

        attempts: list[Attempt] = []
        for settings in (self.settings, self.settings.retry_settings()):
            if settings is None:
                break
            run_dir = task_dir / f"attempt{len(attempts)}"
            if self._finished_before(structure, fidelity, settings, run_dir, magmoms, data_dir):
                logger.info("cp2k %s: finished run with the same input found, reusing it", run_dir)
                wall = 0.0
            else:
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                write_cp2k_input(structure, fidelity, settings, run_dir, magmoms=magmoms, data_dir=data_dir)
                env = {"OMP_NUM_THREADS": str(settings.omp_threads)}
                logger.info("cp2k %s %s -> %s", fidelity, new.composition.reduced_formula, run_dir)
                wall = self.runner(run_dir, _cmd(settings), env, settings.wall_time_limit_s + 120.0)
            att = _assess(run_dir, wall, settings)
            attempts.append(att)
            if not settings.keep_wfn:
                for fn in run_dir.glob("*.wfn*"):
                    fn.unlink()
            if att.crash or not att.retryable or len(attempts) > 1 or not self.settings.retry:
                break
            logger.warning("cp2k %s: %s; retrying with %s", run_dir, att.retryable, self.settings.retry)
        return self._frame(new, fidelity, calc, attempts, magmoms, common)

    @staticmethod
    def _finished_before(
        structure: Structure,
        fidelity: str,
        settings: Cp2kSettings,
        run_dir: Path,
        magmoms: Sequence[float] | None,
        data_dir: Path,
    ) -> bool:
        """A completed cp2k.out from the very same cp2k.inp is in ``run_dir`` (resume without paying again)."""
        if not settings.reuse_finished or not (run_dir / "cp2k.out").is_file():
            return False
        with tempfile.TemporaryDirectory() as tmp:
            fresh = write_cp2k_input(
                structure, fidelity, settings, Path(tmp), magmoms=magmoms, data_dir=data_dir
            )
            same = (run_dir / "cp2k.inp").is_file() and fresh.read_text() == (
                run_dir / "cp2k.inp"
            ).read_text()
        if not same:
            return False
        try:
            return parse_cp2k_output(run_dir).completed
        except DataError:
            return False

    def _frame(
        self,
        structure: Structure,
        fidelity: str,
        calc: dict[str, Any],
        attempts: list[Attempt],
        magmoms: Sequence[float] | None,
        common: dict[str, Any],
    ) -> FrameDoc:
        att = attempts[-1]
        cost = sum(self._cost(a, s) for a, s in zip(attempts, self._attempt_settings(), strict=False))
        calc = {**calc, "attempts": len(attempts)}
        if att.output is not None:
            calc.update(scf_steps=att.output.scf_steps, cp2k_time_s=att.output.cp2k_time_s)
        common = {**common, "task_dir": att.run_dir}
        if att.crash:
            return FrameDoc.from_structure(
                structure, fidelity=fidelity, source="cp2k", calc=calc, status="failed",
                status_reason=att.crash[-1500:], cost=cost, **common,
            )  # fmt: skip
        out = att.output
        if out is None:  # _assess sets crash when there is no output; keep mypy and readers sure
            raise LabelError(f"{att.run_dir}: no CP2K output and no crash reason")
        # problems the shared gates do not see (non-finite stress, output of another cell or spin treatment)
        pre = _nonfinite(out) + self._consistency(
            structure, fidelity, out, self._attempt_settings()[len(attempts) - 1]
        )
        hf = fidelity in MAGNETIC_FIDELITIES
        doc = FrameDoc.from_structure(
            structure, fidelity=fidelity, source="cp2k", calc=calc, cost=cost,
            status="quarantined" if pre else "ok", status_reason="; ".join(pre) or None,
            energy=out.energy, forces=out.forces,
            stress=(-np.asarray(out.stress)).tolist() if out.stress is not None else None,  # CHGNet sign
            magmoms=out.magmoms(self.settings.moment_method) if hf else None,
            **common,
        )  # fmt: skip
        electronic: bool | str = out.scf_converged
        if att.retryable:  # SCF, step limit or wall time, still failing after the retry (if any)
            retried = f" after one retry with {self.settings.retry}" if len(attempts) > 1 else ""
            electronic = att.retryable + retried
        status, reason = check_frame(
            doc,
            intended_magmoms=magmoms,
            electronic_converged=electronic,
            ispin=2 if out.uks else 1,
            config=self.quality,
        )
        reasons = pre + ([reason] if reason and status != "ok" else [])
        if reasons:
            return doc.model_copy(update={"status": "quarantined", "status_reason": "; ".join(reasons)})
        return doc

    def _attempt_settings(self) -> list[Cp2kSettings]:
        retry = self.settings.retry_settings()
        return [self.settings] + ([retry] if retry else [])

    @staticmethod
    def _cost(att: Attempt, settings: Cp2kSettings) -> float:
        """core-seconds: CP2K's own wall time (or the measured one if CP2K did not print it) × cores."""
        t = att.output.cp2k_time_s if att.output is not None and att.output.cp2k_time_s else att.wall_s
        return float(t) * settings.cores

    @staticmethod
    def _consistency(
        structure: Structure, fidelity: str, out: Cp2kOutput, settings: Cp2kSettings
    ) -> list[str]:
        """The output belongs to this structure and settings (atom order, spin treatment, U values)."""
        reasons = []
        species = [site.specie.symbol for site in structure]
        if out.elements is not None and out.elements != species:
            reasons.append(f"atoms in {Path(out.path).name} ({len(out.elements)}) do not match the structure")
        want_uks = fidelity in MAGNETIC_FIDELITIES
        if out.uks is not None and out.uks != want_uks:
            reasons.append(f"{fidelity} frame from a {'UKS' if out.uks else 'RKS'} run")
        wanted = {round(u, 3) for el, u in settings.hubbard_u.items() if u and el in structure.symbol_set}
        echoed = {round(u, 3) for u in out.u_eff_ev}
        if echoed != wanted:
            reasons.append(f"CP2K used U_eff {sorted(echoed)} eV, expected {sorted(wanted)} eV")
        return reasons


__all__ = [
    "Cp2kLabeler",
    "Cp2kSettings",
    "check_cp2k_ready",
    "default_data_dir",
    "initial_magmoms",
    "multiplicity",
    "write_cp2k_input",
]
