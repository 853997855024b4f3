"""Replay labeler: labels found by structure in a real extxyz file and a real embedded (MontyStore) store."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.errors import ConfigError, DataError
from mfal.label import get_labeler
from mfal.label.replay import ReplayLabeler
from mfal.label.teacher import TeacherLabeler


@pytest.fixture(scope="module")
def pool(lifepo4):
    """Three distinct cells labeled by the teacher at LF; the third also at HF."""
    from pymatgen.core import Structure

    cells = []
    for seed in range(3):
        noise = np.random.default_rng(seed).normal(0, 0.03, (len(lifepo4), 3))
        cells.append(
            Structure(
                lifepo4.lattice, lifepo4.species, lifepo4.cart_coords + noise, coords_are_cartesian=True
            )
        )
    teacher = TeacherLabeler()
    return cells, teacher.label(cells, "lf") + teacher.label(cells[2:], "hf")


def test_replay_from_extxyz(pool, tmp_path):
    from mfal.store.extxyz import write_extxyz

    cells, frames = pool
    path = tmp_path / "pool.extxyz"
    write_extxyz(frames, path)
    lab = get_labeler("replay", dataset=path)
    assert len(lab) == 4
    out = lab.label([cells[1], cells[0]], "lf", campaign="bench", round=2)
    for got, want in zip(out, [frames[1], frames[0]], strict=True):
        assert got.status == "ok" and got.source == "replay" and got.round == 2
        assert got.energy == pytest.approx(want.energy)
        np.testing.assert_allclose(got.forces, want.forces, atol=1e-6)
        assert got.cost == pytest.approx(want.cost)
    (hf,) = lab.label([cells[2]], "hf")
    assert hf.status == "ok" and hf.magmoms is not None


def test_missing_structure_or_fidelity_fails(pool, lifepo4):
    cells, frames = pool
    lab = ReplayLabeler(frames)
    missing = lab.label([lifepo4, cells[0]], "hf")
    assert [f.status for f in missing] == ["failed", "failed"]
    assert missing[0].status_reason == "not in replay dataset"
    moved = cells[0].copy()
    moved.translate_sites([0], [0.1, 0, 0], frac_coords=False)
    assert lab.label([moved], "lf")[0].status == "failed"


def test_replay_from_store(pool, tmp_path):
    from mfal.store import open_store

    cells, frames = pool
    with open_store(tmp_path / "store") as store:
        store.upsert_frames(frames)
    out = ReplayLabeler(store=tmp_path / "store").label(cells, "lf")
    assert [f.frame_id for f in out] == [f.frame_id for f in frames[:3]]


def test_bad_dataset(tmp_path):
    with pytest.raises(ConfigError, match="dataset"):
        ReplayLabeler()
    with pytest.raises(DataError, match="expected an .extxyz"):
        ReplayLabeler(tmp_path / "pool.csv")
