"""One training run from a YAML file (``mfal train CONFIG.yaml``): data sources, split, settings, output dir.

Example (``configs/train/example.yaml``)::

    data:
      builtin: lifepo4_teacher      # SURROGATE teacher labels shipped with mfal
      val_fraction: 0.25
    train:
      mode: mf
      epochs: 4
    out_dir: runs/train-example
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mfal.config_io import read_yaml, validation_message
from mfal.errors import ConfigError
from mfal.store.docs import FrameDoc
from mfal.train.config import TrainConfig
from mfal.train.ensemble import EnsembleConfig, train_ensemble
from mfal.train.split import split_frames
from mfal.train.trainer import TrainResult, train_model

log = logging.getLogger(__name__)


class DataConfig(BaseModel):
    """Where the training frames come from; only status "ok" frames are used."""

    model_config = ConfigDict(extra="forbid")

    builtin: str | None = Field(
        None, description="built-in data set, e.g. 'lifepo4_teacher' (surrogate labels)"
    )
    extxyz: list[str] = Field(default_factory=list, description="extxyz files (paths relative to the config)")
    fidelity: str | None = Field(None, description="fidelity of extxyz frames that carry none in their info")
    store: str | None = Field(
        None, description="store dir / store YAML / campaign dir: its ok frames are used"
    )
    val_extxyz: list[str] = Field(default_factory=list, description="validation extxyz files (else a split)")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="share of structures held out for validation")
    split_seed: int = Field(0, description="seed of the train/validation split")
    max_frames: int | None = Field(
        None, ge=1, description="use at most this many training frames (per fidelity)"
    )


class TrainRunConfig(BaseModel):
    """The YAML file of ``mfal train``."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    out_dir: str = Field("runs/train", description="output directory (relative to the current directory)")


def load_run_config(path: str | Path) -> TrainRunConfig:
    """Read and validate a training YAML (``yaml.safe_load``); bad input -> one-line ConfigError."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys data, train, ensemble, out_dir")
    try:
        cfg = TrainRunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(validation_message(err, path)) from err
    base = path.parent
    data = cfg.data
    data.extxyz = [str(_resolve(base, p)) for p in data.extxyz]
    data.val_extxyz = [str(_resolve(base, p)) for p in data.val_extxyz]
    if data.store is not None:
        data.store = str(_resolve(base, data.store))
    if not (data.builtin or data.extxyz or data.store):
        raise ConfigError(f"{path}: field data: give at least one of builtin, extxyz, store")
    return cfg


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else base / q


def load_frames(
    data: DataConfig, *, fidelities: tuple[str, ...] | None = None
) -> tuple[list[FrameDoc], list]:
    """(frames, validation frames) from the configured sources; non-ok frames are dropped with a log line."""
    from mfal.store.extxyz import read_extxyz
    from mfal.train.example import load_builtin

    frames: list[FrameDoc] = []
    if data.builtin:
        frames += load_builtin(data.builtin)
    for p in data.extxyz:
        frames += read_extxyz(p, fidelity=data.fidelity)
    if data.store:
        from mfal.store import open_store

        with open_store(data.store) as store:
            frames += store.training_frames()
    val: list[FrameDoc] = []
    for p in data.val_extxyz:
        val += read_extxyz(p, fidelity=data.fidelity)
    frames, val = _only_ok(frames), _only_ok(val)
    if fidelities is not None:
        frames = [f for f in frames if f.fidelity in fidelities]
        val = [f for f in val if f.fidelity in fidelities]
    return frames, val


def _only_ok(frames: list[FrameDoc]) -> list[FrameDoc]:
    ok = [f for f in frames if f.status == "ok"]
    if len(ok) != len(frames):
        log.warning("skipped %d frames whose status is not 'ok'", len(frames) - len(ok))
    return ok


def _cap(frames: list[FrameDoc], max_frames: int | None) -> list[FrameDoc]:
    if max_frames is None:
        return frames
    counts: dict[str, int] = {}
    out = []
    for f in frames:
        if counts.get(f.fidelity, 0) < max_frames:
            counts[f.fidelity] = counts.get(f.fidelity, 0) + 1
            out.append(f)
    return out


def prepare_data(cfg: TrainRunConfig) -> tuple[list[FrameDoc], list[FrameDoc]]:
    """Training and validation frames of a run."""
    frames, val = load_frames(cfg.data, fidelities=tuple(cfg.train.fidelities))
    if not frames:
        raise ConfigError("data: no usable (status ok) training frames in the configured sources")
    if not val:
        frames, val = split_frames(
            frames, cfg.data.val_fraction, seed=cfg.data.split_seed, target_fidelity=cfg.train.target_fidelity
        )
    return _cap(frames, cfg.data.max_frames), val


def run_training(
    cfg: TrainRunConfig,
    *,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = False,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[TrainResult]:
    """Train the run's model (or ensemble) and write checkpoints + metrics JSON under the output dir.

    One model (``ensemble.k`` = 1) writes into the output dir itself; an ensemble into ``member_i`` subdirs
    (a rerun skips finished members and resumes an interrupted one). ``callback(member, row)`` after every epoch.
    """
    out = Path(out_dir or cfg.out_dir)
    train, val = prepare_data(cfg)
    log.info("training on %d frames, validating on %d", len(train), len(val))
    sources: dict[str, int] = {}
    for f in train + val:
        sources[f.source] = sources.get(f.source, 0) + 1
    if cfg.ensemble.k == 1:
        cb = (lambda row: callback(0, row)) if callback is not None else None
        results = [
            train_model(train, val, cfg.train, out_dir=out, resume=resume, progress=progress, callback=cb)
        ]
    elif resume is not None:
        raise ConfigError(
            "--resume works for single-model runs (ensemble.k = 1); rerun an ensemble with the same --out to "
            "skip its finished members and resume the interrupted one"
        )
    else:
        results = train_ensemble(
            train,
            val,
            cfg.train,
            cfg.ensemble,
            out_dir=out,
            seed=cfg.train.seed,
            progress=progress,
            on_epoch=callback,
        )
    for r in results:
        r.extra.update({"n_train": len(train), "n_val": len(val), "sources": sources})
    return results
