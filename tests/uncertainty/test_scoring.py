"""score_candidates: one scorer for campaign and benchmarks — shapes, units, graphs shared, subsets, JSON."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.errors import DataError
from mfal.fidelity import DEFAULT, UnknownFidelityError
from mfal.uncertainty import SCORE_NAMES, FidelityScores, ensemble_scores, score_candidates


def _count_conversions(monkeypatch) -> list[int]:
    """Count structure -> graph conversions (the one conversion function every MFCHGNet uses)."""
    import mfal.model.graphs as graphs_module

    calls = [0]
    original = graphs_module.structure_graph

    def counting(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(graphs_module, "structure_graph", counting)
    return calls


def _reference(members, structures, fid, magnetic):
    """Scores the old way: each member predicts alone, then ensemble_scores on eV-per-cell energies."""
    nsites = [len(s) for s in structures]
    per = [m.predict(structures, fid, task="efm" if magnetic else "ef") for m in members]
    energies = np.array([[p["e"] * n for p, n in zip(ps, nsites, strict=True)] for ps in per])  # [K, n] eV
    forces = [np.stack([ps[i]["f"] for ps in per]) for i in range(len(structures))]  # [K, n_i, 3]
    moms = [np.stack([ps[i]["m"] for ps in per]) for i in range(len(structures))] if magnetic else None
    return energies, forces, moms, ensemble_scores(energies, forces, nsites, moms)


def test_shapes_units_and_values_match_member_predictions(shared_ensemble, cells, monkeypatch):
    calls = _count_conversions(monkeypatch)
    ticks = []
    out = score_candidates(shared_ensemble, cells, DEFAULT, progress=ticks.append)
    assert calls[0] == len(cells)  # graphs built once for both fidelities and all three members
    assert list(out) == list(DEFAULT.names) and ticks == [1, 1]
    for fid, fs in out.items():
        magnetic = DEFAULT.is_magnetic(fid)
        assert isinstance(fs, FidelityScores) and fs.n == len(cells)
        assert set(fs.scores) == set(SCORE_NAMES)
        assert [np.shape(f) for f in fs.forces] == [(len(s), 3) for s in cells]
        assert (fs.magmoms is not None) == magnetic
        energies, forces, moms, ref = _reference(shared_ensemble.members, cells, fid, magnetic)
        # energy is the ensemble mean in eV per cell (≈ -7 eV/atom × n atoms), not eV/atom
        np.testing.assert_allclose(fs.array("energy"), energies.mean(axis=0), rtol=1e-5)
        assert fs.array("energy")[1] < -100
        for key in SCORE_NAMES:
            np.testing.assert_allclose(fs.array(key), ref[key], rtol=2e-3, atol=1e-6, err_msg=f"{fid} {key}")
        assert fs.array("force_std_max").min() > 0 and fs.array("energy_std").min() > 0
        for got, f in zip(fs.forces, forces, strict=True):
            np.testing.assert_allclose(got, f.mean(axis=0), atol=1e-4)
        if magnetic:
            for got, m in zip(fs.magmoms, moms, strict=True):
                np.testing.assert_allclose(got, m.mean(axis=0), atol=1e-5)


def test_prebuilt_graphs_give_the_same_numbers_without_conversion(shared_ensemble, cells, monkeypatch):
    fresh = score_candidates(shared_ensemble, cells, ["hf"])
    graphs = shared_ensemble.members[0].graphs(cells)
    calls = _count_conversions(monkeypatch)
    reused = score_candidates(shared_ensemble, cells, ["hf"], graphs=graphs)
    assert calls[0] == 0
    assert reused["hf"].model_dump() == fresh["hf"].model_dump()


def test_subset_of_a_graph_cache_equals_scoring_that_subset(independent_members, cells):
    """The science benchmark's case: independent members, the dataset's cached graphs, a pool subset."""
    graphs = independent_members[0].graphs(cells)
    sub = score_candidates(independent_members, cells, "hf", graphs=graphs, subset=[1, 0])["hf"]
    direct = score_candidates(independent_members, [cells[1], cells[0]], ["hf"])["hf"]
    assert sub.model_dump() == direct.model_dump()
    _, forces, _, ref = _reference(independent_members, [cells[1], cells[0]], "hf", magnetic=True)
    for key in ("force_std_max", "force_std_mean", "energy_std"):
        np.testing.assert_allclose(sub.array(key), ref[key], rtol=2e-3, atol=1e-6)
    assert sub.array("force_std_max").min() > 0


def test_json_round_trip_and_validation(shared_ensemble, cells):
    fs = score_candidates(shared_ensemble, cells[:1], ["lf"])["lf"]
    back = FidelityScores.model_validate_json(fs.model_dump_json())
    assert back == fs and back.magmoms is None
    assert back.forces_of(0).shape == (len(cells[0]), 3)
    with pytest.raises(KeyError, match="not in"):
        fs.array("nope")
    with pytest.raises(ValueError, match="lengths"):
        FidelityScores(scores={"force_std_max": [0.1, 0.2]}, energy=[1.0], forces=[[[0.0, 0.0, 0.0]]])
    with pytest.raises(ValueError, match="3 components"):
        FidelityScores(scores={}, energy=[1.0], forces=[[[0.0, 0.0]]])


def test_errors_and_empty_input(shared_ensemble, cells):
    with pytest.raises(UnknownFidelityError, match="'mf'"):
        score_candidates(shared_ensemble, cells, ["mf"])
    graphs = shared_ensemble.members[0].graphs(cells[:1])
    with pytest.raises(DataError, match="1 graphs for 2 structures"):
        score_candidates(shared_ensemble, cells, ["hf"], graphs=graphs)
    with pytest.raises(DataError, match="subset"):
        score_candidates(shared_ensemble, cells, ["hf"], subset=[2])
    from pymatgen.core import Lattice, Structure

    def lonely(**props):
        sites = [[0, 0, 0], [0.09, 0, 0], [0.5, 0.5, 0.5]]
        return Structure(Lattice.cubic(20.0), ["Fe", "O", "Li"], sites, properties=props)

    with pytest.raises(DataError, match="cand-7: .*isolated"):
        score_candidates(shared_ensemble, [cells[0], lonely(candidate_id="cand-7")], ["hf"])
    with pytest.raises(
        DataError, match="structure 0: .*isolated"
    ):  # position in the given list, not the subset
        score_candidates(shared_ensemble, [lonely(), cells[0]], ["hf"], subset=[1, 0])
    empty = score_candidates(shared_ensemble, [], ["lf", "hf"])
    assert empty["hf"].n == 0 and empty["hf"].array("force_std_max").shape == (0,)
