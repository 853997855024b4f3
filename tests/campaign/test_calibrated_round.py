"""Calibrated uncertainty through a real campaign (teacher labels, real MF-CHGNet training, embedded store):
every round records per-fidelity calibration and a scale; the next round's scores carry raw × scale, and the
stop rule compares the calibrated spread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest

from mfal.campaign.state import CampaignDir, read_json
from mfal.store import open_store
from mfal.store.docs import RoundDoc


def test_round_docs_from_before_calibration_still_load():
    old = {"campaign": "t", "round": 1, "state": "done", "fidelities": {"hf": {"n_labeled": 2, "calibration_rho": 0.5}},
           "started_at": datetime.now(UTC).isoformat()}  # fmt: skip
    doc = RoundDoc.model_validate(old)
    assert doc.calibration == {} and doc.uncertainty_scale == {}
    assert RoundDoc.model_validate_json(doc.model_dump_json()) == doc


@pytest.mark.slow
def test_three_rounds_record_calibration_and_score_with_the_fitted_scale(tmp_path, make_config, save_config):
    target = 1e-6  # eV/Å, never reached: the stop rule is evaluated every round, the campaign runs 3 rounds
    cfg = make_config(tmp_path, stop={"max_rounds": 3, "hf_uncertainty_target": target})
    cfg["allow_teacher_warm_start"] = True  # the tiny campaign's warm start (only the spread's scale matters)
    path = save_config(tmp_path, cfg, "tiny.yaml")
    run = tmp_path / "run"
    env = dict(os.environ, MFAL_LOG_LEVEL="WARNING", OMP_NUM_THREADS="1")
    env.pop("MFAL_FAULT", None)
    cli = [sys.executable, "-c", "from flows.cli import main; main()"]
    p = subprocess.run([*cli, "run", str(path), "--dir", str(run), "-q"], env=env, capture_output=True, text=True,
                       timeout=1500)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    with open_store(run) as store:
        rounds = store.rounds("tiny")
    assert [r.round for r in rounds] == [0, 1, 2]
    cd = CampaignDir(run)
    # moments: magnetic HF only; forces_atoms: the same frames judged per force component
    quantities = {"lf": {"forces", "forces_atoms", "energy"}, "hf": {"forces", "forces_atoms", "energy", "moments"}}

    # round 0 has no model: its scores carry nothing, its scale is 1 and recorded as not fitted
    applied0 = read_json(cd.round_dir(0) / "scale.json")
    assert applied0["source_round"] is None and not any(v for q in applied0["fitted"].values() for v in q.values())
    for f, qs in quantities.items():
        assert set(rounds[0].calibration[f]) == qs
        assert all(rounds[0].calibration[f][q]["scale_applied"] == 1.0 for q in qs)

    # round 1: calibration per fidelity and quantity on its new labels + validation frames, and a scale
    r1 = rounds[1]
    for f, qs in quantities.items():
        assert set(r1.calibration[f]) == qs
        for q in qs:
            st = r1.calibration[f][q]
            assert st["n"] >= 2 and st["scale"] is not None and st["scale"] > 0, (f, q, st)
            assert 0 <= st["miscalibration_area"] <= 0.5 and 0 <= st["coverage_1sigma"] <= st["coverage_2sigma"] <= 1
            assert st["scale_applied"] == pytest.approx(read_json(cd.round_dir(1) / "scale.json")["scale"][f][q])
        assert r1.uncertainty_scale[f] == pytest.approx(r1.calibration[f]["forces"]["scale"])
        assert r1.fidelities[f].calibration_rho is None or -1 <= r1.fidelities[f].calibration_rho <= 1
    # the calibration.json artifact holds the same numbers, strict JSON (no NaN)
    text = (cd.round_dir(1) / "calibration.json").read_text()
    assert "NaN" not in text and json.loads(text)["calibration"] == r1.calibration

    # forces_atoms in every round >= 1: one pair per force component of every paired frame (labeled + validation)
    with open_store(run) as store:
        frames = store.query_frames(campaign="tiny")
    nsites = {fr.nsites for fr in frames}
    assert len(nsites) == 1  # one start cell: every frame has its atom count
    n_atoms = nsites.pop()
    for doc in rounds[1:]:
        counts = read_json(cd.round_dir(doc.round) / "calibration.json")["n_pairs"]
        ids = set(cd.round(doc.round).scores().ids)
        for f in quantities:
            at = doc.calibration[f]["forces_atoms"]
            n_frames = counts[f]["forces_labeled"] + counts[f].get("forces_validation", 0)
            assert n_frames >= 1 and at["n"] == 3 * n_atoms * n_frames, (doc.round, f, at, counts[f])
            labeled = [fr for fr in frames if fr.round == doc.round and fr.fidelity == f and fr.status == "ok"
                       and fr.forces is not None and fr.structure_id in ids]  # fmt: skip
            assert counts[f]["forces_atoms_labeled"] == 3 * sum(fr.nsites for fr in labeled)
            assert 0 <= at["miscalibration_area"] <= 0.5 and -1 <= (at["rho"] if at["rho"] is not None else 0) <= 1
            assert at["scale"] > 0 and doc.uncertainty_scale[f] == pytest.approx(doc.calibration[f]["forces"]["scale"])

    # round 2's scores: raw spreads kept, calibrated = raw × the scale round 1 fitted (per quantity)
    sc = read_json(cd.round_dir(2) / "scores.json")
    for f in quantities:
        s = sc["fidelities"][f]["scores"]
        raw, cal = np.asarray(s["force_std_max_raw"]), np.asarray(s["force_std_max"])
        assert raw.size and np.all(raw > 0)
        np.testing.assert_allclose(cal, raw * r1.uncertainty_scale[f], rtol=1e-9)
        np.testing.assert_allclose(s["force_std_mean"], np.asarray(s["force_std_mean_raw"]) * r1.uncertainty_scale[f])
        np.testing.assert_allclose(s["energy_std"], np.asarray(s["energy_std_raw"]) * r1.calibration[f]["energy"]["scale"])
    for f in quantities:  # the per-component member std is kept raw; its norm's max over atoms is force_std_max_raw
        fs = sc["fidelities"][f]
        norm_max = [np.linalg.norm(np.asarray(v), axis=1).max() for v in fs["forces_std_xyz"]]
        np.testing.assert_allclose(norm_max, fs["scores"]["force_std_max_raw"], rtol=1e-5)
    s_hf = sc["fidelities"]["hf"]["scores"]
    np.testing.assert_allclose(s_hf["magmom_std_max"],
                               np.asarray(s_hf["magmom_std_max_raw"]) * r1.calibration["hf"]["moments"]["scale"])  # fmt: skip
    assert rounds[2].calibration["hf"]["forces"]["scale_applied"] == pytest.approx(r1.uncertainty_scale["hf"])

    # the stop rule and the recorded HF uncertainty are the calibrated mean (the raw one is reported beside it)
    cal_mean = float(np.mean(s_hf["force_std_max"]))
    raw_mean = float(np.mean(s_hf["force_std_max_raw"]))
    stop = rounds[2].selection_reason["stop"]
    assert stop["hf_uncertainty"] == pytest.approx(cal_mean) and stop["hf_uncertainty_raw"] == pytest.approx(raw_mean)
    assert stop["target"] == target and rounds[2].fidelities["hf"].uncertainty_mean == pytest.approx(cal_mean)
    assert rounds[2].stop_reason == "max_rounds=3 reached"

    # mfal status --json: calibrated uncertainty and ρ per round, existing keys kept
    out = subprocess.run([*cli, "status", "--dir", str(run), "--json"], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    st = json.loads(out)
    rows = st["rounds"]
    assert {"calibration_rho", "hf_force_mae", "cost_hf"} <= set(rows[0])
    assert rows[0]["hf_uncertainty_calibrated"] is False and rows[2]["hf_uncertainty_calibrated"] is True
    assert rows[2]["hf_uncertainty_mean"] == pytest.approx(cal_mean)
    assert rows[2]["hf_uncertainty_mean_raw"] == pytest.approx(raw_mean)
    assert rows[2]["hf_uncertainty_scale_applied"] == pytest.approx(r1.uncertainty_scale["hf"])
    assert rows[1]["hf_miscalibration_area"] == pytest.approx(r1.calibration["hf"]["forces"]["miscalibration_area"])
    assert rows[1]["calibration"]["hf"]["moments"]["n"] == r1.calibration["hf"]["moments"]["n"]
    atoms1 = r1.calibration["hf"]["forces_atoms"]
    assert rows[1]["hf_force_atoms_area"] == pytest.approx(atoms1["miscalibration_area"])
    assert rows[1]["hf_force_atoms_n"] == atoms1["n"] and rows[1]["hf_force_atoms_rho"] == atoms1["rho"]
    table = subprocess.run([*cli, "status", "--dir", str(run)], env={**env, "COLUMNS": "250"}, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert "σ scale HF" in table and "1 (uncal.)" in table and "area HF" in table and "area/atom HF" in table
