"""CP2K input building: LF (RKS) / HF (UKS, MAGNETIZATION per KIND) single points, +U per KIND in eV."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from mfal.errors import ConfigError
from mfal.fidelity import MAGNETIC_FIDELITIES
from mfal.label.cp2k_env import pymatgen_cp2k_env, resolve_basis_and_potential
from mfal.label.cp2k_settings import Cp2kSettings, default_data_dir
from mfal.label.magmoms import initial_moments


def initial_magmoms(structure: Structure, settings: Cp2kSettings) -> list[float]:
    """HF initial moments per site (μB): the 'magmom' site property, else ``initial_moments`` + ``ordering``."""
    return moments_and_record(structure, settings)[0]


def moments_and_record(structure: Structure, settings: Cp2kSettings) -> tuple[list[float], dict[str, Any]]:
    """HF initial moments (μB) and the record for ``FrameDoc.calc`` (see :mod:`mfal.label.magmoms`)."""
    return initial_moments(
        structure,
        settings.initial_moments,
        default=0.0,
        source=settings.magmom_source,
        ordering=settings.ordering,
    )


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


#: CP2K saves the wavefunction every 10 SCF steps (a wall-time or step-limit stop keeps the latest)
_RESTART_PRINT = {"RESTART": {"BACKUP_COPIES": 0, "EACH": {"QS_SCF": 10}}}


def _override_params(
    structure: Structure,
    settings: Cp2kSettings,
    *,
    roks: bool = False,
    restart_wfn: str | None = None,
) -> dict[str, Any]:
    """DFT+U per KIND ([eV] units: CP2K's default unit is Hartree), Mulliken/Hirshfeld printing, SCF extras.

    ``roks``: restricted open-shell (CP2K aborts on ROKS + OT without ROTATION, and on ROTATION + FULL_ALL, both
    measured: the preconditioner becomes FULL_SINGLE_INVERSE). ``restart_wfn``: start from this wavefunction.
    """
    dft: dict[str, Any] = {"PRINT": {"MULLIKEN": {}, "HIRSHFELD": {}}}
    subsys: dict[str, Any] = {}
    for el, u in settings.hubbard_u.items():
        if el not in structure.symbol_set or u == 0:
            continue
        plus_u: dict[str, Any] = {"L": 2, "U_MINUS_J": f"[eV] {u}"}
        if settings.u_ramping_ev:
            plus_u.update(U_RAMPING=f"[eV] {settings.u_ramping_ev}", EPS_U_RAMPING=1e-3)
        for alias in _kind_aliases(structure, el):
            subsys[alias] = {"DFT_PLUS_U": plus_u}
    if subsys:
        dft["PLUS_U_METHOD"] = settings.plus_u_method
    scf: dict[str, Any] = {"PRINT": _RESTART_PRINT}
    if settings.ot:
        scf["OT"] = {"LINESEARCH": settings.ot_linesearch}
        if roks:
            scf["OT"]["ROTATION"] = True
            if settings.ot_preconditioner == "FULL_ALL":
                scf["OT"]["PRECONDITIONER"] = "FULL_SINGLE_INVERSE"
    else:  # pymatgen writes MAX_SCF 400 for diagonalisation, whatever max_scf says
        scf["MAX_SCF"] = settings.scf_limit
        scf["MIXING"] = {"METHOD": settings.mixing_method, "ALPHA": settings.mixing_alpha,
                         "BETA": settings.mixing_beta, "NBUFFER": settings.mixing_nbuffer}  # fmt: skip
        if settings.added_mos:
            scf["ADDED_MOS"] = settings.added_mos
    if restart_wfn:
        scf["SCF_GUESS"] = "RESTART"
        dft["WFN_RESTART_FILE_NAME"] = restart_wfn
    if roks:
        dft["ROKS"] = True
    dft["SCF"] = scf
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
    magnetic: bool | None = None,
    restart_wfn: str | None = None,
) -> Path:
    """Write ``run_dir/cp2k.inp`` for one LF (RKS; ROKS doublet if the electron count is odd) or HF (UKS,
    MAGNETIZATION per KIND) single point.

    ``magnetic``: spin-polarized (UKS); default: ``fidelity`` is one of the default magnetic fidelities.
    ``restart_wfn``: wavefunction file (in ``run_dir``) the SCF starts from.
    """
    from pymatgen.io.cp2k.sets import StaticSet

    hf = fidelity in MAGNETIC_FIDELITIES if magnetic is None else magnetic
    if hf and magmoms is None:
        magmoms = initial_magmoms(structure, settings)
    s = _clean_structure(structure, magmoms if hf else None)
    n_el = electron_count(s, settings)
    # odd count, restricted: ROKS doublet with OT; diagonalisation + smearing takes fractional occupations (RKS)
    roks = not hf and n_el % 2 == 1 and settings.odd_restricted == "roks" and settings.ot
    mult = multiplicity(n_el, magmoms) if hf else (2 if roks else 1)
    data_dir = data_dir or default_data_dir()
    uis = _input_settings(s, settings, spin=hf, mult=mult, data_dir=data_dir)
    # basis/potential are resolved objects: point pymatgen's own data-dir lookup at an empty path
    with pymatgen_cp2k_env(data_dir / "_resolved_by_mfal", settings.functional), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ci = StaticSet(structure=s, kpoints=None, **uis)  # no k-points: DFT+U is Gamma-only
        except ValueError as err:
            raise ConfigError(f"CP2K input for {s.composition.reduced_formula}: {err}") from err
    ci.update(_override_params(s, settings, roks=roks, restart_wfn=restart_wfn))
    run_dir.mkdir(parents=True, exist_ok=True)
    ci.write_file("cp2k.inp", str(run_dir))
    return run_dir / "cp2k.inp"
