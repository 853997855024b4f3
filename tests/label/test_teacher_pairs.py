"""Teacher pairs: the pure LF transforms (exact derivatives, checked by finite differences) and the gap of the
realistic pair measured with the real pretrained CHGNet models of the chgnet wheel."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from mfal.bench.science_data import make_structures
from mfal.bench.science_gap import gap_stats
from mfal.errors import ConfigError
from mfal.label.teacher import TeacherConfig, TeacherLabeler, pair_fidelities
from mfal.label.teacher_pairs import (
    PAIRS,
    BondSpring,
    LFTransform,
    exchange_energy,
    map_back,
    scaled,
    spring_terms,
    tm_oxidation,
    transform_labels,
)

SPRING = BondSpring(k=7.0, r0=2.15)


@pytest.fixture(scope="module")
def cells():
    return make_structures(10, 3)


def _strained(s: Structure, eps: np.ndarray) -> Structure:
    return Structure(Lattice(s.lattice.matrix @ (np.eye(3) + eps).T), s.species, s.frac_coords)


def test_spring_forces_and_stress_are_exact_derivatives(cells):
    s, h = cells[1], 1e-5
    e, f, sig = spring_terms(s, SPRING)
    assert e > 0 and np.abs(f).max() > 0.05
    for i in (0, 7, 20):
        for a in range(3):
            d = np.eye(3)[a] * h
            plus, minus = s.copy(), s.copy()
            plus.translate_sites([i], d, frac_coords=False)
            minus.translate_sites([i], -d, frac_coords=False)
            fd = -(spring_terms(plus, SPRING)[0] - spring_terms(minus, SPRING)[0]) / (2 * h)
            assert f[i, a] == pytest.approx(fd, abs=1e-5)
    for a, b in ((0, 0), (1, 2), (2, 2)):
        eps = np.zeros((3, 3))
        eps[a, b] += h / 2
        eps[b, a] += h / 2
        fd = (spring_terms(_strained(s, eps), SPRING)[0] - spring_terms(_strained(s, -eps), SPRING)[0]) / (
            2 * h
        )
        assert sig[a, b] == pytest.approx(fd / s.volume * 160.21766208, abs=1e-4)


def test_rescaled_cell_maps_forces_and_stress_back_exactly(cells):
    """E_LF(x) = E(s·x): forces s·F(s·x), stress s³·σ(s·x), checked on an analytic E (the bond term)."""
    s0, sc, h = cells[2], 0.97, 1e-5
    _, f_s, sig_s = spring_terms(scaled(s0, sc), SPRING)
    f, sig = map_back(f_s, sig_s, sc)
    i = 4
    for a in range(3):
        d = np.eye(3)[a] * h
        plus, minus = s0.copy(), s0.copy()
        plus.translate_sites([i], d, frac_coords=False)
        minus.translate_sites([i], -d, frac_coords=False)
        fd = -(spring_terms(scaled(plus, sc), SPRING)[0] - spring_terms(scaled(minus, sc), SPRING)[0]) / (
            2 * h
        )
        assert f[i, a] == pytest.approx(fd, abs=1e-5)
    eps = np.diag([h, 0, 0])
    fd = (
        spring_terms(scaled(_strained(s0, eps), sc), SPRING)[0]
        - spring_terms(scaled(_strained(s0, -eps), sc), SPRING)[0]
    ) / (2 * h)
    assert sig[0, 0] == pytest.approx(fd / s0.volume * 160.21766208, abs=1e-4)


def test_oxidation_follows_li_content_fe_first(lifepo4):
    ox = tm_oxidation(lifepo4)
    assert set(ox.values()) == {2}
    delith = lifepo4.copy()
    delith.remove_sites([i for i, site in enumerate(delith) if site.specie.symbol == "Li"][:2])
    assert sorted(tm_oxidation(delith).values()) == [2, 2, 3, 3]
    # LiFePO4: 4 Fe2+ x 4 unpaired; two Fe3+ have 5
    assert exchange_energy(lifepo4, 0.1) == pytest.approx(1.6)
    assert exchange_energy(delith, 0.1) == pytest.approx(1.8)


def test_identity_transform_changes_nothing(cells):
    f = np.ones((len(cells[0]), 3))
    e, f2, s2 = transform_labels(cells[0], -5.0, f, np.eye(3), LFTransform())
    assert e == -5.0 and np.array_equal(f2, f) and np.array_equal(s2, np.eye(3))
    assert LFTransform().identity and not PAIRS["realistic"]["low"][2].identity


def test_pair_selection_and_unknown_pair():
    assert TeacherConfig().fidelities["lf"].model == "0.2.0"
    cfg = TeacherConfig(pair="realistic")
    assert cfg.fidelities["lf"].transform.cell_scale != 1.0 and cfg.hf_model() == "0.3.0"
    with pytest.raises(ConfigError, match="pair"):
        pair_fidelities("nope")


def test_realistic_pair_gap_resembles_cp2k_and_default_pair_is_close(cells):
    """Gap of real CHGNet labels on 10 pool cells: realistic ≈ CP2K RKS/UKS (0.39, −0.55 eV/atom, −5 GPa);
    the default pair stays the close one (≈ 7 %)."""
    stats = {}
    for pair in ("chgnet-020-030", "realistic"):
        lab = TeacherLabeler(TeacherConfig(pair=pair, batch_size=5))
        lf, hf = lab.label(cells, "lf"), lab.label(cells, "hf")
        assert all(d.status == "ok" for d in lf + hf)
        stats[pair] = gap_stats(list(zip(lf, hf, strict=True)))
    close, real = stats["chgnet-020-030"], stats["realistic"]
    assert close["dF_over_F"] < 0.12 and abs(close["dE_mean_ev_atom"]) < 0.02
    assert 0.3 <= real["dF_over_F"] <= 0.5
    assert -0.65 <= real["dE_mean_ev_atom"] <= -0.45 and 0.01 <= real["dE_std_ev_atom"] <= 0.06
    assert -9.0 <= real["dP_mean_gpa"] <= -2.0
