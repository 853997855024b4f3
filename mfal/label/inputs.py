"""Read structures to label: POSCAR/CONTCAR/*.vasp, CIF, extxyz/xyz (every frame), pymatgen JSON.

A file that cannot be read becomes one :class:`DataError` line naming it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from pymatgen.core import Structure

from mfal.errors import DataError

EXTXYZ_SUFFIXES = (".xyz", ".extxyz")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def _read_json(path: Path) -> list[Structure]:
    data = json.loads(path.read_text())
    items = data if isinstance(data, list) else [data]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and "structure" in item and "lattice" not in item:
            item = item["structure"]  # a FrameDoc or a task document
        try:
            out.append(Structure.from_dict(item))
        except Exception as err:
            raise DataError(f"{path}: entry {i} is not a pymatgen Structure dict ({_one_line(err)})") from err
    return out


def _read_extxyz(path: Path) -> list[Structure]:
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    images = ase.io.read(str(path), index=":")
    out = []
    for i, atoms in enumerate(images):
        if not all(atoms.pbc) or atoms.cell.rank < 3:
            raise DataError(f"{path}: frame {i} has no 3D periodic cell (need Lattice= and pbc)")
        out.append(AseAtomsAdaptor.get_structure(atoms))
    return out


def read_structures(path: str | Path) -> list[Structure]:
    """All structures in one file (extxyz: every frame); malformed or missing file -> DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such structure file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix == ".json":
                structures = _read_json(path)
            elif path.suffix in EXTXYZ_SUFFIXES:
                structures = _read_extxyz(path)
            else:
                structures = [Structure.from_file(str(path))]
    except DataError:
        raise
    except Exception as err:
        raise DataError(
            f"{path}: not a readable structure file (POSCAR, CIF, extxyz or JSON expected; {_one_line(err)})"
        ) from err
    if not structures:
        raise DataError(f"{path}: contains no structures")
    for s in structures:
        if len(s) == 0:
            raise DataError(f"{path}: contains an empty structure")
        if not s.is_ordered:
            raise DataError(
                f"{path}: structure {s.composition} is disordered (partial occupancies); order it first"
            )
    return structures
