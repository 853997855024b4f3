"""The one ensemble trainer: shared graphs, one base load, seeds seed + i, bootstrap, done.json skip, resume."""

from __future__ import annotations

import pytest
import torch

from mfal.errors import DataError
from mfal.train.config import TrainConfig
from mfal.train.ensemble import EnsembleConfig, bootstrap_indices, train_ensemble

FAST = {"pretrained_version": "0.2.0", "batch_size": 4, "patience": None, "eval_batch_size": 8}


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_ensemble_members_share_graphs_and_differ(lf_frames, hf_frames, tmp_path, monkeypatch):
    from mfal.model import MFCHGNet

    calls = []
    original = MFCHGNet.graphs

    def counting(self, structures, **kw):
        calls.append(len(structures))
        return original(self, structures, **kw)

    monkeypatch.setattr(MFCHGNet, "graphs", counting)
    train, val = lf_frames[:2] + hf_frames[:2], hf_frames[-1:]
    results = train_ensemble(
        train,
        val,
        TrainConfig(epochs=1, **FAST),
        EnsembleConfig(k=2, bootstrap=True),
        out_dir=tmp_path,
        seed=0,
    )
    assert calls == [4, 1]  # graphs built once (train + val) for both members
    assert [r.checkpoint.parent.name for r in results] == ["member_0", "member_1"]
    assert results[0].sha256 != results[1].sha256
    p0, p1 = results[0].model.state_dict(), results[1].model.state_dict()
    assert any(not torch.equal(p0[k], p1[k]) for k in p0)


@pytest.mark.slow
def test_killed_ensemble_skips_done_members_and_resumes(lf_frames, hf_frames, tmp_path, monkeypatch):
    """Kill member 1 after its first epoch; the rerun skips member 0, resumes member 1, loads no base model."""
    from mfal.model import MFCHGNet

    loads = []
    original = MFCHGNet.from_pretrained.__func__

    def counting(cls, *a, **kw):
        loads.append(kw.get("version", a[0] if a else None))
        return original(cls, *a, **kw)

    monkeypatch.setattr(MFCHGNet, "from_pretrained", classmethod(counting))
    train, val = lf_frames[:2] + hf_frames[:2], hf_frames[-1:]
    cfg, ens = TrainConfig(epochs=2, **FAST), EnsembleConfig(k=2)
    done: list[int] = []

    def kill(member, row):
        if member == 1 and row["epoch"] == 0:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_ensemble(
            train,
            val,
            cfg,
            ens,
            out_dir=tmp_path,
            seed=5,
            on_epoch=kill,
            on_member_done=lambda i, r: done.append(i),
        )
    assert loads == ["0.2.0"] and done == [0]  # one base load for both members
    assert (tmp_path / "member_0" / "done.json").is_file()
    assert not (tmp_path / "member_1" / "done.json").exists()
    assert (tmp_path / "member_1" / "train_state.pt").is_file()
    seen: list[tuple[int, int]] = []
    results = train_ensemble(
        train,
        val,
        cfg,
        ens,
        out_dir=tmp_path,
        seed=5,
        on_epoch=lambda m, row: seen.append((m, row["epoch"])),
        on_member_done=lambda i, r: done.append(i),
    )
    assert loads == ["0.2.0"]  # nothing reloaded: member 0 skipped, member 1 from its train_state.pt
    assert seen == [(1, 1)] and done == [0, 1]
    assert results[0].extra["skipped"] and results[0].model is None
    assert results[0].checkpoint == tmp_path / "member_0" / "model.pt" and len(results[0].sha256) == 64
    assert [r.config.seed for r in results] == [5, 6]  # one seed formula: seed + i
    assert [row["epoch"] for row in results[1].history] == [0, 1]
    # a changed checkpoint is not trusted: that member trains again
    (tmp_path / "member_0" / "model.pt").write_bytes(b"garbage")
    again = train_ensemble(train, val, cfg, EnsembleConfig(k=1), out_dir=tmp_path, seed=5)
    assert not again[0].extra.get("skipped") and again[0].model is not None


def test_bootstrap_keeps_fidelity_counts():
    fids = ["lf"] * 7 + ["hf"] * 2 + ["lf"]
    idx = bootstrap_indices(fids, seed=3)
    assert sorted(fids[i] for i in idx) == sorted(fids)
    assert bootstrap_indices(fids, seed=3) == idx and bootstrap_indices(fids, seed=4) != idx


def test_warm_start_sha_mismatch_fails_before_training(pretrained_mf, lf_frames, tmp_path):
    ckpt = tmp_path / "prev.pt"
    pretrained_mf.save(ckpt)
    with pytest.raises(DataError, match="sha256"):
        train_ensemble(
            lf_frames[:1],
            [],
            TrainConfig(epochs=1, **FAST),
            EnsembleConfig(k=1),
            seed=0,
            warm_starts=[(ckpt, "0" * 64)],
        )
