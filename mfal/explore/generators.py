"""Candidate generators: rattles, strains, Mn/Fe substitution, delithiation (Li_x), supercells, MD snapshots.

All generators are seeded through a ``numpy.random.Generator``; every candidate carries
``properties["candidate_id"]`` (structure fingerprint, stable across runs) and ``properties["origin"]``.
Lengths in Å, temperatures in K, times in fs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pymatgen.core import Lattice, Structure

from mfal.errors import ConfigError
from mfal.store.docs import structure_fingerprint

log = logging.getLogger(__name__)


def tag(structure: Structure, origin: str) -> Structure:
    """Set ``candidate_id`` (fingerprint) and ``origin`` on ``structure`` (in place) and return it."""
    props = {k: v for k, v in (structure.properties or {}).items() if k not in ("candidate_id", "origin")}
    props.update(candidate_id=structure_fingerprint(structure), origin=origin)
    structure.properties = props
    return structure


def _clean(structure: Structure) -> Structure:
    s = structure.copy()
    s.properties = {}
    for key in list(s.site_properties):
        s.remove_site_property(key)
    return s


def rattle(structure: Structure, n: int, stdev: float, rng: np.random.Generator) -> list[Structure]:
    """``n`` copies with Gaussian displacements of ``stdev`` Å per Cartesian component."""
    out = []
    for _ in range(n):
        s = _clean(structure)
        disp = rng.normal(scale=stdev, size=(len(s), 3))
        s = Structure(s.lattice, s.species, s.cart_coords + disp, coords_are_cartesian=True)
        out.append(s)
    return out


def strain(structure: Structure, n: int, max_strain: float, rng: np.random.Generator) -> list[Structure]:
    """``n`` copies under random symmetric strains with components in ±``max_strain``, fractional coords kept."""
    out = []
    for _ in range(n):
        e = rng.uniform(-max_strain, max_strain, size=(3, 3))
        e = 0.5 * (e + e.T)
        lat = Lattice(structure.lattice.matrix @ (np.eye(3) + e))
        out.append(Structure(lat, structure.species, structure.frac_coords))
    return out


def substitute(
    structure: Structure,
    fraction: float,
    rng: np.random.Generator,
    *,
    old: str = "Fe",
    new: str = "Mn",
) -> Structure:
    """Replace ``round(fraction × n_old)`` random ``old`` sites by ``new`` (e.g. LiMn_xFe_{1-x}PO4)."""
    idx = [i for i, site in enumerate(structure) if site.species_string == old]
    if not idx:
        raise ConfigError(f"substitution {old}->{new}: structure {structure.formula} has no {old} site")
    k = int(round(fraction * len(idx)))
    s = _clean(structure)
    for i in rng.choice(idx, size=k, replace=False) if k else []:
        s.replace(int(i), new)
    return s


def delithiate(structure: Structure, li_fraction: float, rng: np.random.Generator) -> Structure:
    """Keep ``round(li_fraction × n_Li)`` random Li sites (Li_x ordering), remove the rest."""
    idx = [i for i, site in enumerate(structure) if site.species_string == "Li"]
    if not idx:
        raise ConfigError(f"delithiation: structure {structure.formula} has no Li site")
    n_remove = len(idx) - int(round(li_fraction * len(idx)))
    s = _clean(structure)
    if n_remove:
        s.remove_sites(sorted(int(i) for i in rng.choice(idx, size=n_remove, replace=False)))
    return s


def supercell(structure: Structure, scaling: Sequence[int]) -> Structure:
    """Supercell ``scaling`` (3 ints) of ``structure``."""
    s = _clean(structure)
    s.make_supercell(list(scaling))
    return s


def md_snapshots(
    structure: Structure,
    calculator: Any,
    *,
    temperature: float,
    steps: int,
    snapshots: int,
    timestep_fs: float,
    seed: int,
    friction: float = 0.02,
) -> list[Structure]:
    """Langevin NVT MD (ASE) at ``temperature`` K with ``calculator``; ``snapshots`` frames evenly spaced.

    The MD stops early (returning what it has) if the calculator yields non-finite forces.
    """
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(_clean(structure))
    atoms.calc = calculator
    atoms.set_constraint(FixCom())
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction,
        rng=rng,
        fixcm=False,
    )
    every = max(1, steps // max(snapshots, 1))
    frames: list[Structure] = []
    for step in range(1, steps + 1):
        dyn.run(1)
        if not np.all(np.isfinite(atoms.get_forces())):
            log.warning("MD at %s K stopped at step %d: non-finite forces", temperature, step)
            break
        if step % every == 0 and len(frames) < snapshots:
            frames.append(AseAtomsAdaptor.get_structure(atoms.copy()))
    return [_clean(f) for f in frames]


def dedupe(structures: Sequence[Structure]) -> list[Structure]:
    """Drop structures whose ``candidate_id`` was seen before (keeps the first)."""
    seen: set[str] = set()
    out = []
    for s in structures:
        cid = s.properties.get("candidate_id") or structure_fingerprint(s)
        if cid not in seen:
            seen.add(cid)
            out.append(s)
    return out


ProgressFn = Callable[[int], None]
