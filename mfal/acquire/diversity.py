"""Structure descriptors and farthest-point sampling for diverse picks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymatgen.core import Structure

#: elements whose fractions enter the descriptor (others are summed into one "other" slot)
_ELEMENTS = ("Li", "Mn", "Fe", "Co", "Ni", "P", "O")


def structure_descriptor(
    structure: Structure, r_max: float = 5.0, n_bins: int = 25, sigma: float = 0.1
) -> np.ndarray:
    """Composition + lattice + smoothed radial distribution, as one vector.

    Parts: element fractions (Li, Mn, Fe, Co, Ni, P, O, other), volume per atom / 10 Å³, lattice lengths / mean,
    and a Gaussian-smoothed histogram of minimum-image pair distances in (0, ``r_max``] Å normalised per atom.
    """
    comp = structure.composition.fractional_composition
    fracs = [comp.get(el, 0.0) for el in _ELEMENTS]
    fracs.append(max(0.0, 1.0 - sum(fracs)))
    abc = np.asarray(structure.lattice.abc, dtype=float)
    lat = [structure.volume / len(structure) / 10.0, *(abc / abc.mean())]
    d = structure.distance_matrix[np.triu_indices(len(structure), k=1)]
    d = d[(d > 0) & (d <= r_max)]
    centres = np.linspace(r_max / n_bins, r_max, n_bins)
    rdf = np.exp(-((centres[None, :] - d[:, None]) ** 2) / (2 * sigma**2)).sum(axis=0) / len(structure)
    return np.concatenate([np.asarray(fracs) * 5.0, np.asarray(lat), rdf / max(1.0, rdf.max())])


def farthest_point_order(x: np.ndarray, start: int = 0, n: int | None = None) -> list[int]:
    """Indices in farthest-point order (each next point maximises its distance to those chosen).

    Args:
        x: ``[m, d]`` descriptors.
        start: first index.
        n: how many to return (all by default).
    """
    x = np.asarray(x, dtype=float)
    m = len(x)
    if m == 0:
        return []
    n = m if n is None else min(n, m)
    order = [start]
    dist = np.linalg.norm(x - x[start], axis=1)
    while len(order) < n:
        dist[order] = -1.0
        nxt = int(np.argmax(dist))
        order.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return order


def descriptors(structures: Sequence[Structure]) -> np.ndarray:
    """``[n, d]`` descriptors of ``structures``."""
    return np.stack([structure_descriptor(s) for s in structures]) if structures else np.zeros((0, 1))
