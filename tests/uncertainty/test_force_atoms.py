"""Forces judged per atom and component: the per-component member std is kept in the scores, and a perfectly
calibrated ensemble reaches a miscalibration area near 0 there, while the max-over-atoms statistic cannot."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.campaign import recalibrate
from mfal.campaign.artifacts import RoundScores
from mfal.errors import DataError
from mfal.fidelity import Fidelities
from mfal.store.docs import FrameDoc
from mfal.uncertainty import (
    FidelityScores,
    atom_calibration_stats,
    calibration_stats,
    fit_scale,
    force_component_errors,
    max_force_error,
    miscalibration_area,
    score_candidates,
    spearman_rho,
)


def _perfect_ensemble(n_cells: int, n_atoms: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """σ per atom and component (anisotropic, log-uniform 0.005–0.05 eV/Å) and errors drawn from N(0, σ²)."""
    rng = np.random.default_rng(seed)
    sigma = np.exp(rng.uniform(np.log(0.005), np.log(0.05), (n_cells, n_atoms, 3)))
    return sigma, rng.normal(size=sigma.shape) * sigma


def test_perfect_ensemble_per_component_area_near_zero_while_the_max_atom_statistic_stays_high():
    sigma, err = _perfect_ensemble(1500, 8)
    st = atom_calibration_stats(sigma.reshape(-1, 3), err.reshape(-1, 3))
    assert st.n == 3 * 1500 * 8
    assert st.miscalibration_area < 0.05
    assert st.coverage_1sigma == pytest.approx(0.683, abs=0.02) and st.coverage_2sigma == pytest.approx(0.954, abs=0.01)
    assert st.scale == pytest.approx(1.0, abs=0.05) and st.rho > 0.5
    # the campaign's max-atom pair on the same frames: no scale gets its area below the χ-max floor
    smax = np.linalg.norm(sigma, axis=-1).max(axis=1)
    emax = np.linalg.norm(err, axis=-1).max(axis=1)
    best = min(miscalibration_area(g * smax, emax) for g in np.exp(np.linspace(np.log(0.2), np.log(5), 120)))
    assert best >= 0.12
    fitted = calibration_stats(smax, emax, scale_applied=fit_scale(smax, emax))
    assert fitted.miscalibration_area >= 0.12


def test_atom_stats_rank_atoms_by_norm_and_size_components_with_the_applied_scale():
    sigma, err = _perfect_ensemble(50, 4, seed=1)
    s, e = sigma.reshape(-1, 3), err.reshape(-1, 3)
    st = atom_calibration_stats(s, e)
    assert st.rho == pytest.approx(spearman_rho(np.linalg.norm(s, axis=1), np.linalg.norm(e, axis=1)))
    too_small = atom_calibration_stats(s / 10, e, scale_applied=10.0)  # raw σ 10× too small, scale 10 applied
    assert too_small.miscalibration_area == pytest.approx(st.miscalibration_area)
    assert too_small.scale_applied == 10.0 and too_small.scale == pytest.approx(st.scale * 10, rel=0.02)
    assert atom_calibration_stats(s / 10, e).miscalibration_area > 0.3  # raw: far too small
    nan = s.copy()
    nan[0, 1] = np.nan  # a non-finite atom is dropped whole (3 components)
    assert atom_calibration_stats(nan, e).n == st.n - 3
    empty = atom_calibration_stats(np.zeros((0, 3)), np.zeros((0, 3)))
    assert empty.n == 0 and empty.rho is None and empty.miscalibration_area is None and empty.scale is None
    with pytest.raises(DataError, match="n_atoms, 3"):
        atom_calibration_stats(s[:, :2], e[:, :2])
    f = np.array([[0.1, 0.0, -0.2]])
    np.testing.assert_allclose(force_component_errors(f, np.zeros((1, 3))), f)
    assert max_force_error(f, np.zeros((1, 3))) == pytest.approx(np.linalg.norm(f))


def test_fidelity_scores_from_before_the_per_component_std_still_load():
    old = {"scores": {"force_std_max": [0.1]}, "energy": [-1.0], "forces": [[[0.0, 0.0, 0.0]]]}
    fs = FidelityScores.model_validate(old)
    assert fs.forces_std_xyz is None and fs.forces_std_of(0) is None
    rs = RoundScores.model_validate({"model": ["a" * 64], "ids": ["x"], "fidelities": {"hf": old}})
    assert rs.fidelities["hf"].forces_std_xyz is None
    new = FidelityScores.model_validate({**old, "forces_std_xyz": [[[0.01, 0.02, 0.03]]]})
    np.testing.assert_allclose(new.forces_std_of(0), [[0.01, 0.02, 0.03]])
    assert FidelityScores.model_validate_json(new.model_dump_json()) == new
    with pytest.raises(ValueError, match="forces_std_xyz"):
        FidelityScores.model_validate({**old, "forces_std_xyz": [[[0.01, 0.02]]]})


def test_score_candidates_keeps_the_per_component_std(shared_ensemble, cells):
    out = score_candidates(shared_ensemble, cells, ("lf",))["lf"]
    assert [np.shape(v) for v in out.forces_std_xyz] == [(len(s), 3) for s in cells]
    norm_max = [np.linalg.norm(out.forces_std_of(i), axis=1).max() for i in range(out.n)]
    np.testing.assert_allclose(norm_max, out.array("force_std_max"), rtol=1e-5)
    assert min(np.min(v) for v in out.forces_std_xyz) >= 0


def test_round_calibration_pairs_every_force_component_and_tolerates_old_scores(lifepo4):
    fids = Fidelities()
    n = len(lifepo4)
    rng = np.random.default_rng(3)
    label = rng.normal(scale=0.1, size=(n, 3))
    frame = FrameDoc.from_structure(
        lifepo4, fidelity="lf", source="teacher", energy=-1.0, forces=label.tolist(), campaign="t", round=1
    )
    std = np.full((n, 3), 0.05)
    pred = label + rng.normal(size=(n, 3)) * std
    fs = FidelityScores(scores={"force_std_max": [float(np.linalg.norm(std[0]))], "energy_std": [0.01]},
                        energy=[-1.0], forces=[pred.tolist()], forces_std_xyz=[std.tolist()])  # fmt: skip
    scores = RoundScores(model=["a" * 64], ids=[frame.structure_id], fidelities={"lf": fs, "hf": fs})
    s, e = recalibrate.spread_vs_error(scores, [frame], "lf", "forces_atoms")
    assert len(s) == len(e) == 3 * n
    np.testing.assert_allclose(e, (pred - label).ravel())  # signed, atom by atom
    applied = {"lf": {"forces_atoms": 2.0}}
    stats, scale, counts = recalibrate.round_calibration(fids, applied, {"labeled": (scores, [frame])})
    st = stats["lf"]["forces_atoms"]
    assert st.n == 3 * n and counts["lf"]["forces_atoms_labeled"] == 3 * n and st.scale_applied == 2.0
    assert scale["lf"]["forces_atoms"] == st.scale and stats["lf"]["forces"].n == 1
    assert "forces_atoms" in recalibrate.quantities(fids, "hf")
    # scores saved before the per-component std was kept: no pairs, the applied scale carries over
    old = RoundScores(model=["a" * 64], ids=[frame.structure_id],
                      fidelities={"lf": fs.model_copy(update={"forces_std_xyz": None}), "hf": fs})  # fmt: skip
    stats, scale, _ = recalibrate.round_calibration(fids, applied, {"labeled": (old, [frame])})
    assert stats["lf"]["forces_atoms"].n == 0 and scale["lf"]["forces_atoms"] == 2.0


def test_bench_al_calibration_summary_carries_the_per_atom_keys_beside_the_old_ones():
    from mfal.bench.al_report import atoms_calibration, calibration_summary

    cal = {"forces": {"rho": 0.3, "miscalibration_area": 0.17, "coverage_1sigma": 0.9},
           "forces_atoms": {"rho": 0.7, "miscalibration_area": 0.04, "coverage_1sigma": 0.66, "n": 96}}  # fmt: skip
    assert atoms_calibration(cal) == {"rho_atoms": 0.7, "miscalibration_area_atoms": 0.04, "coverage_1sigma_atoms": 0.66}
    assert set(atoms_calibration({"forces": cal["forces"]}).values()) == {None}  # older RoundDocs
    rows = [{"round": r, "calibration": {"hf": {**cal["forces"], **atoms_calibration(cal)}}} for r in (0, 1, 2)]
    rows.append({"round": 1, "calibration": {"hf": dict(cal["forces"])}})  # a row from before: keys absent
    hf = calibration_summary(rows)["hf"]
    assert hf["rho"] == pytest.approx(0.3) and hf["miscalibration_area"] == pytest.approx(0.17)
    assert hf["rho_atoms"] == pytest.approx(0.7) and hf["miscalibration_area_atoms"] == pytest.approx(0.04)
    assert hf["coverage_1sigma_atoms"] == pytest.approx(0.66) and set(hf["rho_atoms_by_round"]) == {"0", "1", "2"}
