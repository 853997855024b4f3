"""Structure files for ``mfal label``: every supported format read, malformed ones rejected with one line."""

from __future__ import annotations

import json

import pytest

from mfal.errors import DataError
from mfal.label.inputs import read_structures


def test_formats(lifepo4, tmp_path):
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    lifepo4.to(filename=str(tmp_path / "POSCAR"), fmt="poscar")
    lifepo4.to(filename=str(tmp_path / "cell.cif"))
    (tmp_path / "cell.json").write_text(json.dumps([lifepo4.as_dict(), {"structure": lifepo4.as_dict()}]))
    atoms = AseAtomsAdaptor.get_atoms(lifepo4)
    ase.io.write(tmp_path / "two.extxyz", [atoms, atoms], format="extxyz")
    for name, n in (("POSCAR", 1), ("cell.cif", 1), ("cell.json", 2), ("two.extxyz", 2)):
        got = read_structures(tmp_path / name)
        assert len(got) == n
        assert all(s.composition == lifepo4.composition for s in got)
        assert got[0].lattice.abc == pytest.approx(lifepo4.lattice.abc, abs=1e-4)


def test_bad_files(tmp_path):
    import ase
    import ase.io

    with pytest.raises(DataError, match="no such structure file"):
        read_structures(tmp_path / "missing.cif")
    (tmp_path / "bad.cif").write_text("data_x\n_cell_length_a oops\n")
    with pytest.raises(DataError, match="bad.cif: not a readable structure file"):
        read_structures(tmp_path / "bad.cif")
    (tmp_path / "bad.json").write_text('{"lattice": 1}')
    with pytest.raises(DataError, match="entry 0 is not a pymatgen Structure"):
        read_structures(tmp_path / "bad.json")
    ase.io.write(
        tmp_path / "molecule.xyz", ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), format="extxyz"
    )
    with pytest.raises(DataError, match="no 3D periodic cell"):
        read_structures(tmp_path / "molecule.xyz")


def test_cp2k_lf_summary_of_an_odd_electron_cell_says_roks(lifepo4, tmp_path):
    """Li0.75FePO4 (one Li removed: odd electron count): the LF line says ROKS doublet, not a failing RKS."""
    from mfal.label.inputs import write_inputs

    delithiated = lifepo4.copy()
    delithiated.remove_sites([next(i for i, s in enumerate(delithiated) if s.specie.symbol == "Li")])
    (line,) = write_inputs("cp2k", "lf", [delithiated], tmp_path / "roks")
    assert "ROKS multiplicity=2" in line and "would fail" not in line
    inp = next((tmp_path / "roks").rglob("*.inp")).read_text()
    assert "ROKS" in inp.upper()
    (line,) = write_inputs({"kind": "cp2k", "options": {"odd_restricted": "fail"}}, "lf", [delithiated], tmp_path / "f")
    assert "RKS multiplicity=1" in line and "the RKS label would fail" in line


def test_cp2k_lf_without_u_writes_the_smeared_first_rung(lifepo4, tmp_path):
    """LF without +U (``hubbard_u: {}``) on Li0.75FePO4: the inputs are the labeler's first rung (smeared RKS,
    Fermi–Dirac 1000 K, no +U, no ROKS) and the summary line says so."""
    from mfal.label.inputs import write_inputs

    delithiated = lifepo4.copy()
    delithiated.remove_sites([next(i for i, s in enumerate(delithiated) if s.specie.symbol == "Li")])
    (line,) = write_inputs({"kind": "cp2k", "options": {"hubbard_u": {}}}, "lf", [delithiated], tmp_path / "nou")
    assert "RKS multiplicity=1 +U none" in line and "ROKS" not in line
    inp = next((tmp_path / "nou").rglob("*.inp")).read_text()
    assert "&SMEAR" in inp and "DFT_PLUS_U" not in inp and "ROKS" not in inp.upper()
