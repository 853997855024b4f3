"""ASE calculator: units and conventions, a few MD steps and a short relaxation."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS
from pymatgen.io.ase import AseAtomsAdaptor

from mfal.fidelity import UnknownFidelityError
from mfal.model import MFCHGNetCalculator


@pytest.fixture
def atoms(feo_cell):
    return AseAtomsAdaptor.get_atoms(feo_cell)


def test_results_match_model_predict(_mf_pretrained, feo_cell, atoms):
    atoms.calc = MFCHGNetCalculator(_mf_pretrained, fidelity="hf", device="cpu")
    pred = _mf_pretrained.predict(feo_cell, "hf")
    assert atoms.get_potential_energy() == pytest.approx(pred["e"] * len(atoms), rel=1e-6)  # eV total
    np.testing.assert_allclose(atoms.get_forces(), pred["f"], atol=1e-6)
    stress = atoms.get_stress(voigt=False)  # eV/Å^3
    np.testing.assert_allclose(stress * 160.21766208, pred["s"], atol=1e-4)  # back to GPa
    np.testing.assert_allclose(atoms.get_magnetic_moments(), pred["m"], atol=1e-6)


def test_md_and_relaxation_from_checkpoint(_mf_pretrained, atoms, tmp_path):
    sha = _mf_pretrained.save(tmp_path / "m.pt")
    atoms.calc = MFCHGNetCalculator(tmp_path / "m.pt", fidelity="lf", device="auto", sha256=sha)
    e0 = atoms.get_potential_energy()
    fmax0 = np.linalg.norm(atoms.get_forces(), axis=1).max()
    opt = BFGS(atoms, logfile=None)
    opt.run(fmax=0.01, steps=4)
    assert atoms.get_potential_energy() < e0
    assert np.linalg.norm(atoms.get_forces(), axis=1).max() < fmax0

    atoms.set_momenta(np.zeros((len(atoms), 3)))
    atoms.rattle(0.05, seed=2)
    e_start = atoms.get_total_energy()
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs, logfile=None)
    dyn.run(4)
    assert atoms.get_kinetic_energy() > 0
    assert abs(atoms.get_total_energy() - e_start) < 0.05  # eV: energy conserved over a few steps


def test_unknown_fidelity(_mf_pretrained):
    with pytest.raises(UnknownFidelityError, match="known fidelities"):
        MFCHGNetCalculator(_mf_pretrained, fidelity="dft")
