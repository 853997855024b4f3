"""Every structure is checked before any labeling: an unknown element is one DataError, nothing charged."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from mfal.errors import DataError


@pytest.fixture
def bad():
    return Structure(Lattice.cubic(3.0), ["Xx", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_teacher_refuses_before_labeling(lifepo4, bad):
    from mfal.label.teacher import TeacherLabeler

    with pytest.raises(DataError, match=r"^teacher labeler: structure 2 of 2: .*'Xx'") as err:
        TeacherLabeler().label([lifepo4, bad], "hf")
    assert "\n" not in str(err.value)


def test_cp2k_runs_nothing(tmp_path, bad, lifepo4, cp2k_ready):
    from mfal.label.cp2k import Cp2kLabeler

    calls = []
    lab = Cp2kLabeler(runner=lambda *args: calls.append(args) or 1.0)
    with pytest.raises(DataError, match="cp2k labeler: structure 1 of 2.*'Xx'"):
        lab.label([bad, lifepo4], "lf", workdir=tmp_path)
    assert calls == [] and not (tmp_path / "cp2k_runs").exists() and list(tmp_path.iterdir()) == []


def test_vasp_and_replay_refuse(tmp_path, bad):
    from mfal.label import get_labeler
    from mfal.label.replay import ReplayLabeler

    with pytest.raises(DataError, match="vasp labeler.*'Xx'"):
        get_labeler("vasp").label([bad], "hf", workdir=tmp_path / "v")
    assert not (tmp_path / "v").exists()
    with pytest.raises(DataError, match="replay labeler.*'Xx'"):
        ReplayLabeler([]).label([bad], "hf")


def test_nonfinite_coordinates_are_refused(lifepo4):
    import numpy as np

    from mfal.label.base import validate_structures

    s = lifepo4.copy()
    s._sites[0]._frac_coords = np.array([np.nan, 0.0, 0.0])  # what a NaN extxyz position becomes
    with pytest.raises(DataError, match="structure 1 of 1"):
        validate_structures([s], "teacher")
