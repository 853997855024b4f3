"""Start structures bundled with dependencies (no downloads)."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Structure


def lifepo4_structure() -> Structure:
    """28-atom olivine LiFePO4 (Li4Fe4P4O16) bundled with pymatgen, sites sorted by electronegativity."""
    import pymatgen.util
    from monty.serialization import loadfn

    path = Path(pymatgen.util.__file__).parent / "structures" / "LiFePO4.json"
    structure = loadfn(path)
    structure.remove_oxidation_states()
    return structure.get_sorted_structure()
