"""Teacher pairs: which pretrained CHGNet stands in for each fidelity, and the pure transforms that widen the gap.

A pair is selected by name (``TeacherConfig.pair``):

- ``chgnet-020-030`` (default, the original pair): LF = CHGNet 0.2.0, HF = CHGNet 0.3.0. Close: |ΔF|/|F| ≈ 7 %,
  an almost constant energy offset, no stress gap to speak of.
- ``realistic``: HF = CHGNet 0.3.0 (with moments); LF = CHGNet 0.2.0 transformed so that the LF/HF gap looks like
  real CP2K RKS vs UKS PBE+U on LiFePO4 (|ΔF|/|F| 0.39, ΔE −0.55 ± 0.03 eV/atom structure dependent, ΔP −5.2 ±
  1.2 GPa): the model is evaluated on the cell isotropically rescaled by ``cell_scale`` (another equilibrium
  volume; forces and stress mapped back exactly), plus a harmonic TM–O bond term (another TM–O bond length, as a
  closed-shell calculation gives; energy, forces and virial stress analytic), plus a per-atom shift and a
  per-transition-metal exchange term ``−J × unpaired d electrons`` whose oxidation states follow the Li content
  (Fe2+ is oxidised before Mn2+), which is not linear in the composition where Mn3+ appears.

Every LF transform is a conservative, rotation-invariant change of the potential-energy surface, so a model can
learn it. Units: eV, Å, GPa (CHGNet sign: σ = (1/V) ∂E/∂ε).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Lattice, Structure

from mfal.errors import ConfigError

GPA_PER_EV_A3 = 160.21766208
#: unpaired d electrons of high-spin olivine transition-metal ions
UNPAIRED_D = {("Fe", 2): 4, ("Fe", 3): 5, ("Mn", 2): 5, ("Mn", 3): 4}


class BondSpring(BaseModel):
    """Harmonic bond term ½ k (d − r0)² between every ``centers``–``neighbors`` pair, tapered to zero between
    ``r_taper`` and ``r_cut`` (cos² switch), so the sum is smooth."""

    model_config = ConfigDict(extra="forbid")

    k: float = Field(ge=0, description="spring constant (eV/Å²)")
    r0: float = Field(gt=0, description="rest length (Å)")
    centers: tuple[str, ...] = ("Fe", "Mn")
    neighbors: tuple[str, ...] = ("O",)
    r_taper: float = Field(2.6, gt=0, description="taper starts (Å)")
    r_cut: float = Field(3.0, gt=0, description="term is zero beyond (Å)")


class LFTransform(BaseModel):
    """Pure transforms applied to a teacher model's labels (all defaults = the model's labels unchanged)."""

    model_config = ConfigDict(extra="forbid")

    cell_scale: float = Field(1.0, gt=0, description="evaluate the model on the cell scaled by this (linear)")
    spring: BondSpring | None = None
    energy_per_atom: float = Field(0.0, description="constant added to the energy (eV/atom)")
    exchange_ev: float = Field(
        0.0,
        description="eV per unpaired d electron per TM added to the energy (oxidation states by Li content)",
    )

    @property
    def identity(self) -> bool:
        return self == LFTransform()


def scaled(structure: Structure, s: float) -> Structure:
    """``structure`` with its cell (and Cartesian positions) scaled by ``s`` (fractional coordinates kept)."""
    if s == 1.0:
        return structure
    return Structure(
        Lattice(structure.lattice.matrix * s),
        structure.species,
        structure.frac_coords,
        site_properties=structure.site_properties or None,
    )


def map_back(forces: np.ndarray, stress: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Forces (eV/Å) and stress (GPa) of E(x) = E_model(s·x) from the model's values at s·x:
    F = s·F_model, σ = s³·σ_model (the strain derivative is the same, the volume is s³ smaller)."""
    return forces * s, stress * s**3


def spring_terms(structure: Structure, spring: BondSpring) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV), forces [n, 3] (eV/Å) and stress [3, 3] (GPa, σ = (1/V) ∂E/∂ε) of the bond term."""
    n = len(structure)
    forces = np.zeros((n, 3))
    virial = np.zeros((3, 3))
    symbols = np.array([site.specie.symbol for site in structure])
    if spring.r_cut <= spring.r_taper:
        raise ConfigError(f"spring: r_cut={spring.r_cut} must exceed r_taper={spring.r_taper}")
    center, neigh, images, dist = structure.get_neighbor_list(spring.r_cut)
    keep = (
        np.isin(symbols[center], spring.centers) & np.isin(symbols[neigh], spring.neighbors) & (dist > 1e-8)
    )
    center, neigh, images, dist = center[keep], neigh[keep], images[keep], dist[keep]
    if not len(dist):
        return 0.0, forces, virial
    cart = structure.cart_coords
    vec = (
        cart[neigh] + images @ structure.lattice.matrix - cart[center]
    )  # [pairs, 3] from center to neighbour
    x = np.clip((dist - spring.r_taper) / (spring.r_cut - spring.r_taper), 0.0, 1.0)
    fc = np.cos(0.5 * np.pi * x) ** 2
    dfc = np.where((x > 0) & (x < 1), -0.5 * np.pi * np.sin(np.pi * x) / (spring.r_cut - spring.r_taper), 0.0)
    u = dist - spring.r0
    energy = float(np.sum(0.5 * spring.k * u**2 * fc))
    de_dd = spring.k * u * fc + 0.5 * spring.k * u**2 * dfc  # [pairs] eV/Å
    unit = vec / dist[:, None]
    pair_f = de_dd[:, None] * unit  # force on the center atom (toward the neighbour when stretched)
    np.add.at(forces, center, pair_f)
    np.add.at(forces, neigh, -pair_f)
    virial = np.einsum("p,pa,pb->ab", de_dd / dist, vec, vec)
    return energy, forces, virial / structure.volume * GPA_PER_EV_A3


def tm_oxidation(structure: Structure) -> dict[int, int]:
    """Site index -> oxidation state of each Fe/Mn site of an olivine Li_y(Mn,Fe)PO4 cell: Li vacancies
    (relative to one Li per TM) oxidise Fe2+ first, then Mn2+ (in site order)."""
    symbols = [site.specie.symbol for site in structure]
    tms = [i for i, s in enumerate(symbols) if s in ("Fe", "Mn")]
    n_vac = max(0, len(tms) - symbols.count("Li"))
    order = [i for i in tms if symbols[i] == "Fe"] + [i for i in tms if symbols[i] == "Mn"]
    return {i: (3 if rank < n_vac else 2) for rank, i in enumerate(order)}


def exchange_energy(structure: Structure, ev_per_electron: float) -> float:
    """``ev_per_electron`` × total unpaired d electrons of the cell's Fe/Mn ions (eV)."""
    symbols = [site.specie.symbol for site in structure]
    ox = tm_oxidation(structure)
    return ev_per_electron * sum(UNPAIRED_D[(symbols[i], o)] for i, o in ox.items())


def transform_labels(
    structure: Structure, energy: float, forces: np.ndarray, stress: np.ndarray, t: LFTransform
) -> tuple[float, np.ndarray, np.ndarray]:
    """(energy eV, forces eV/Å, stress GPa) of the transformed surface, from the model's labels at
    ``scaled(structure, t.cell_scale)``."""
    f, s = map_back(np.asarray(forces, float), np.asarray(stress, float), t.cell_scale)
    e = float(energy) + t.energy_per_atom * len(structure)
    if t.spring is not None and t.spring.k > 0:
        es, fs, ss = spring_terms(structure, t.spring)
        e, f, s = e + es, f + fs, s + ss
    if t.exchange_ev:
        e += exchange_energy(structure, t.exchange_ev)
    return e, f, s


#: pair name -> fidelity role ("low"/"high") -> (model, magmoms, transform)
PAIRS: dict[str, dict[str, tuple[str, bool, LFTransform]]] = {
    "chgnet-020-030": {
        "low": ("0.2.0", False, LFTransform()),
        "high": ("0.3.0", True, LFTransform()),
    },
    "realistic": {
        "low": (
            "0.2.0",
            False,
            LFTransform(
                cell_scale=0.995,
                spring=BondSpring(k=7.0, r0=2.15),
                energy_per_atom=0.43,
                exchange_ev=0.1,
            ),
        ),
        "high": ("0.3.0", True, LFTransform()),
    },
}
DEFAULT_PAIR = "chgnet-020-030"
