"""Ensembles: non-zero finite spread, graphs built once, shared-trunk fast path == per-member path."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.errors import ConfigError
from mfal.model import MFEnsemble, readout_ensemble


@pytest.fixture(scope="module")
def structures(lifepo4, feo_cell):
    cell = lifepo4.copy()
    cell.perturb(0.05, seed=11)
    return [feo_cell, cell]


def _count_conversions(ensemble, monkeypatch) -> list[int]:
    calls = [0]
    for member in ensemble.members:
        original = member.graph_converter.forward

        def counting(*args, _original=original, **kwargs):
            calls[0] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(member.graph_converter, "forward", counting)
    return calls


def test_k2_readout_ensemble_spread_and_graphs_built_once(_mf_pretrained, structures, monkeypatch):
    ensemble = readout_ensemble(_mf_pretrained, 2, seed=5, noise=0.05)
    assert ensemble.shared_trunk
    calls = _count_conversions(ensemble, monkeypatch)
    out = ensemble.predict_with_uncertainty(structures, "hf")
    assert calls[0] == len(structures)  # once per structure, not once per member
    assert out["energy"].shape == (2,) and out["energy_std"].shape == (2,)
    assert np.all(np.isfinite(out["energy_std"])) and np.all(out["energy_std"] > 0)
    for forces, std, s in zip(out["forces"], out["forces_std"], structures, strict=True):
        assert forces.shape == (len(s), 3) and std.shape == (len(s),)
        assert np.all(np.isfinite(std)) and std.max() > 0
    np.testing.assert_allclose(out["force_std_max"], [s.max() for s in out["forces_std"]])
    assert [len(m) for m in out["magmoms"]] == [len(s) for s in structures]  # hf is magnetic
    assert "magmoms" not in ensemble.predict_with_uncertainty(structures[:1], "lf")


def test_shared_trunk_path_equals_member_path(_mf_pretrained, structures):
    fast = readout_ensemble(_mf_pretrained, 3, seed=1, noise=0.05)
    slow = MFEnsemble(fast.members)
    slow.shared_trunk = False  # force one forward per member on the shared graphs
    a = fast.predict_with_uncertainty(structures, "lf", batch_size=1)
    b = slow.predict_with_uncertainty(structures, "lf")
    np.testing.assert_allclose(a["energy"], b["energy"], atol=1e-6)
    np.testing.assert_allclose(a["energy_std"], b["energy_std"], atol=1e-6)
    np.testing.assert_allclose(a["force_std_max"], b["force_std_max"], rtol=1e-3, atol=1e-5)
    for fa, fb in zip(a["forces"], b["forces"], strict=True):
        np.testing.assert_allclose(fa, fb, atol=1e-4)
    sketch = fast.predict_with_uncertainty(structures, "lf", force_probes=1)
    assert np.all(np.isfinite(sketch["force_std_max"])) and np.all(sketch["force_std_max"] > 0)
    np.testing.assert_allclose(sketch["energy_std"], a["energy_std"], atol=1e-6)  # energies stay exact
    # the campaign's scorer passes the option through: same means, the sketched spread
    from mfal.uncertainty import score_candidates

    scored = score_candidates(fast, structures, ("lf",), force_probes=1)["lf"]
    np.testing.assert_allclose(scored.array("force_std_max"), sketch["force_std_max"], rtol=1e-5)
    assert not np.allclose(scored.array("force_std_max"), a["force_std_max"], rtol=1e-3)
    np.testing.assert_allclose(scored.forces_of(0), a["forces"][0], atol=1e-4)


def test_last_layer_spread_keeps_the_means_and_ranks_atoms_like_the_exact_spread(_mf_pretrained, structures):
    """``force_spread="last_layer"`` (the campaign default): energies, their spread and the mean forces are the
    exact ones; the member force spread comes through the last AtomConv only, so it is smaller but ranks atoms
    like the exact spread."""
    from scipy.stats import spearmanr

    fast = readout_ensemble(_mf_pretrained, 4, seed=3, noise=0.05)
    exact = fast.predict_with_uncertainty(structures, "hf")
    local = fast.predict_with_uncertainty(structures, "hf", force_spread="last_layer")
    np.testing.assert_allclose(local["energy"], exact["energy"], atol=1e-6)
    np.testing.assert_allclose(local["energy_std"], exact["energy_std"], atol=1e-6)
    for fa, fb in zip(local["forces"], exact["forces"], strict=True):
        np.testing.assert_allclose(fa, fb, atol=1e-4)
    a, b = np.concatenate(local["forces_std"]), np.concatenate(exact["forces_std"])
    assert np.all(np.isfinite(a)) and a.min() > 0
    assert a.mean() < b.mean()  # part of the exact contrast: smaller
    assert spearmanr(a, b)[0] > 0.5
    independent = MFEnsemble(fast.members)
    independent.shared_trunk = False  # exact member forces regardless of the option
    np.testing.assert_allclose(
        independent.predict_with_uncertainty(structures, "hf", force_spread="last_layer")["force_std_max"],
        exact["force_std_max"],
        rtol=1e-3,
        atol=1e-5,
    )
    with pytest.raises(ConfigError, match="force_spread='nearest' not in"):
        fast.predict_with_uncertainty(structures, "hf", force_spread="nearest")
    with pytest.raises(ConfigError, match="force_probes sketches the exact spread"):
        fast.predict_with_uncertainty(structures, "hf", force_spread="last_layer", force_probes=1)


def test_independent_members_from_checkpoints(_mf_pretrained, perturb_fidelity_params, feo_cell, tmp_path):
    import copy

    paths, shas = [], []
    for seed in range(2):
        member = copy.deepcopy(_mf_pretrained)
        perturb_fidelity_params(member, "lf", seed=seed)  # E/M/R of lf differ: no shared trunk
        paths.append(tmp_path / f"m{seed}.pt")
        shas.append(member.save(paths[-1]))
    ensemble = MFEnsemble.from_checkpoints(paths, shas)
    assert not ensemble.shared_trunk
    out = ensemble.predict_with_uncertainty(feo_cell, "lf")
    assert out["energy_std"][0] > 0 and out["force_std_max"][0] > 0 and "magmoms" not in out
    with pytest.raises(ConfigError, match="shared-trunk"):
        ensemble.predict_with_uncertainty(feo_cell, "lf", force_probes=1)


def test_given_graphs_serve_several_fidelities_and_match_per_member_scores(
    _mf_pretrained, structures, monkeypatch
):
    """``graphs=`` skips conversion; the scores the campaign derives equal those of the per-member predictions."""
    from mfal.errors import DataError
    from mfal.uncertainty import ensemble_scores, scores_from_prediction

    ensemble = readout_ensemble(_mf_pretrained, 3, seed=2, noise=0.05)
    lead = ensemble.members[0]
    graphs = lead.graphs(structures)
    calls = _count_conversions(ensemble, monkeypatch)
    nsites = [len(s) for s in structures]
    for fid in ("lf", "hf"):
        pred = ensemble.predict_with_uncertainty(structures, fid, graphs=graphs)
        per = [m.predict(structures, fid, graphs=graphs) for m in ensemble.members]
        energies = np.array([[p["e"] * n for p, n in zip(ps, nsites, strict=True)] for ps in per])  # eV
        forces = [np.stack([np.asarray(ps[i]["f"]) for ps in per]) for i in range(len(structures))]
        moms = [np.stack([np.asarray(ps[i]["m"]) for ps in per]) for i in range(len(structures))]
        ref = ensemble_scores(energies, forces, nsites, moms if fid == "hf" else None)
        got = scores_from_prediction(pred, nsites, energy_per_atom=lead.is_intensive)
        assert set(got) == set(ref)
        assert got["force_std_max"].min() > 0 and got["energy_std"].min() > 0
        for key in ref:
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-3, atol=1e-6, err_msg=f"{fid} {key}")
    assert calls[0] == 0  # every prediction above reused the given graphs
    with pytest.raises(DataError, match="1 graphs for 2 structures"):
        ensemble.predict_with_uncertainty(structures, "hf", graphs=graphs[:1])
    empty = ensemble.predict_with_uncertainty([], "hf")
    assert empty["energy"].shape == (0,) and empty["force_std_max"].shape == (0,)


def test_atom_batches_cap_the_atoms_of_a_scoring_batch():
    """Scoring batches end at ``batch_size`` graphs or before ``max_atoms`` atoms; a big cell goes alone; order kept."""
    from types import SimpleNamespace

    import torch

    from mfal.model.ensemble import atom_batches

    graphs = [SimpleNamespace(atomic_number=torch.zeros(n)) for n in (28, 28, 448, 28, 600, 224, 224, 100)]
    sizes = [[len(g.atomic_number) for g in b] for b in atom_batches(graphs, 16, 512)]
    assert sizes == [[28, 28, 448], [28], [600], [224, 224], [100]]
    assert [len(b) for b in atom_batches(graphs, 3, None)] == [3, 3, 2]
    assert [g for b in atom_batches(graphs, 2, 300) for g in b] == graphs
