"""Round artifacts: typed, saved/loaded through RoundDir in the old file shapes, checkpoints relative to the
campaign directory (a campaign directory can be moved), and the round's step order written once."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from mfal.campaign.artifacts import Candidates, CheckpointRef, RoundDir, RoundScores, Selection
from mfal.campaign.state import CampaignDir, CampaignState
from mfal.errors import DataError
from mfal.runopts import RunOptions
from mfal.uncertainty import FidelityScores

SHA = "0" * 64


def test_round_dir_round_trip_in_the_old_file_shapes(tmp_path, lifepo4):
    rd = RoundDir(tmp_path, 2)
    s = lifepo4.copy()
    s.properties = {"candidate_id": "abc", "origin": "rattle<start"}
    cands = Candidates.from_structures([s])
    rd.save_candidates(cands)
    raw = json.loads(rd.candidates_path.read_text())
    assert isinstance(raw, list) and raw[0]["id"] == "abc"  # old candidates.json shape
    back = rd.candidates().structures()
    assert back[0].properties == {"candidate_id": "abc", "origin": "rattle<start"} and len(back[0]) == 28

    fs = FidelityScores(scores={"force_std_max": [math.nan]}, energy=[-1.0], forces=[[[0.0, 0.0, 1.0]] * 28])
    rd.save_scores(RoundScores(model=[SHA], ids=["abc"], fidelities={"lf": fs, "hf": fs}))
    raw = json.loads(rd.scores_path.read_text())  # strict JSON: NaN is null
    assert raw["fidelities"]["hf"]["scores"]["force_std_max"] == [None] and raw["ids"] == ["abc"]
    sc = rd.scores()
    assert math.isnan(sc.array("hf")[0]) and sc.index() == {"abc": 0}

    rd.save_selection(Selection(picks={"lf": ["abc"], "hf": []}, report={"n_out_of_window": 0}))
    assert json.loads(rd.selection_path.read_text()) == {"lf": ["abc"], "hf": [], "report": {"n_out_of_window": 0}}
    assert rd.selection().of("lf") == ["abc"]
    assert RoundDir(tmp_path, 3).scores().has_model is False  # not scored yet: no model


def test_damaged_artifact_is_one_line(tmp_path):
    rd = RoundDir(tmp_path, 0)
    rd.path.mkdir(parents=True)
    rd.selection_path.write_text('{"lf": ["a"], "hf": ')
    with pytest.raises(DataError, match=r"selection\.json: invalid JSON"):
        rd.selection()
    rd.scores_path.write_text('{"model": "not-a-list"}')
    with pytest.raises(DataError, match=r"scores\.json: not a valid RoundScores \(field model"):
        rd.scores()


def test_checkpoint_refs_are_relative_and_old_absolute_paths_load(tmp_path):
    root = tmp_path / "run"
    ck = root / "rounds" / "000" / "models" / "member_0" / "model.pt"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"x")
    ref = CheckpointRef.from_path(ck, SHA, root)
    assert ref.key == "rounds/000/models/member_0/model.pt"
    shutil.copytree(root, tmp_path / "moved")
    assert ref.path(tmp_path / "moved").read_bytes() == b"x"  # the copy finds its own checkpoint
    old = CheckpointRef.model_validate({"path": str(ck), "sha256": SHA})  # state.json of older versions
    assert old.path(tmp_path / "elsewhere") == ck
    state = CampaignState.model_validate(
        {"campaign": "x", "round": 1, "checkpoints": [{"path": str(ck), "sha256": SHA}], "spent": {"lf": 1.0}}
    )
    assert state.checkpoints[0].key == str(ck)


def test_truncated_state_is_one_line(tmp_path):
    cd = CampaignDir(tmp_path)
    cd.state_path.write_text('{"campaign": "tiny", "sta')
    with pytest.raises(DataError, match=r"state\.json: invalid JSON") as err:
        cd.load_state()
    assert "\n" not in str(err.value)
    cd.state_path.write_text('{"campaign": "tiny", "round": -3}')
    with pytest.raises(DataError, match=r"state\.json: not a campaign state \(field round"):
        cd.load_state()


def test_run_round_calls_the_steps_in_the_flow_order(tmp_path, monkeypatch, make_config, save_config):
    """``run_round`` (what the AL benchmark drives) runs the same step list as the flow, passing the options
    and the train output to evaluate."""
    from mfal.campaign import round as round_mod
    from mfal.campaign.prepare import prepare

    prepare(save_config(tmp_path, make_config(tmp_path)), tmp_path / "run")
    calls = []

    def fake(name):
        def step(root, r, *args):
            calls.append((name, r, args))
            return f"{name} out"

        return step

    for fn in ("explore_round", "score_round", "select_round", "label_round", "train_round", "evaluate_round"):
        monkeypatch.setattr(round_mod, fn, fake(fn))
    opts = RunOptions(device="cpu")
    assert round_mod.run_round(tmp_path / "run", 4, opts) == "evaluate_round out"
    assert [c[0] for c in calls] == [
        "explore_round",
        "score_round",
        "select_round",
        "label_round",
        "label_round",
        "train_round",
        "evaluate_round",
    ]
    assert calls[0][2] == (opts,) and calls[2][2] == (RunOptions(),)  # select/label: no device
    assert calls[3][2] == ("lf", RunOptions()) and calls[4][2] == ("hf", RunOptions())
    assert calls[-1][2] == ("train_round out", opts) and all(c[1] == 4 for c in calls)
