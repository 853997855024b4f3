"""Trainer: fidelity-only parameters, short real training, resume, baselines, bad frames (ensembles: test_ensemble).

Frames are 28-atom LiFePO4 cells with SURROGATE teacher labels (LF = CHGNet 0.2.0 without moments, HF = CHGNet
0.3.0 with moments). Models warm-start from pretrained CHGNet 0.2.0 so that the HF surface is really different
from the starting model (a 0.3.0 warm start would already reproduce the HF teacher exactly).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from mfal.errors import DataError
from mfal.train.data import FrameDataset
from mfal.train.trainer import (
    TrainConfig,
    build_model,
    evaluate,
    load_train_state,
    train_model,
    train_on_datasets,
)

FAST = {"pretrained_version": "0.2.0", "batch_size": 4, "patience": None, "eval_batch_size": 8}


def _snapshot(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in params.items()}


@pytest.mark.parametrize("trained", ["lf", "hf"])
def test_single_fidelity_step_leaves_other_fidelity_parameters(trained, lf_frames, hf_frames):
    other = "hf" if trained == "lf" else "lf"
    cfg = TrainConfig(epochs=1, lr=1e-2, **FAST)
    model = build_model(cfg)
    frames = (lf_frames if trained == "lf" else hf_frames)[:2]
    ds = FrameDataset.build(frames, model)
    own_before = _snapshot(model.fidelity_only_parameters(trained))
    other_before = _snapshot(model.fidelity_only_parameters(other))
    shared_before = _snapshot(dict(model.atom_embedding.named_parameters()))
    train_on_datasets(model, ds, ds.subset([]), cfg)
    other_after = model.fidelity_only_parameters(other)
    assert set(other_after) == set(other_before) and len(other_before) > 10
    for name, value in other_before.items():
        assert torch.equal(other_after[name], value), (
            f"{other} parameter {name} changed in a {trained}-only step"
        )
    own_after = model.fidelity_only_parameters(trained)
    changed = [n for n, v in own_before.items() if not torch.equal(own_after[n], v)]
    assert len(changed) > len(own_before) // 2, f"{trained}-only parameters barely moved: {changed}"
    assert any(not torch.equal(p, shared_before[n]) for n, p in model.atom_embedding.named_parameters())


@pytest.mark.slow
def test_short_training_lowers_hf_validation_force_mae(lf_frames, hf_frames, tmp_path):
    """A few epochs on 8 LF + 4 HF frames lower the HF validation force MAE of the 0.2.0 warm start."""
    train = lf_frames[:8] + hf_frames[:4]
    val = hf_frames[-4:]
    cfg = TrainConfig(epochs=3, lr=3e-4, hf_oversample=2.0, **FAST)
    before = evaluate(build_model(cfg), val)["hf"]["f_mae_mev_ang"]
    res = train_model(train, val, cfg, out_dir=tmp_path)
    after = res.metrics["hf"]["f_mae_mev_ang"]
    assert after < 0.9 * before, (before, after)
    assert res.checkpoint.is_file() and len(res.sha256) == 64
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["metrics"]["hf"]["f_mae_mev_ang"] == pytest.approx(after)
    assert [row["epoch"] for row in res.history] == [0, 1, 2]
    # the saved best model reproduces the reported metrics
    from mfal.model import MFCHGNet

    reloaded = MFCHGNet.load(res.checkpoint, sha256=res.sha256)
    assert evaluate(reloaded, val)["hf"]["f_mae_mev_ang"] == pytest.approx(after, rel=1e-4)


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_continues_from_saved_epoch(lf_frames, hf_frames, tmp_path):
    """A run killed after epoch 1 resumes at epoch 2 and ends where an uninterrupted run ends."""
    train, val = lf_frames[:2] + hf_frames[:2], hf_frames[-1:]
    cfg = TrainConfig(epochs=3, lr=1e-3, **FAST)

    def kill_after_epoch_1(row):
        if row["epoch"] == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_model(train, val, cfg, out_dir=tmp_path / "a", callback=kill_after_epoch_1)
    state = load_train_state(tmp_path / "a" / "train_state.pt")
    assert state["epoch"] == 2 and [row["epoch"] for row in state["history"]] == [0, 1]
    seen = []
    resumed = train_model(
        train,
        val,
        cfg,
        out_dir=tmp_path / "a",
        resume=tmp_path / "a" / "train_state.pt",
        callback=seen.append,
    )
    assert [row["epoch"] for row in seen] == [2]  # only the missing epoch is trained
    assert [row["epoch"] for row in resumed.history] == [0, 1, 2]
    straight = train_model(train, val, cfg, out_dir=tmp_path / "b")
    assert resumed.history[2]["train_loss"] == pytest.approx(straight.history[2]["train_loss"], rel=1e-5)
    assert resumed.best_epoch == straight.best_epoch
    a, b = resumed.model.state_dict(), straight.model.state_dict()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a if a[k].numel())
    assert worst < 1e-4, f"resumed and uninterrupted weights differ by {worst}"  # float-summation noise only


@pytest.mark.slow
def test_modes_sf_tl_and_component_subsets_run(lf_frames, hf_frames):
    train, val = lf_frames[:2] + hf_frames[:2], lf_frames[-1:] + hf_frames[-1:]
    sf = train_model(train, val, TrainConfig(mode="sf", epochs=1, **FAST))
    assert sf.model.components == ""
    assert {row["stage"] for row in sf.history} == {"main"}
    assert set(sf.history[0]["val"]) == {"hf"}  # sf trains and validates on HF frames only
    tl = train_model(train, val, TrainConfig(mode="tl", epochs=1, **FAST))
    assert [row["stage"] for row in tl.history] == ["lf", "hf"]
    assert set(tl.history[0]["val"]) == {"lf"} and set(tl.history[1]["val"]) == {"hf"}
    em = train_model(train, val, TrainConfig(mode="mf", components="ME", epochs=1, **FAST))
    assert em.model.components == "EM" and set(em.metrics) == {"lf", "hf"}
    for res in (sf, tl, em):
        assert all(math.isfinite(m["f_mae_mev_ang"]) for m in res.metrics.values())


def test_config_rejects_components_for_baselines_and_unknown_letters():
    with pytest.raises(ValueError, match="plain CHGNet"):
        TrainConfig(mode="sf", components="E")
    with pytest.raises(ValueError, match="components='EX'"):
        TrainConfig(components="EX")
    assert TrainConfig(components="F").components == "EMRC"
    assert TrainConfig(mode="tl").components == ""
    with pytest.raises(ValueError, match="Extra inputs"):
        TrainConfig(epochz=3)


def test_train_model_names_bad_frame(lf_frames, hf_frames):
    bad = hf_frames[0].model_copy(update={"forces": [[0.0, 0.0]] * 28, "frame_id": "hf-bad-shape"})
    with pytest.raises(
        DataError, match=r"frame hf-bad-shape: forces has shape \(28, 2\), expected \(28, 3\)"
    ):
        train_model([lf_frames[0], bad], [], TrainConfig(epochs=1, **FAST))
    failed = lf_frames[0].model_copy(
        update={"status": "failed", "status_reason": "SCF", "frame_id": "lf-failed"}
    )
    with pytest.raises(DataError, match="frame lf-failed: status='failed'"):
        train_model([failed], [], TrainConfig(epochs=1, **FAST))
