"""Crystal graphs for MFCHGNet: chgnet's converter behind checks that name the bad structure.

chgnet's own ``StructureData`` silently replaces structures it fails to convert; here a structure that cannot be
converted raises :class:`~mfal.errors.DataError` and none is ever dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from chgnet.graph import CrystalGraph, CrystalGraphConverter
from pymatgen.core import Structure

from mfal.errors import DataError
from mfal.model.components import MAX_Z


def structure_graph(converter: CrystalGraphConverter, structure: Structure, name: str) -> CrystalGraph:
    """Crystal graph of one ordered structure; errors start with ``name``."""
    if not isinstance(structure, Structure):
        raise DataError(f"{name}: expected a pymatgen Structure, got {type(structure).__name__}")
    if len(structure) == 0:
        raise DataError(f"{name}: structure has no sites")
    if not structure.is_ordered:
        raise DataError(f"{name}: structure is disordered (partial occupancies); order it first")
    bad = sorted({str(site.specie) for site in structure if not 1 <= site.specie.Z <= MAX_Z})
    if bad:
        raise DataError(f"{name}: element(s) {bad} outside the model's range Z = 1..{MAX_Z}")
    try:
        return converter(structure, graph_id=name)
    except ValueError as err:
        if "isolated atom" in str(err):
            cutoff = float(converter.atom_graph_cutoff)
            raise DataError(
                f"{name}: has isolated atom(s) with no neighbour within the {cutoff:g} Å cutoff"
            ) from err
        raise DataError(f"{name}: graph conversion failed: {err}") from err
    except RuntimeError as err:
        raise DataError(f"{name}: graph conversion failed: {err}") from err


def structure_graphs(
    converter: CrystalGraphConverter,
    structures: Structure | Sequence[Structure],
    names: Sequence[str] | None = None,
) -> list[CrystalGraph]:
    """Crystal graphs of ``structures`` in order; a failure names ``names[i]`` or ``structure i``."""
    if isinstance(structures, Structure):
        structures = [structures]
    if names is not None and len(names) != len(structures):
        raise DataError(f"got {len(names)} names for {len(structures)} structures")
    return [
        structure_graph(converter, s, str(names[i]) if names is not None else f"structure {i}")
        for i, s in enumerate(structures)
    ]
