"""Trainer for multi-fidelity CHGNet and its baselines; metrics per fidelity.

Modes (same loop, same loss):

- ``mf``: one :class:`~mfal.model.MFCHGNet` with fidelity components (any subset of "EMRC") on all frames;
- ``sf``: single-fidelity CHGNet architecture (components "") trained on the target (HF) frames only;
- ``tl``: single-fidelity architecture trained on LF frames, then fine-tuned on HF frames (AtomRef refitted).

Per-fidelity AtomRef (composition model, :mod:`mfal.train.atomref`) is fitted by least squares on the training
energies before training. Batches mix fidelities (a fidelity index per graph), HF frames can be oversampled,
early stopping watches the validation force MAE of the target fidelity (:mod:`mfal.train.loop`). A resumable
training state (:mod:`mfal.train.state`) is written to ``out_dir/train_state.pt`` after every epoch; the best
model to ``out_dir/model.pt``. Ensembles: :func:`mfal.train.ensemble.train_ensemble`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfal.errors import DataError
from mfal.fileio import atomic_write_json
from mfal.store.docs import FrameDoc
from mfal.train.atomref import fit_atomref
from mfal.train.build import build_model, check_resume, model_from_state
from mfal.train.config import COMPONENTS, TLConfig, TrainConfig
from mfal.train.data import FrameDataset
from mfal.train.evaluate import METRIC_KEYS, evaluate
from mfal.train.loop import Stage, run_stage, stage_epochs, trunk_frozen
from mfal.train.state import STATE_FILE, STATE_FORMAT, load_train_state, save_train_state, state_dict_copy

log = logging.getLogger(__name__)

__all__ = [  # the trainer's public names (several are defined in the modules above and re-exported here)
    "COMPONENTS",
    "METRIC_KEYS",
    "STATE_FORMAT",
    "TLConfig",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "evaluate",
    "load_train_state",
    "result_summary",
    "train_model",
    "train_on_datasets",
]


@dataclass
class TrainResult:
    """Outcome of one training run."""

    model: Any
    metrics: dict[str, dict[str, float]]  # best validation metrics per fidelity (see METRIC_KEYS)
    history: list[dict[str, Any]]
    best_epoch: int
    checkpoint: Path | None = None
    sha256: str | None = None
    state_path: Path | None = None
    config: TrainConfig | None = None
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def stages_of(config: TrainConfig, train: FrameDataset, val: FrameDataset) -> list[Stage]:
    """The stages of a mode: mf/sf one stage "main" (mf with ``head_warmup_epochs``: a frozen-trunk stage
    "heads" first; with ``hf_finetune_epochs``: a last stage "hf-fine" on the target frames only); tl
    pre-training on the LF fidelity, then HF fine-tuning (stage names = the fidelity names)."""
    tgt = config.target_fidelity
    if config.mode == "mf":
        stages = [Stage("main", "main", train, val, tgt, stage_epochs(config, train), config.lr)]
        if config.head_warmup_epochs:
            stages.insert(0, Stage("heads", "heads", train, val, tgt, config.head_warmup_epochs, config.lr))
        hf_train = train.select_fidelity(tgt) if config.hf_finetune_epochs else None
        if hf_train is not None and len(hf_train):
            fine_val = val.select_fidelity(tgt)
            stages.append(Stage("hf-fine", "fine", hf_train, fine_val, tgt, config.hf_finetune_epochs, config.lr))
        return stages
    hf_train, hf_val = train.select_fidelity(tgt), val.select_fidelity(tgt)
    if not len(hf_train):
        raise DataError(f"mode {config.mode!r} needs {tgt!r} training frames; the training set has none")
    if config.mode == "sf":
        return [Stage("main", "main", hf_train, hf_val, tgt, stage_epochs(config, hf_train), config.lr)]
    lf = config.lf_fidelity
    lf_train, lf_val = train.select_fidelity(lf), val.select_fidelity(lf)
    if not len(lf_train):
        raise DataError(f"mode 'tl' needs {lf!r} training frames; the training set has none")
    lf_epochs = config.epochs if config.tl.lf_epochs is None else config.tl.lf_epochs
    fine_lr = config.lr * config.tl.hf_lr_factor
    return [
        Stage(lf, "pre", lf_train, lf_val, lf, lf_epochs, config.lr),
        Stage(tgt, "fine", hf_train, hf_val, tgt, stage_epochs(config, hf_train), fine_lr),
    ]


def _atomref_fidelities(config: TrainConfig, stage: Stage) -> list[str]:
    """Fidelities whose AtomRef is refitted before ``stage``."""
    if stage.role in ("main", "heads"):
        return [config.target_fidelity] if config.mode == "sf" else list(config.fidelities)
    if stage.role == "fine" and not config.tl.refit_atomref:
        return []
    return [stage.stop_fidelity]


def train_on_datasets(
    model: Any,
    train: FrameDataset,
    val: FrameDataset,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: str | Path | dict[str, Any] | None = None,
    progress: bool = False,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` on prepared datasets (graphs already built; shared by ensemble members).

    ``resume``: a ``train_state.pt`` path (or its loaded dict) of an interrupted run with the same layout; its
    weights, optimizer, schedule and history are restored and training continues after its last epoch.
    ``callback(row)`` is called after every epoch (after the state is saved). With ``out_dir`` writes
    ``model.pt``, ``train_state.pt`` and ``metrics.json`` (strict JSON: a metric without labels is null).
    """
    import torch

    from mfal.device import resolve_device

    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    state = load_train_state(resume) if isinstance(resume, (str, Path)) else resume
    if state is not None:
        check_resume(state, model, config)
        model.load_state_dict(state["model_state"])
    model = model.to(device)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    stages = stages_of(config, train, val)
    history: list[dict[str, Any]] = list(state["history"]) if state is not None else []
    done_stages: list[str] = list(state.get("done_stages", [])) if state is not None else []
    atomref_fitted: list[str] = list(state.get("atomref_fitted", [])) if state is not None else []
    summary: dict[str, Any] = {}
    stopped_early = False
    for stage in stages:
        if stage.name in done_stages:
            continue
        stage_resume = state if state is not None and state.get("stage") == stage.name else None
        if config.fit_atomref and stage.name not in atomref_fitted:
            fids = _atomref_fidelities(config, stage)
            used = fit_atomref(model, stage.train, fids, batch_size=config.eval_batch_size)
            log.info("stage %s: fitted AtomRef on %s frames", stage.name, used)
            atomref_fitted.append(stage.name)
        if len(stage.train) == 0:
            raise DataError(f"stage {stage.name!r}: no training frames")

        def save(stage_state: dict[str, Any]) -> None:
            if out is None:
                return
            payload = {
                "format": STATE_FORMAT,
                "config": config.model_dump(mode="json"),
                "model_args": model.model_args,
                "model_state": state_dict_copy(model),
                "history": history,
                "done_stages": done_stages,
                "atomref_fitted": atomref_fitted,
                **stage_state,
            }
            save_train_state(out / STATE_FILE, payload)

        with trunk_frozen(model) if stage.role == "heads" else nullcontext():
            summary = run_stage(
                model,
                stage,
                config,
                device=device,
                history=history,
                resume=stage_resume,
                save=save,
                progress=progress,
                callback=callback,
            )
        stopped_early = stopped_early or summary["stopped_early"]
        done_stages.append(stage.name)
        state = None
    # final metrics of the best model on all validation frames, each at its own fidelity
    metrics = evaluate(model, val, batch_size=config.eval_batch_size, device=device) if len(val) else {}
    result = TrainResult(
        model=model,
        metrics=metrics,
        history=history,
        best_epoch=int(summary.get("best_epoch", -1)),
        config=config,
        stopped_early=stopped_early,
    )
    if out is not None:
        ckpt = out / "model.pt"
        result.sha256 = model.save(ckpt)
        result.checkpoint = ckpt
        result.state_path = out / STATE_FILE if (out / STATE_FILE).exists() else None
        atomic_write_json(out / "metrics.json", result_summary(result))
    return result


def result_summary(result: TrainResult) -> dict[str, Any]:
    """JSON-able summary of a run: metrics per fidelity, best epoch, checkpoint + sha256, history."""
    return {
        "metrics": result.metrics,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "sha256": result.sha256,
        "config": result.config.model_dump(mode="json") if result.config else None,
        "history": result.history,
    }


def train_model(
    frames_train: Sequence[FrameDoc],
    frames_val: Sequence[FrameDoc],
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = False,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train one model on ok frames (validation frames drive early stopping) and return the best one.

    With ``out_dir`` writes ``model.pt`` (best model, sha256 in the result), ``train_state.pt`` (resumable after
    every epoch) and ``metrics.json``. ``resume`` continues a run from its ``train_state.pt``.
    """
    state = load_train_state(resume) if resume is not None else None
    model = model_from_state(state) if state is not None else build_model(config)
    train = FrameDataset.build(frames_train, model, magnetic_fidelities=config.magnetic_fidelities)
    val = FrameDataset.build(frames_val, model, magnetic_fidelities=config.magnetic_fidelities)
    return train_on_datasets(
        model, train, val, config, out_dir=out_dir, resume=state, progress=progress, callback=callback
    )
