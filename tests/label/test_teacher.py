"""Teacher labeler: real pretrained CHGNet 0.2.0 / 0.3.0 from the chgnet wheel on the 28-atom LiFePO4 cell."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.errors import ConfigError
from mfal.fidelity import UnknownFidelityError
from mfal.label import get_labeler
from mfal.label.base import Labeler
from mfal.label.teacher import TeacherConfig, TeacherLabeler


@pytest.fixture(scope="module")
def cells(lifepo4):
    """The olivine cell plus a rattled copy and a 2x1x1 supercell (56 atoms)."""
    rattled = lifepo4.copy()
    rng = np.random.default_rng(0)
    for i in range(len(rattled)):
        rattled.translate_sites([i], rng.normal(0, 0.05, 3), frac_coords=False)
    return [lifepo4, rattled, lifepo4 * (2, 1, 1)]


@pytest.fixture(scope="module")
def labels(cells):
    lab = get_labeler("teacher")
    return {f: lab.label(cells, f, campaign="c", round=3) for f in ("lf", "hf")}


def test_registry_builds_a_labeler():
    lab = get_labeler("teacher", cost_exponent=2.0)
    assert isinstance(lab, Labeler)
    assert lab.cost(56, "hf") == pytest.approx(270.0 * 4)


def test_hf_has_moments_lf_none(labels, cells):
    for doc in labels["lf"]:
        assert doc.status == "ok" and doc.magmoms is None
        assert doc.calc["model"] == "0.2.0" and doc.calc["surrogate"] is True
    for doc, s in zip(labels["hf"], cells, strict=True):
        assert doc.status == "ok" and doc.source == "teacher"
        m = np.asarray(doc.magmoms)
        fe = [i for i, site in enumerate(s) if site.specie.symbol == "Fe"]
        # CHGNet 0.3.0 predicts high-spin Fe2+ (~3.7-4 μB) and ~0 on Li/P/O
        assert np.all(m[fe] > 3.0)
        assert np.abs(np.delete(m, fe)).max() < 0.5
        assert doc.calc["model"] == "0.3.0"
        assert np.asarray(doc.forces).shape == (len(s), 3)
        assert np.asarray(doc.stress).shape == (3, 3)


def test_labels_do_not_depend_on_the_batch_size(labels, cells):
    """Small batches bound the teacher's memory (≈ 0.3 GB per cell in a batch); they must not change a label."""
    one_by_one = get_labeler("teacher", batch_size=1).label(cells, "hf", campaign="c", round=3)
    for a, b in zip(one_by_one, labels["hf"], strict=True):
        assert a.frame_id == b.frame_id
        assert a.energy == pytest.approx(b.energy, abs=1e-4)
        np.testing.assert_allclose(a.forces, b.forces, atol=1e-4)
        np.testing.assert_allclose(a.magmoms, b.magmoms, atol=1e-4)


def test_costs_and_provenance(labels):
    lf, hf = labels["lf"], labels["hf"]
    assert [d.cost for d in lf] == pytest.approx([190.0, 190.0, 380.0])
    assert [d.cost for d in hf] == pytest.approx([270.0, 270.0, 540.0])
    assert all(d.campaign == "c" and d.round == 3 and d.fidelity_index == 2 for d in hf)
    assert lf[0].frame_id != hf[0].frame_id


def test_fidelities_differ_but_are_related(labels):
    lf, hf = labels["lf"], labels["hf"]
    for a, b in zip(lf, hf, strict=True):
        de = abs(a.energy - b.energy) / a.nsites
        assert 1e-4 < de < 0.5  # different surfaces, same physics (eV/atom)
    # the rattled cell has real forces, and the two models disagree on them
    fa, fb = np.asarray(lf[1].forces), np.asarray(hf[1].forces)
    assert np.abs(fa).max() > 0.1
    assert np.abs(fa - fb).max() > 1e-3
    # supercell energy is extensive: E(2x) = 2 E(1x) within numerical noise
    assert hf[2].energy == pytest.approx(2 * hf[0].energy, rel=1e-4)


def test_failure_injection(cells):
    from mfal.store.docs import structure_fingerprint

    lab = TeacherLabeler(fail_ids=[structure_fingerprint(cells[1])])
    docs = lab.label(cells, "lf")
    assert [d.status for d in docs] == ["ok", "failed", "ok"]
    assert "injected failure" in docs[1].status_reason and docs[1].energy is None
    # fail_rate=1 fails everything, deterministic in the seed; fail_rate=0.5 fails a reproducible subset
    assert all(d.status == "failed" for d in TeacherLabeler(fail_rate=1.0).label(cells[:2], "hf"))
    half = [d.status for d in TeacherLabeler(fail_rate=0.5, seed=1).label(cells[:2], "lf")]
    assert half == [d.status for d in TeacherLabeler(fail_rate=0.5, seed=1).label(cells[:2], "lf")]


def test_isolated_atoms_fail_with_reason():
    from pymatgen.core import Lattice, Structure

    lonely = Structure(Lattice.cubic(20.0), ["Fe"], [[0, 0, 0]])
    (doc,) = TeacherLabeler().label([lonely], "hf")
    assert doc.status == "failed" and "graph" in doc.status_reason


def test_bad_names():
    with pytest.raises(ConfigError, match="known labelers"):
        get_labeler("gaussian")
    with pytest.raises(UnknownFidelityError, match="'mf'"):
        TeacherLabeler().label([], "mf")
    with pytest.raises(ConfigError, match="max_forse"):
        TeacherLabeler(quality={"max_forse": 1.0})
    assert TeacherConfig().fidelities["hf"].magmoms is True
