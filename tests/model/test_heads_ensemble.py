"""ensemble.kind = heads: one trunk trained once, K heads on bootstraps; saved members restore as a shared-trunk
ensemble that score_candidates runs with one trunk pass."""

from __future__ import annotations

import pytest
import torch

from mfal.model import MFEnsemble, load_ensemble
from mfal.model.ensemble import HEAD_PREFIXES
from mfal.train.config import TrainConfig
from mfal.train.ensemble import EnsembleConfig, train_ensemble
from mfal.uncertainty import score_candidates

FAST = {"pretrained_version": "0.2.0", "batch_size": 4, "patience": None, "eval_batch_size": 8}


@pytest.fixture(scope="module")
def frames():
    from mfal.train.example import load_builtin

    fr = load_builtin("lifepo4_teacher")
    lf = [f for f in fr if f.fidelity == "lf"]
    hf = [f for f in fr if f.fidelity == "hf"]
    return lf[:3] + hf[:2], hf[-1:]


@pytest.mark.slow
def test_heads_share_trunk_load_and_score_fast_path(frames, tmp_path, monkeypatch):
    train, val = frames
    cfg = TrainConfig(epochs=1, **FAST)
    results = train_ensemble(
        train, val, cfg, EnsembleConfig(k=3, bootstrap=True, kind="heads"), out_dir=tmp_path, seed=0
    )
    assert len({r.sha256 for r in results}) == 3
    assert [r.extra["head"] for r in results] == [False, True, True]
    s0, s2 = results[0].model.state_dict(), results[2].model.state_dict()
    trunk_keys = [k for k in s0 if not k.startswith(HEAD_PREFIXES)]
    assert trunk_keys and all(torch.equal(s0[k], s2[k]) for k in trunk_keys)  # trunk trained once
    assert any(not torch.equal(s0[k], s2[k]) for k in s0 if k.startswith(HEAD_PREFIXES))

    ens = load_ensemble([(r.checkpoint, r.sha256) for r in results])
    assert ens.shared_trunk

    def no_member_path(*a, **kw):
        raise AssertionError("a heads ensemble must be scored with the shared-trunk path")

    monkeypatch.setattr(MFEnsemble, "_member_batch", no_member_path)
    structures = [f.get_structure() for f in val + train[:2]]
    scores = score_candidates(ens, structures, cfg.fidelities)
    for fid in cfg.fidelities:
        assert min(scores[fid].array("force_std_max")) > 0

    # rerun: every member is done, nothing trains again
    again = train_ensemble(
        train, val, cfg, EnsembleConfig(k=3, bootstrap=True, kind="heads"), out_dir=tmp_path, seed=0
    )
    assert all(r.extra.get("skipped") for r in again)
    assert [r.sha256 for r in again] == [r.sha256 for r in results]
