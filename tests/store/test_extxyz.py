"""extxyz export/import: round trip through ASE files, ASE's own view of the labels, bad files."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest

from mfal.errors import DataError
from mfal.store.extxyz import EV_A3_TO_GPA, read_extxyz, write_extxyz


def test_round_trip_keeps_ids_and_labels(tmp_path, frames_factory, lifepo4):
    hf = frames_factory(2, fidelity="hf", round=3, campaign="demo")
    lf = frames_factory(1, fidelity="lf", seed=1, source="import")
    bad = frames_factory(1, fidelity="hf", seed=2)[0].model_copy(
        update={"status": "quarantined", "status_reason": "Fe moments collapsed (0.1 μB)"}
    )
    frames = [*hf, *lf, bad]
    path = tmp_path / "frames.extxyz"
    assert write_extxyz(frames, path) == 4
    back = read_extxyz(path)
    assert [f.frame_id for f in back] == [f.frame_id for f in frames]
    for a, b in zip(frames, back, strict=True):
        assert (b.fidelity, b.source, b.status, b.status_reason) == (
            a.fidelity,
            a.source,
            a.status,
            a.status_reason,
        )
        assert (b.round, b.campaign, b.calc, b.created_at) == (a.round, a.campaign, a.calc, a.created_at)
        assert b.energy == pytest.approx(a.energy, abs=1e-8)
        np.testing.assert_allclose(b.forces, a.forces, atol=1e-7)
        np.testing.assert_allclose(b.stress, a.stress, atol=1e-7)
        assert (b.magmoms is None) == (a.magmoms is None)
        if a.magmoms is not None:
            np.testing.assert_allclose(b.magmoms, a.magmoms, atol=1e-7)
        np.testing.assert_allclose(b.get_structure().cart_coords, a.get_structure().cart_coords, atol=1e-6)


def test_ase_sees_energy_forces_and_stress_in_its_units(tmp_path, frames_factory):
    frame = frames_factory(1)[0]
    path = tmp_path / "one.xyz"
    write_extxyz([frame], path)
    (atoms,) = ase.io.read(path, index=":")
    assert atoms.get_potential_energy() == pytest.approx(frame.energy)
    np.testing.assert_allclose(atoms.get_forces(), frame.forces, atol=1e-7)
    s = np.asarray(frame.stress)
    voigt = [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
    np.testing.assert_allclose(atoms.get_stress() * EV_A3_TO_GPA, voigt, atol=1e-6)
    assert atoms.info["fidelity"] == "hf" and atoms.info["calc_code"] == "chgnet-teacher"


def test_foreign_extxyz_needs_a_fidelity_and_gets_a_derived_id(tmp_path, lifepo4):
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(lifepo4)
    atoms.info["energy"] = -190.5
    atoms.arrays["forces"] = np.zeros((len(atoms), 3))
    path = tmp_path / "foreign.xyz"
    ase.io.write(path, [atoms], format="extxyz")
    with pytest.raises(DataError, match=r"foreign.xyz frame 0: no 'fidelity' info key"):
        read_extxyz(path)
    with pytest.raises(DataError, match=r"frame 0: .*'xf' not in known fidelities"):
        read_extxyz(path, fidelity="xf")
    (frame,) = read_extxyz(path, fidelity="lf")
    assert frame.fidelity == "lf" and frame.source == "import" and frame.energy == pytest.approx(-190.5)
    assert read_extxyz(path, fidelity="lf")[0].frame_id == frame.frame_id


def test_malformed_and_mismatched_files_fail_naming_the_file(tmp_path, frames_factory):
    bad = tmp_path / "bad.xyz"
    bad.write_text('3\nLattice="1 0 0 0 1 0 0 0 1" Properties=species:S:1:pos:R:3\nFe 0 0 0\nO 0.5\n')
    with pytest.raises(DataError, match="bad.xyz: not a readable extxyz file"):
        read_extxyz(bad)
    with pytest.raises(DataError, match="missing.xyz: no such file"):
        read_extxyz(tmp_path / "missing.xyz")
    good = tmp_path / "good.xyz"
    write_extxyz(frames_factory(1, fidelity="hf"), good)
    with pytest.raises(
        DataError, match=r"good.xyz frame 0: fidelity='hf' in the file but 'lf' was requested"
    ):
        read_extxyz(good, fidelity="lf")


def test_all_digit_frame_id_survives_ase_number_parsing(tmp_path, frames_factory):
    """ASE reads ``frame_id=000123...`` back as a float; the raw text must be used instead."""
    a, b = frames_factory(2)
    a = a.model_copy(update={"frame_id": "000123000000000000000123"})
    b = b.model_copy(update={"frame_id": "1234e5678901234567890123"})
    path = tmp_path / "digits.xyz"
    write_extxyz([a, b], path)
    assert not isinstance(ase.io.read(path, index=0).info["frame_id"], str)  # the ASE behaviour handled here
    assert [f.frame_id for f in read_extxyz(path)] == [a.frame_id, b.frame_id]
