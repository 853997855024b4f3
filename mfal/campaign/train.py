"""Train step: the failed-label guard, then the round's ensemble (member i warm-starts from last round's i)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mfal.campaign import policy
from mfal.campaign.artifacts import CheckpointRef, TrainOutput
from mfal.campaign.config import CampaignConfig
from mfal.campaign.context import Campaign, structure_id
from mfal.campaign.faults import fault_point
from mfal.errors import MfalError
from mfal.fileio import atomic_write_json, read_json
from mfal.runopts import RunOptions
from mfal.store.docs import FrameDoc


def split_train_val(
    frames: list[FrameDoc], fraction: float, seed: int, target: str
) -> tuple[list[FrameDoc], list[FrameDoc]]:
    """Stable structure-wise split: a structure is in validation iff hash(seed, structure id) < ``fraction``.

    All fidelities of a structure stay together; if no ``target``-fidelity structure lands in validation (and
    there are ≥ 2), the one with the smallest hash does, and one stays in training. The split of a structure
    does not change between rounds (except through that fallback).
    """
    groups: dict[str, list[FrameDoc]] = {}
    for f in frames:
        groups.setdefault(structure_id(f), []).append(f)

    def h(key: str) -> float:
        return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12

    val_keys = {k for k in groups if h(k) < fraction}
    tgt_keys = sorted((k for k, fs in groups.items() if any(f.fidelity == target for f in fs)), key=h)
    if len(tgt_keys) >= 2 and not val_keys & set(tgt_keys):
        val_keys.add(tgt_keys[0])
    if len(tgt_keys) >= 2 and set(tgt_keys) <= val_keys:
        val_keys.discard(tgt_keys[-1])
    train = [f for k in sorted(groups) if k not in val_keys for f in groups[k]]
    val = [f for k in sorted(groups) if k in val_keys for f in groups[k]]
    return train, val


def split_frames(cfg: CampaignConfig, frames: list[FrameDoc]) -> tuple[list[FrameDoc], list[FrameDoc]]:
    """The campaign's train/validation split of ``frames`` (the same in train, evaluate and report)."""
    return split_train_val(frames, cfg.validation_fraction, cfg.seed, cfg.fidelities.high)


def member_seed(cfg: CampaignConfig, r: int) -> int:
    """Seed of round ``r``'s ensemble; member i trains with ``member_seed + i``."""
    return cfg.train.seed + cfg.seed * 100 + r * 10


def train_members(
    train: list[FrameDoc],
    val: list[FrameDoc],
    cfg: CampaignConfig,
    *,
    out_dir: Path,
    seed: int,
    warm_starts: list[tuple[Path, str]] | None,
    progress: bool,
) -> list[tuple[Path, str]]:
    """Train (or resume) the ensemble members under ``out_dir/member_i``; returns (checkpoint, sha256) each.

    A finished member (``done.json``) is skipped; an interrupted one resumes from its ``train_state.pt``.
    """
    from mfal.model import MFCHGNet
    from mfal.train.data import FrameDataset
    from mfal.train.trainer import build_model, train_on_datasets

    out: list[tuple[Path, str]] = []
    datasets = None
    for i in range(cfg.ensemble.k):
        member_dir = out_dir / f"member_{i}"
        done = read_json(member_dir / "done.json")
        if done is None:
            tcfg = cfg.train.model_copy(update={"seed": seed + i})
            if warm_starts:
                path, sha = warm_starts[i % len(warm_starts)]
                model = MFCHGNet.load(str(path), sha256=sha)
            else:
                model = build_model(tcfg)
            if datasets is None:
                tr = FrameDataset.build(train, model, magnetic_fidelities=tcfg.magnetic_fidelities)
                va = FrameDataset.build(val, model, magnetic_fidelities=tcfg.magnetic_fidelities)
                datasets = (tr, va)
            tr, va = datasets
            if cfg.ensemble.bootstrap:
                rng = np.random.default_rng([tcfg.seed, 7919])
                tr = tr.subset(rng.integers(0, len(tr), size=len(tr)).tolist())
            state_file = member_dir / "train_state.pt"
            res = train_on_datasets(
                model,
                tr,
                va,
                tcfg,
                out_dir=member_dir,
                resume=state_file if state_file.is_file() else None,
                progress=progress,
            )
            done = {"path": str(res.checkpoint), "sha256": res.sha256, "metrics": res.metrics}
            atomic_write_json(member_dir / "done.json", done)
            fault_point("during_train")
        path = Path(done["path"])
        if not path.is_file():  # the campaign directory was moved: the checkpoint sits beside done.json
            path = member_dir / path.name
        out.append((path, done["sha256"]))
    return out


def train_round(root: str | Path, r: int, options: RunOptions | None = None) -> TrainOutput:
    """Refuse to train when too many of round ``r``'s labels failed, else train the round's ensemble.

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
        members = train_members(
            train,
            val,
            cfg,
            out_dir=rd.model_dir,
            seed=member_seed(cfg, r),
            warm_starts=[(ref.path(c.dir.root), ref.sha256) for ref in prev] or None,
            progress=c.options.progress,
        )
    refs = [CheckpointRef.from_path(p, sha, c.dir.root) for p, sha in members]
    return TrainOutput(round=r, checkpoints=refs, n_train=len(train), n_val=len(val))
