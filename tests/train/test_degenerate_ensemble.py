"""A degenerate ensemble (identical members, spread ≈ 0) is an error; default members differ by construction."""

from __future__ import annotations

import copy

import pytest

from mfal.errors import MfalError
from mfal.train.config import TrainConfig
from mfal.train.data import FrameDataset
from mfal.train.ensemble import DegenerateEnsembleError, EnsembleConfig, check_ensemble, train_ensemble
from mfal.train.trainer import TrainResult

FAST = {"pretrained_version": "0.2.0", "batch_size": 4, "patience": None, "eval_batch_size": 8}


def _result(model, sha: str) -> TrainResult:
    return TrainResult(model=model, metrics={}, history=[], best_epoch=0, sha256=sha)


def test_same_sha_raises_one_line():
    results = [_result(None, "a" * 64), _result(None, "a" * 64), _result(None, "b" * 64)]
    with pytest.raises(DegenerateEnsembleError, match=r"2 of 3 members have identical weights") as err:
        check_ensemble(results, [], TrainConfig(), EnsembleConfig(k=3))
    assert isinstance(err.value, MfalError) and "\n" not in str(err.value)


def test_zero_spread_on_probe_raises(pretrained_mf, hf_frames):
    """Two copies of one model under different sha256s: the probe finds zero force spread."""
    ds = FrameDataset.build(hf_frames[:2], pretrained_mf)
    results = [_result(pretrained_mf, "a" * 64), _result(copy.deepcopy(pretrained_mf), "b" * 64)]
    with pytest.raises(DegenerateEnsembleError, match=r"force spread on 2 probe frames is 0\.00e\+00"):
        check_ensemble(results, [ds, ds.subset([])], TrainConfig(), EnsembleConfig(k=2))
    # min_spread 0: only identical weights are an error
    assert check_ensemble(results, [ds, ds.subset([])], TrainConfig(), EnsembleConfig(k=2, min_spread=0)) == 0


@pytest.mark.slow
def test_one_frame_per_fidelity_members_differ_by_construction(lf_frames, hf_frames):
    """The mini-campaign case (1 LF + 1 HF frame, bootstrap, pretrained warm start): without the member
    perturbation all members are identical (zero force spread on the probe frames) and that is an error; by default
    they differ (spread > min_spread)."""
    train, val = [lf_frames[0], hf_frames[0]], [hf_frames[-1]]
    cfg = TrainConfig(epochs=1, **FAST)
    with pytest.raises(DegenerateEnsembleError, match=r"identical weights|spread .* is 0\.00e\+00"):
        train_ensemble(train, val, cfg, EnsembleConfig(k=2, bootstrap=True, member_noise=0.0), seed=0)
    ens = EnsembleConfig(k=2, bootstrap=True)
    results = train_ensemble(train, val, cfg, ens, seed=0)
    ds = FrameDataset.build(val, results[0].model)
    spread = check_ensemble(results, [ds, ds], cfg, ens)
    assert spread is not None and spread > ens.min_spread
