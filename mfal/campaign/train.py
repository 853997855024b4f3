"""Train step: the failed-label guard, then the round's ensemble (the one ensemble trainer)."""

from __future__ import annotations

from pathlib import Path

from mfal.campaign import policy
from mfal.campaign.artifacts import CheckpointRef, TrainOutput
from mfal.campaign.config import CampaignConfig
from mfal.campaign.context import Campaign
from mfal.campaign.faults import fault_point
from mfal.errors import MfalError
from mfal.runopts import RunOptions
from mfal.store.docs import FrameDoc
from mfal.train.ensemble import train_ensemble


def split_frames(cfg: CampaignConfig, frames: list[FrameDoc]) -> tuple[list[FrameDoc], list[FrameDoc]]:
    """The campaign's structure-wise train/validation split of ``frames`` (the same in train, evaluate and
    report; stable across rounds)."""
    from mfal.train.split import split_frames as split

    return split(frames, cfg.validation_fraction, seed=cfg.seed, target_fidelity=cfg.fidelities.high)


def member_seed(cfg: CampaignConfig, r: int) -> int:
    """Seed of round ``r``'s ensemble; member i trains with ``member_seed + i``."""
    return cfg.train.seed + cfg.seed * 100 + r * 10


def train_round(root: str | Path, r: int, options: RunOptions | None = None) -> TrainOutput:
    """Refuse to train when too many of round ``r``'s labels failed, else train the round's ensemble
    (``mfal.train.ensemble.train_ensemble``, in this process: graphs built once for all members, each start
    checkpoint loaded once; independent members: member i warm-starts from last round's member i, seed + i;
    ``ensemble.kind: heads``: the trunk warm-starts from last round's member 0 and is trained once, then K-1
    heads on it; a finished member is skipped on a rerun, an interrupted one resumes). Identical members or a
    zero spread raise ``DegenerateEnsembleError`` (never a silently promoted zero-spread ensemble).

    The training device (``options.device``, else ``train.device``) is checked before any work.
    """
    from mfal.device import resolve_device

    with Campaign(root, options) as c:
        cfg = c.config
        resolve_device(cfg.train.device)  # cuda without a GPU -> ConfigError now, not after loading the data
        ratio = policy.failed_ratio(c.round_frames(r))
        frames = c.store.training_frames(campaign=c.name)
        prev = list(c.state.checkpoints)
    reason = policy.failed_guard(ratio, cfg.ratio_failed, r)
    if reason:
        return TrainOutput(round=r, stopped=reason)
    train, val = split_frames(cfg, frames)
    if not train or not val:
        raise MfalError(f"round {r}: {len(train)} training / {len(val)} validation frames; need both")
    rd = c.round(r)
    with rd.timed("train"):
        results = train_ensemble(
            train,
            val,
            cfg.train,
            cfg.ensemble,
            out_dir=rd.model_dir,
            seed=member_seed(cfg, r),
            warm_starts=[(ref.path(c.dir.root), ref.sha256) for ref in prev] or None,
            progress=c.options.progress,
            on_member_done=lambda i, res: fault_point("during_train"),
        )
    refs = [CheckpointRef.from_path(res.checkpoint, res.sha256, c.dir.root) for res in results]
    return TrainOutput(round=r, checkpoints=refs, n_train=len(train), n_val=len(val))
