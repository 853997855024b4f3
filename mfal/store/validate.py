"""Checks every structure and label must pass before it is labeled, trained on or stored.

One place decides what a usable structure is (:func:`validate_structure`) and what a finite label is
(:func:`check_finite`): the importer, the extxyz/JSON readers, :class:`~mfal.store.docs.FrameDoc` and the
labelers call these, so a NaN position or an ``Xx`` site is refused the same way everywhere, in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfal.errors import DataError

#: smallest cell volume accepted (Å³); below it the lattice is treated as singular
MIN_VOLUME = 1e-3


def check_finite(value: Any, field: str, where: str) -> None:
    """DataError naming ``where`` and ``field`` if ``value`` (number or nested list/array) has a NaN/inf or is
    not numeric."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: {field} is not numeric ({err})") from None
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        at = "" if arr.ndim == 0 else f" at index {tuple(int(i) for i in bad[0])}"
        raise DataError(f"{where}: {field} has a non-finite value{at}; expected finite numbers")


def _size(n: float) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n:.0f} bytes"


def check_file_size(path: Path, limit: int, what: str) -> int:
    """Size of ``path`` (bytes); DataError before anything is read if it is over ``limit``."""
    size = path.stat().st_size
    if size > limit:
        raise DataError(
            f"{path}: {_size(size)} is over the {_size(limit)} limit for {what}; split it or raise the limit"
        )
    return size


def validate_structure(structure: Any, where: str) -> None:
    """Raise DataError (one line naming ``where``) unless ``structure`` is a usable periodic crystal.

    Usable: at least one site; finite lattice (Å) with volume ≥ :data:`MIN_VOLUME` Å³; finite fractional and
    Cartesian coordinates; every species a real element (no ``Xx``/dummy species); ordered sites; finite
    numeric site properties (e.g. ``magmom`` in μB).
    """
    from pymatgen.core import Structure
    from pymatgen.core.periodic_table import DummySpecies

    if not isinstance(structure, Structure):
        raise DataError(f"{where}: expected a pymatgen Structure, got {type(structure).__name__}")
    if len(structure) == 0:
        raise DataError(f"{where}: structure has no sites; expected at least one atom")
    matrix = np.asarray(structure.lattice.matrix, dtype=float)
    check_finite(matrix, "lattice", where)
    volume = abs(float(np.linalg.det(matrix)))
    if not volume >= MIN_VOLUME:
        raise DataError(
            f"{where}: lattice is singular (volume {volume:.3g} Å³); expected three independent vectors"
        )
    frac = structure.frac_coords
    check_finite(frac, "fractional coordinates", where)
    check_finite(frac @ matrix, "Cartesian coordinates", where)
    for i, site in enumerate(structure):
        species = site.species
        if len(species) != 1 or next(iter(species.values())) != 1:
            raise DataError(
                f"{where}: site {i} is disordered ({site.species_string}); expected one element per site"
            )
        sp = next(iter(species))
        if isinstance(sp, DummySpecies) or getattr(sp, "Z", 0) < 1:
            raise DataError(f"{where}: site {i} has unknown element symbol {str(sp.symbol)!r}")
    for name, values in structure.site_properties.items():
        numeric = [
            v
            for v in values
            if isinstance(v, int | float | list | tuple | np.ndarray) and not isinstance(v, bool)
        ]
        if numeric and len(numeric) == len(values):
            try:
                arr = np.asarray(numeric, dtype=float)
            except (TypeError, ValueError):
                continue  # ragged or non-numeric: not ours to judge
            check_finite(arr, f"site property {name!r}", where)


def structure_from_dict(data: Any, where: str):
    """pymatgen Structure from ``Structure.as_dict()`` data, or DataError naming the missing/bad part."""
    from pymatgen.core import Structure

    if isinstance(data, Structure):
        return data
    if not isinstance(data, dict):
        raise DataError(f"{where}: structure must be a pymatgen Structure dict, got {type(data).__name__}")
    for key in ("lattice", "sites"):
        if key not in data:
            raise DataError(f"{where}: structure has no {key!r}; expected a pymatgen Structure.as_dict()")
    try:
        return Structure.from_dict(data)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        detail = (
            f"missing {err}" if isinstance(err, KeyError) else str(err).splitlines()[0] if str(err) else ""
        )
        raise DataError(f"{where}: structure is not a valid pymatgen Structure dict ({detail})") from None
