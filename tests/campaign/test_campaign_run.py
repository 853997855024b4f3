"""End-to-end campaigns with the real teacher labeler, real MF-CHGNet training and the embedded store.

The ``mfal run`` subprocess is SIGKILLed at fault-injection points (``MFAL_FAULT``) during labeling, between a
label being persisted and its store write, and during training; rerunning must give the same frames as an
uninterrupted run, with no duplicate, no loss and no label computed twice (``labeler_calls.log`` records every
label the labeler computed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mfal.campaign.state import CampaignDir, read_json
from mfal.store import open_store

pytestmark = pytest.mark.slow


def _run(
    cfg: Path, run_dir: Path, fault: str | None = None, timeout: int = 900
) -> subprocess.CompletedProcess:
    env = dict(os.environ, MFAL_LOG_LEVEL="WARNING")
    env.pop("MFAL_FAULT", None)
    if fault:
        env["MFAL_FAULT"] = fault
    cmd = [
        sys.executable,
        "-c",
        "from flows.cli import main; main()",
        "run",
        str(cfg),
        "--dir",
        str(run_dir),
        "-q",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _frames(run_dir: Path) -> list:
    with open_store(run_dir) as store:
        return store.query_frames(campaign="tiny")


def _calls(run_dir: Path) -> list[str]:
    path = run_dir / "labeler_calls.log"
    return path.read_text().splitlines() if path.is_file() else []


def test_campaign_end_to_end_and_resume(tmp_path, make_config, save_config, browser):
    cfg = save_config(tmp_path, make_config(tmp_path), "tiny.yaml")

    # --- uninterrupted reference run
    ref = tmp_path / "ref"
    p = _run(cfg, ref)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "done after 2 rounds" in p.stdout and "max_rounds=2" in p.stdout
    frames = _frames(ref)
    with open_store(ref) as store:
        rounds = store.rounds("tiny")
    assert [r.round for r in rounds] == [0, 1] and all(r.state == "done" for r in rounds)
    assert rounds[-1].stop_reason == "max_rounds=2 reached"
    budget_hf = 0.1 * 3600
    for rd in rounds:
        mine = [f for f in frames if f.round == rd.round]
        for fid in ("lf", "hf"):
            fs = [f for f in mine if f.fidelity == fid]
            st = rd.fidelities[fid]
            # counts add up: every selected candidate was labeled once, stored once
            assert st.n_selected == len(rd.selected[fid]) == len(fs) == st.n_labeled + st.n_failed
            assert st.cost == pytest.approx(sum(f.cost for f in fs))
        assert set(rd.selected["hf"]) <= set(rd.selected["lf"])  # HF picks are paired at LF
        assert rd.fidelities["hf"].cost <= budget_hf + 1e-6  # HF budget per round
        assert len(rd.checkpoints) == 3 and all(len(c["sha256"]) == 64 for c in rd.checkpoints)
        assert rd.fidelities["hf"].force_mae is not None and rd.fidelities["hf"].force_mae < 1.0
    # round 1 picks the most uncertain HF candidates (diversity_pool 1 in the tiny config)
    sc = read_json(CampaignDir(ref).round_dir(1) / "scores.json")
    s = np.asarray(sc["fidelities"]["hf"]["scores"]["force_std_max"])
    top = {sc["ids"][i] for i in np.argsort(-s)[: len(rounds[1].selected["hf"])]}
    assert set(rounds[1].selected["hf"]) == top
    calls = _calls(ref)
    assert len(calls) == len(frames) == len({f.frame_id for f in frames})

    # status --json
    out = subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", "status", "--dir", str(ref), "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    st = json.loads(out)
    assert st["state"] == "done" and len(st["rounds"]) == 2
    keys = {
        "round",
        "n_candidates",
        "n_lf_labeled",
        "n_hf_labeled",
        "n_failed",
        "hf_force_mae",
        "calibration_rho",
        "cost_lf",
        "cost_hf",
        "state",
    }
    assert keys <= set(st["rounds"][0])
    assert sum(r["n_lf_labeled"] + r["n_hf_labeled"] + r["n_failed"] for r in st["rounds"]) == len(frames)
    assert st["sources"] == ["teacher"]

    # report: PNGs + markdown that embeds them and flags surrogate labels
    from mfal.campaign.report import make_report

    md = make_report(ref, parity=True)  # parity: the promoted MFEnsemble predicts the validation frames
    text = md.read_text()
    assert "SURROGATE" in text and "| 1 | 5 |" in text
    for png in ("hf_mae_vs_labels.png", "uncertainty_vs_error.png", "selection.png", "parity.png", "budget.png"):
        assert f"]({png})" in text and (md.parent / png).stat().st_size > 5000

    # the dashboard, as a user opens it: `mfal report --html`, then a real headless Chromium at 1280x800
    p = subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", "report", "--dir", str(ref), "--html"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    page = ref / "report" / "report.html"
    driver, console = browser(page.as_uri(), screenshot=tmp_path / "dashboard.png")
    assert [m for m in console if m["level"] == "SEVERE"] == []
    assert len(driver.find_elements("css selector", "#rounds tr")) == 1 + len(st["rounds"])
    imgs = driver.find_elements("css selector", "figure img")
    assert len(imgs) == 5 and all(driver.execute_script("return arguments[0].naturalWidth", i) > 300 for i in imgs)
    assert driver.find_element("css selector", "#state").text == "done"
    assert "Surrogate labels" in driver.page_source and 'http-equiv="refresh"' not in driver.page_source
    assert (tmp_path / "dashboard.png").stat().st_size > 20_000

    # rerunning a finished campaign labels nothing
    p = _run(cfg, ref)
    assert p.returncode == 0 and len(_calls(ref)) == len(calls)

    # a campaign directory can be moved: checkpoints are referred to relative to it (issue 15 #16)
    moved = tmp_path / "moved"
    shutil.copytree(ref, moved)
    ref.rename(tmp_path / "ref-away")
    try:
        state = CampaignDir(moved).load_state()
        assert state.checkpoints and not any(Path(ck.key).is_absolute() for ck in state.checkpoints)
        assert "SURROGATE" in make_report(moved, parity=True).read_text()  # loads the promoted ensemble
    finally:
        (tmp_path / "ref-away").rename(ref)

    # --- killed three times, then resumed
    res = tmp_path / "res"
    p = _run(cfg, res, "after_label:3")
    assert p.returncode == -9, p.stderr[-2000:]
    task_files = list((CampaignDir(res).label_dir(0, "lf")).glob("*.json"))
    assert len(task_files) == 3 and len(_frames(res)) == 2  # 3rd label persisted, not yet stored
    p = _run(cfg, res, "during_train:1")
    assert p.returncode == -9, p.stderr[-2000:]
    mdir = CampaignDir(res).model_dir(0)
    assert (mdir / "member_0" / "done.json").is_file() and not (mdir / "member_1" / "done.json").is_file()
    p = _run(cfg, res, "during_label:2")
    assert p.returncode == -9, p.stderr[-2000:]
    assert CampaignDir(res).load_state().round == 1
    p = _run(cfg, res)
    assert p.returncode == 0, p.stderr[-3000:]

    got = _frames(res)
    assert {f.frame_id for f in got} == {f.frame_id for f in frames}  # same final frame set, none lost
    assert len(got) == len({f.frame_id for f in got})  # no duplicates
    c = Counter(_calls(res))
    assert max(c.values()) == 1 and len(c) == len(got)  # no label computed twice

    # --- fault matrix: kill -9 after each step's artifact is saved, between a RoundDoc and the state save,
    # and in round 1's scoring and training; every rerun resumes, the result equals the uninterrupted run
    mat = tmp_path / "matrix"
    for fault in ("after_explore:1", "after_select:1", "before_state_save:1", "after_score:1", "during_train:2"):
        p = _run(cfg, mat, fault)
        assert p.returncode == -9, (fault, p.stderr[-2000:])
    p = _run(cfg, mat)
    assert p.returncode == 0, p.stderr[-3000:]
    got = _frames(mat)
    assert sorted(f.frame_id for f in got) == sorted(f.frame_id for f in frames)  # none lost, none twice
    c = Counter(_calls(mat))
    assert max(c.values()) == 1 and len(c) == len(got)
    ref_state, mat_state = CampaignDir(ref).load_state(), CampaignDir(mat).load_state()
    assert mat_state.state == "done" and mat_state.round == ref_state.round == 2
    assert mat_state.spent == pytest.approx(ref_state.spent)  # no cost counted twice
    with open_store(mat) as store:
        assert [(r.round, r.state) for r in store.rounds("tiny")] == [(0, "done"), (1, "done")]


def test_ratio_failed_stops_the_campaign(tmp_path, make_config, save_config):
    cfg = make_config(tmp_path, ratio_failed=0.2)
    cfg["labelers"]["hf"] = {"kind": "teacher", "options": {"fail_rate": 1.0}}
    path = save_config(tmp_path, cfg, "failing.yaml")
    run_dir = tmp_path / "run"
    p = _run(path, run_dir)
    assert p.returncode == 1
    err = p.stderr.strip().splitlines()[-1]
    # 2 HF labels failed out of 6 labels in round 0
    assert "failed-label fraction 0.33 > ratio_failed 0.20" in err and err.startswith("mfal: error:")
    with open_store(run_dir) as store:
        (rd,) = store.rounds("tiny")
    assert rd.state == "stopped" and "0.33" in rd.stop_reason
    assert rd.fidelities["hf"].n_failed == 2
    assert not (CampaignDir(run_dir).model_dir(0) / "member_0" / "model.pt").exists()  # nothing trained
    state = CampaignDir(run_dir).load_state()
    assert state.state == "stopped" and not state.checkpoints
