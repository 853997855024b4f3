"""Trainer for multi-fidelity CHGNet and its baselines; metrics per fidelity.

Modes (same loop, same loss):

- ``mf``: one :class:`~mfal.model.MFCHGNet` with fidelity components (any subset of "EMRC") on all frames;
- ``sf``: single-fidelity CHGNet architecture (components "") trained on the target (HF) frames only;
- ``tl``: single-fidelity architecture trained on LF frames, then fine-tuned on HF frames (AtomRef refitted).

Per-fidelity AtomRef (composition model) is fitted by least squares on the training energies before training.
Batches mix fidelities (a fidelity index per graph), HF frames can be oversampled, early stopping watches the
validation force MAE of the target fidelity. A resumable training state (model, optimizer, scheduler, epoch,
history; only tensors and plain Python values, loadable with ``torch.load(..., weights_only=True)``) is
written to ``out_dir/train_state.pt`` after every epoch; the best model to ``out_dir/model.pt``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mfal.errors import ConfigError, DataError
from mfal.fidelity import DEFAULT_FIDELITIES, MAGNETIC_FIDELITIES
from mfal.store.docs import FrameDoc
from mfal.train.data import FrameDataset
from mfal.train.loss import LossConfig, MFLoss

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

STATE_FORMAT = "mfal-train-state/1"
COMPONENTS = "EMRC"
#: metric keys of :func:`evaluate` (units in the names)
METRIC_KEYS = ("e_mae_mev_atom", "f_mae_mev_ang", "s_mae_gpa", "m_mae_mub")


class TLConfig(BaseModel):
    """Transfer-learning baseline: LF pre-training, then HF fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    lf_epochs: int | None = Field(None, ge=0, description="epochs on LF frames (default: `epochs`)")
    hf_lr_factor: float = Field(1.0, gt=0, description="HF fine-tuning learning rate = lr × this")
    refit_atomref: bool = Field(True, description="refit the AtomRef on HF energies before fine-tuning")


class TrainConfig(BaseModel):
    """Everything one training run needs (YAML section ``train``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["mf", "sf", "tl"] = Field("mf", description="mf, sf (HF only) or tl (LF then HF)")
    fidelities: tuple[str, ...] = Field(DEFAULT_FIDELITIES, description="model fidelities, index 1, 2, ...")
    magnetic_fidelities: tuple[str, ...] = Field(MAGNETIC_FIDELITIES, description="fidelities with moments")
    target_fidelity: str = Field("hf", description="fidelity of early stopping and of sf/tl fine-tuning")
    lf_fidelity: str = Field("lf", description="fidelity of the tl pre-training stage")
    components: str | None = Field(None, description='subset of "EMRC" (mf default "EMRC"; sf/tl always "")')
    warm_start: str = Field("pretrained", description='"pretrained", "scratch" or a model checkpoint path')
    pretrained_version: str = Field("0.3.0", description="CHGNet version of the pretrained warm start")
    epochs: int = Field(20, ge=0, description="maximum epochs (per stage in tl)")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate (3e-4 suits fine-tuning pretrained CHGNet)")
    min_lr_factor: float = Field(0.05, gt=0, le=1, description="cosine schedule ends at lr × this")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1)
    grad_clip: float | None = Field(10.0, gt=0, description="max gradient norm (None: no clipping)")
    loss: LossConfig = Field(default_factory=LossConfig)
    hf_oversample: float = Field(
        1.0, ge=1.0, description="target-fidelity frames appear this many times per epoch (fraction random)"
    )
    patience: int | None = Field(10, ge=1, description="epochs without improvement before stopping")
    seed: int = Field(0, description="seeds model init (scratch), shuffling and bootstrap")
    device: str = Field("auto", description="auto, cpu or cuda")
    fit_atomref: bool = Field(True, description="least-squares AtomRef per fidelity before training")
    eval_batch_size: int = Field(16, ge=1)
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: leave as is)")
    tl: TLConfig = Field(default_factory=TLConfig)

    @field_validator("components")
    @classmethod
    def _components(cls, v: str | None) -> str | None:
        if v is None:
            return v
        bad = sorted(set(v) - set(COMPONENTS))
        if bad or len(set(v)) != len(v):
            raise ValueError(f"components={v!r}: expected distinct letters from {COMPONENTS!r} (or F = EMRC)")
        return "".join(c for c in COMPONENTS if c in v)

    @field_validator("components", mode="before")
    @classmethod
    def _full(cls, v: Any) -> Any:
        return COMPONENTS if v == "F" else v

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if len(self.fidelities) < 2 or len(set(self.fidelities)) != len(self.fidelities):
            raise ValueError(f"fidelities={list(self.fidelities)}: need at least 2 distinct names")
        for name in ("target_fidelity", "lf_fidelity"):
            if getattr(self, name) not in self.fidelities:
                raise ValueError(f"{name}={getattr(self, name)!r} not in fidelities {list(self.fidelities)}")
        unknown = [f for f in self.magnetic_fidelities if f not in self.fidelities]
        if unknown:
            raise ValueError(f"magnetic_fidelities {unknown} not in fidelities {list(self.fidelities)}")
        if self.mode == "mf" and self.components is None:
            self.components = COMPONENTS
        elif self.mode in ("sf", "tl"):
            if self.components:
                raise ValueError(
                    f"components={self.components!r}: mode {self.mode!r} uses the plain CHGNet "
                    'architecture (components "")'
                )
            self.components = ""
        return self


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


# --------------------------------------------------------------------------------------------------- model


def build_model(config: TrainConfig) -> Any:
    """The model a run starts from: pretrained warm start, scratch (seeded) or a saved MFCHGNet checkpoint."""
    import torch

    from mfal.model import MFCHGNet

    kwargs = {
        "fidelities": tuple(config.fidelities),
        "components": config.components or "",
        "magnetic_fidelities": tuple(config.magnetic_fidelities),
    }
    if config.warm_start == "pretrained":
        return MFCHGNet.from_pretrained(version=config.pretrained_version, **kwargs)
    if config.warm_start == "scratch":
        torch.manual_seed(config.seed)
        return MFCHGNet(**kwargs)
    path = Path(config.warm_start)
    if not path.is_file():
        raise ConfigError(
            f"warm_start={config.warm_start!r}: expected 'pretrained', 'scratch' or an existing checkpoint file"
        )
    model = MFCHGNet.load(path)
    if tuple(model.fidelities) != kwargs["fidelities"] or model.components != kwargs["components"]:
        raise ConfigError(
            f"warm_start checkpoint {path} has fidelities={list(model.fidelities)} components="
            f"{model.components!r}, config asks for {list(kwargs['fidelities'])} {kwargs['components']!r}"
        )
    return model


def _check_resume(state: dict[str, Any], model: Any, config: TrainConfig) -> None:
    """A resumed run must keep the model layout and the mode of the saved one."""
    saved = state.get("config", {})
    for key in ("mode", "components", "fidelities"):
        old, new = saved.get(key), getattr(config, key)
        if isinstance(new, tuple):
            new = list(new)
        if old is not None and old != new:
            raise ConfigError(f"resume: train.{key}={new!r} differs from the saved run's {old!r}")
    if list(model.model_args.get("fidelities", [])) != list(state["model_args"].get("fidelities", [])):
        raise ConfigError("resume: the model's fidelities differ from the saved run's")


def _model_from_state(state: dict[str, Any]) -> Any:
    from mfal.model import MFCHGNet

    model = MFCHGNet(**state["model_args"])
    model.load_state_dict(state["model_state"])
    return model


# --------------------------------------------------------------------------------------------------- evaluate


def _as_dataset(model: Any, frames: Sequence[FrameDoc] | FrameDataset) -> FrameDataset:
    if isinstance(frames, FrameDataset):
        return frames
    return FrameDataset.build(list(frames), model)


def evaluate(
    model: Any,
    frames: Sequence[FrameDoc] | FrameDataset,
    fidelity: str | None = None,
    *,
    batch_size: int = 16,
    device: str | None = None,
) -> dict[str, dict[str, float]]:
    """Validation errors per fidelity, each frame predicted at its own fidelity.

    Returns ``{fidelity: {"n_frames", "e_mae_mev_atom" (meV/atom), "f_mae_mev_ang" (meV/Å, mean over force
    components), "s_mae_gpa" (GPa, over components), "m_mae_mub" (μB, over sites with moments)}}``; a metric
    without labels is NaN. ``fidelity`` restricts the evaluation to that fidelity's frames.
    """
    ds = _as_dataset(model, frames)
    if fidelity is not None:
        if fidelity not in ds.model_fidelities:
            raise ConfigError(f"fidelity={fidelity!r} not in model fidelities {list(ds.model_fidelities)}")
        ds = ds.select_fidelity(fidelity)
    dev = device or _model_device(model)
    sums: dict[str, dict[str, list[float]]] = {}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(ds), batch_size):
            batch = ds.batch(range(start, min(start + batch_size, len(ds)))).to(dev)
            pred = model.forward(batch.graphs, batch.fidelity, task="efsm", is_training=False)
            for j, fid in enumerate(batch.fidelities):
                acc = sums.setdefault(fid, {k: [0.0, 0] for k in ("e", "f", "s", "m", "n")})
                acc["n"][1] += 1
                e_t = float(batch.energy[j])
                if math.isfinite(e_t):
                    acc["e"][0] += abs(float(pred["e"][j]) - e_t)
                    acc["e"][1] += 1
                for key, labels in (("f", batch.forces), ("s", batch.stress), ("m", batch.magmoms)):
                    label = labels[j]
                    if label is None or key not in pred:
                        continue
                    diff = pred[key][j].detach().reshape(label.shape) - label
                    acc[key][0] += float(diff.abs().sum())
                    acc[key][1] += diff.numel()
    finally:
        model.train(was_training)
    scale = {"e": 1000.0, "f": 1000.0, "s": 1.0, "m": 1.0}
    out: dict[str, dict[str, float]] = {}
    for fid, acc in sums.items():
        metrics: dict[str, float] = {"n_frames": float(acc["n"][1])}
        for key, name in zip("efsm", METRIC_KEYS, strict=True):
            total, count = acc[key]
            metrics[name] = scale[key] * total / count if count else float("nan")
        out[fid] = metrics
    return out


def _model_device(model: Any) -> str:
    try:
        return str(next(model.parameters()).device)
    except StopIteration:
        return "cpu"


# --------------------------------------------------------------------------------------------------- training


def _composition_per_atom(model: Any, graph: Any, fidelity: str) -> float:
    """Current AtomRef energy of one graph at ``fidelity`` (eV/atom for intensive models, else eV)."""
    row = model.fidelities.index(fidelity) if "C" in model.components else 0
    z = graph.atomic_number.long().cpu() - 1
    total = float(model.atom_ref.detach().cpu()[row, z].sum())
    return total / len(z) if model.is_intensive else total


def _fit_atomref(
    model: Any, ds: FrameDataset, fidelities: Sequence[str], *, batch_size: int = 16
) -> dict[str, int]:
    """Least-squares AtomRef per fidelity on the training energies; returns the frames used per fidelity.

    The fit targets the part of each label the network does not already predict: ``E_label − (E_model −
    E_AtomRef)`` (eV/atom), so a warm-started network keeps its meaning and only the composition offsets move
    (for a model from scratch this is close to fitting the raw energies).
    """
    import torch

    used: dict[str, int] = {}
    for fid in fidelities:
        idx = [i for i in ds.indices_of(fid) if math.isfinite(ds.energy[i])]
        if not idx:
            continue
        graphs = [ds.graphs[i] for i in idx]
        network = []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(graphs), batch_size):
                    chunk = graphs[start : start + batch_size]
                    e = model.forward(chunk, fid, task="e")["e"].detach().cpu().numpy()
                    network += [
                        float(ei) - _composition_per_atom(model, g, fid)
                        for ei, g in zip(e, chunk, strict=True)
                    ]
        finally:
            model.train(was_training)
        targets = np.asarray([ds.energy[i] for i in idx]) - np.asarray(network)
        model.fit_composition(graphs, targets, fid)
        used[fid] = len(idx)
    return used


def _epoch_order(ds: FrameDataset, config: TrainConfig, epoch: int, stage: str) -> list[int]:
    """Frame order of one epoch (deterministic in seed, stage and epoch, so resuming repeats it)."""
    rng = np.random.default_rng([config.seed, epoch, {"main": 0, "lf": 1, "hf": 2}.get(stage, 3)])
    order = list(range(len(ds)))
    factor = config.hf_oversample
    if factor > 1.0:
        hf = ds.indices_of(config.target_fidelity)
        reps = int(math.floor(factor)) - 1
        order += hf * reps
        n_extra = int(round((factor - math.floor(factor)) * len(hf)))
        if n_extra:
            order += [int(i) for i in rng.choice(hf, size=n_extra, replace=False)]
    return [order[i] for i in rng.permutation(len(order))]


def _stop_metric(val: dict[str, dict[str, float]], fidelity: str, train_loss: float) -> tuple[float, str]:
    """Force MAE of ``fidelity`` on validation (meV/Å); falls back to other fidelities, then train loss."""
    if fidelity in val and math.isfinite(val[fidelity]["f_mae_mev_ang"]):
        return val[fidelity]["f_mae_mev_ang"], f"val {fidelity} force MAE"
    finite = [m["f_mae_mev_ang"] for m in val.values() if math.isfinite(m["f_mae_mev_ang"])]
    if finite:
        return float(np.mean(finite)), "val force MAE (all fidelities)"
    return train_loss, "train loss"


def _state_dict_copy(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _save_state(path: Path, payload: dict[str, Any]) -> None:
    """Atomic write of a weights_only-loadable training state."""
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Load a training state written by :func:`train_model` (``weights_only=True``; pickles are refused)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"resume checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"resume checkpoint {path}: cannot be loaded with weights_only=True ({err})") from err
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise DataError(f"resume checkpoint {path}: not an mfal training state (format {STATE_FORMAT!r})")
    return state


class _Stage:
    """One optimisation stage (mf/sf: one stage 'main'; tl: 'lf' then 'hf')."""

    def __init__(
        self,
        name: str,
        train: FrameDataset,
        val: FrameDataset,
        stop_fidelity: str,
        epochs: int,
        lr: float,
    ) -> None:
        self.name, self.train, self.val = name, train, val
        self.stop_fidelity, self.epochs, self.lr = stop_fidelity, epochs, lr


def _run_stage(
    model: Any,
    stage: _Stage,
    config: TrainConfig,
    *,
    device: str,
    history: list[dict[str, Any]],
    resume: dict[str, Any] | None,
    save: Callable[[dict[str, Any]], None] | None,
    progress: bool,
    callback: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """Train one stage with early stopping; restores the best weights; returns the stage summary."""
    import torch

    loss_fn = MFLoss(config.loss)
    task = loss_fn.task("efsm" if stage.train.has_labels("m") else "efs")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=stage.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(stage.epochs, 1), eta_min=stage.lr * config.min_lr_factor
    )
    start_epoch, best_metric, best_epoch, bad_epochs = 0, math.inf, -1, 0
    best_state = _state_dict_copy(model)
    best_val: dict[str, dict[str, float]] = {}
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        sched.T_max = max(stage.epochs, 1)  # a resumed run may have more epochs than the saved one
        start_epoch = int(resume["epoch"])
        best_metric = float(resume["best_metric"])
        best_epoch = int(resume["best_epoch"])
        bad_epochs = int(resume["bad_epochs"])
        best_state = resume["best_state"]
        best_val = resume.get("best_val", {})
    stopped_early = bad_epochs >= (config.patience or math.inf)

    epochs = range(start_epoch, stage.epochs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=stage.epochs, initial=start_epoch, desc=f"train[{stage.name}]", unit="epoch")
    for epoch in epochs:
        if stopped_early:
            break
        t0 = time.perf_counter()
        model.train()
        order = _epoch_order(stage.train, config, epoch, stage.name)
        losses, terms, n_seen = 0.0, {k: 0.0 for k in "efsm"}, 0
        for start in range(0, len(order), config.batch_size):
            batch = stage.train.batch(order[start : start + config.batch_size]).to(device)
            pred = model.forward(batch.graphs, batch.fidelity, task=task, is_training=True)
            out = loss_fn(pred, batch)
            opt.zero_grad(set_to_none=True)
            if out["loss"].requires_grad:  # a batch without any weighted label has nothing to learn
                out["loss"].backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                opt.step()
            losses += float(out["loss"].detach()) * len(batch)
            for k in "efsm":
                if k in out:
                    terms[k] += float(out[k]) * len(batch)
            n_seen += len(batch)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        train_loss = losses / max(n_seen, 1)
        val = (
            evaluate(model, stage.val, batch_size=config.eval_batch_size, device=device)
            if len(stage.val)
            else {}
        )
        metric, metric_name = _stop_metric(val, stage.stop_fidelity, train_loss)
        improved = metric < best_metric
        if improved:
            best_metric, best_epoch, bad_epochs = metric, epoch, 0
            best_state, best_val = _state_dict_copy(model), val
        else:
            bad_epochs += 1
        row = {
            "stage": stage.name,
            "epoch": epoch,
            "lr": lr,
            "train_loss": train_loss,
            "train_terms": {k: v / max(n_seen, 1) for k, v in terms.items()},
            "val": val,
            "stop_metric": metric,
            "stop_metric_name": metric_name,
            "improved": improved,
            "time_s": time.perf_counter() - t0,
        }
        history.append(row)
        log.info("stage %s epoch %d: loss %.4g, %s %.4g", stage.name, epoch, train_loss, metric_name, metric)
        stopped_early = config.patience is not None and bad_epochs >= config.patience
        if save is not None:
            save(
                {
                    "stage": stage.name,
                    "epoch": epoch + 1,
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "best_metric": best_metric,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "best_state": best_state,
                    "best_val": best_val,
                }
            )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.4f}", metric=f"{metric:.1f}")
        if callback is not None:  # after the save: an interrupted run resumes after this epoch
            callback(row)
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    return {
        "best_epoch": best_epoch,
        "best_val": best_val,
        "best_metric": best_metric,
        "stopped_early": stopped_early,
    }


def _split_sets(
    config: TrainConfig, train: FrameDataset, val: FrameDataset
) -> list[tuple[str, FrameDataset, FrameDataset, str, int, float]]:
    """The stages of a mode: (name, train, val, stop fidelity, epochs, lr)."""
    tgt = config.target_fidelity
    if config.mode == "mf":
        return [("main", train, val, tgt, config.epochs, config.lr)]
    hf_train, hf_val = train.select_fidelity(tgt), val.select_fidelity(tgt)
    if not len(hf_train):
        raise DataError(f"mode {config.mode!r} needs {tgt!r} training frames; the training set has none")
    if config.mode == "sf":
        return [("main", hf_train, hf_val, tgt, config.epochs, config.lr)]
    lf = config.lf_fidelity
    lf_train, lf_val = train.select_fidelity(lf), val.select_fidelity(lf)
    if not len(lf_train):
        raise DataError(f"mode 'tl' needs {lf!r} training frames; the training set has none")
    lf_epochs = config.epochs if config.tl.lf_epochs is None else config.tl.lf_epochs
    return [
        ("lf", lf_train, lf_val, lf, lf_epochs, config.lr),
        ("hf", hf_train, hf_val, tgt, config.epochs, config.lr * config.tl.hf_lr_factor),
    ]


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
    """Train ``model`` on prepared datasets (graphs already built; shared by ensemble members)."""
    import torch

    from mfal.device import resolve_device

    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    state = load_train_state(resume) if isinstance(resume, (str, Path)) else resume
    if state is not None:
        _check_resume(state, model, config)
        model.load_state_dict(state["model_state"])
    model = model.to(device)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    stages = _split_sets(config, train, val)
    history: list[dict[str, Any]] = list(state["history"]) if state is not None else []
    done_stages: list[str] = list(state.get("done_stages", [])) if state is not None else []
    atomref_fitted: list[str] = list(state.get("atomref_fitted", [])) if state is not None else []
    summary: dict[str, Any] = {}
    stopped_early = False
    for name, tr, va, stop_fid, epochs, lr in stages:
        if name in done_stages:
            continue
        stage_resume = state if state is not None and state.get("stage") == name else None
        if config.fit_atomref and name not in atomref_fitted:
            if name == "main":
                fids = [config.target_fidelity] if config.mode == "sf" else list(config.fidelities)
            elif name == "hf" and not config.tl.refit_atomref:
                fids = []
            else:
                fids = [stop_fid]
            used = _fit_atomref(model, tr, fids, batch_size=config.eval_batch_size)
            log.info("stage %s: fitted AtomRef on %s frames", name, used)
            atomref_fitted.append(name)
        if len(tr) == 0:
            raise DataError(f"stage {name!r}: no training frames")

        def save(stage_state: dict[str, Any], _name: str = name) -> None:
            if out is None:
                return
            payload = {
                "format": STATE_FORMAT,
                "config": config.model_dump(mode="json"),
                "model_args": model.model_args,
                "model_state": _state_dict_copy(model),
                "history": history,
                "done_stages": done_stages,
                "atomref_fitted": atomref_fitted,
                **stage_state,
            }
            _save_state(out / "train_state.pt", payload)

        stage = _Stage(name, tr, va, stop_fid, epochs, lr)
        summary = _run_stage(
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
        done_stages.append(name)
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
        result.state_path = out / "train_state.pt" if (out / "train_state.pt").exists() else None
        (out / "metrics.json").write_text(json.dumps(result_summary(result), indent=2, default=float))
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
    model = _model_from_state(state) if state is not None else build_model(config)
    train = FrameDataset.build(frames_train, model, magnetic_fidelities=config.magnetic_fidelities)
    val = FrameDataset.build(frames_val, model, magnetic_fidelities=config.magnetic_fidelities)
    return train_on_datasets(
        model, train, val, config, out_dir=out_dir, resume=state, progress=progress, callback=callback
    )


def train_ensemble(
    frames_train: Sequence[FrameDoc],
    frames_val: Sequence[FrameDoc],
    config: TrainConfig,
    k: int,
    *,
    bootstrap: bool = False,
    out_dir: str | Path | None = None,
    warm_starts: Sequence[str | Path] | None = None,
    progress: bool = False,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[TrainResult]:
    """Train ``k`` members that differ by seed (``config.seed + i``) and, with ``bootstrap``, by a resample
    of the training frames. Graphs are built once and shared by all members; member i writes to
    ``out_dir/member_i``. ``warm_starts`` (k checkpoint paths, e.g. last round's members) overrides
    ``config.warm_start`` per member."""
    if k < 1:
        raise ConfigError(f"ensemble size k={k}: expected k >= 1")
    if warm_starts is not None and len(warm_starts) != k:
        raise ConfigError(f"warm_starts: got {len(warm_starts)} checkpoints for k={k} members")

    def member_config(i: int) -> TrainConfig:
        update: dict[str, Any] = {"seed": config.seed + i}
        if warm_starts is not None:
            update["warm_start"] = str(warm_starts[i])
        return config.model_copy(update=update)

    first = build_model(member_config(0))
    train = FrameDataset.build(frames_train, first, magnetic_fidelities=config.magnetic_fidelities)
    val = FrameDataset.build(frames_val, first, magnetic_fidelities=config.magnetic_fidelities)
    results = []
    for i in range(k):
        member_cfg = member_config(i)
        model = first if i == 0 else build_model(member_cfg)
        member_train = train
        if bootstrap:
            rng = np.random.default_rng([member_cfg.seed, 7919])
            member_train = train.subset(rng.integers(0, len(train), size=len(train)).tolist())
        member_dir = Path(out_dir) / f"member_{i}" if out_dir is not None else None
        cb = (lambda row, _i=i: callback(_i, row)) if callback is not None else None
        results.append(
            train_on_datasets(
                model, member_train, val, member_cfg, out_dir=member_dir, progress=progress, callback=cb
            )
        )
    return results
