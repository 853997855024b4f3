"""One optimisation stage: epochs over a shuffled (optionally HF-oversampled) order, early stopping, the
resumable per-epoch state."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfal.train.config import TrainConfig
from mfal.train.data import FrameDataset
from mfal.train.evaluate import evaluate
from mfal.train.loss import MFLoss, frame_scale
from mfal.train.state import state_dict_copy

log = logging.getLogger(__name__)

#: stage roles: mf/sf have one stage "main"; tl pre-trains ("pre", low fidelity) then fine-tunes ("fine");
#: "heads" (mf, ``head_warmup_epochs``) trains the fidelity parameters only, the trunk frozen
ROLES = ("main", "pre", "fine", "heads")


@dataclass
class Stage:
    """One optimisation stage; ``name`` appears in the history rows and the training state."""

    name: str
    role: str  # one of ROLES
    train: FrameDataset
    val: FrameDataset
    stop_fidelity: str  # early stopping watches this fidelity's validation force MAE
    epochs: int
    lr: float


def oversample_counts(n_target: int, hf_oversample: float) -> tuple[int, int]:
    """Per epoch, the extra whole repeats of the ``n_target`` target frames and the size of the extra random
    subset (the fractional part of ``hf_oversample``)."""
    whole = int(math.floor(hf_oversample))
    return whole - 1, int(round((hf_oversample - whole) * n_target))


def epoch_size(n_frames: int, n_target: int, hf_oversample: float) -> int:
    """Frames per epoch of :func:`epoch_order`: every frame once, the ``n_target`` target-fidelity frames
    ``hf_oversample`` times (the fractional part as a random subset)."""
    reps, n_extra = oversample_counts(n_target, hf_oversample)
    return n_frames + n_target * reps + n_extra


def stage_epochs(config: TrainConfig, ds: FrameDataset) -> int:
    """Epochs of a stage on ``ds``: ``config.epochs``, or with a step budget ``config.steps`` the epochs that
    take at least that many optimizer steps (ceil(steps / batches per epoch))."""
    if config.steps is None:
        return config.epochs
    size = epoch_size(len(ds), len(ds.indices_of(config.target_fidelity)), config.hf_oversample)
    batches = max(math.ceil(size / config.batch_size), 1)
    return math.ceil(config.steps / batches)


def epoch_order(ds: FrameDataset, config: TrainConfig, epoch: int, stage: Stage) -> list[int]:
    """Frame order of one epoch (deterministic in seed, stage and epoch, so resuming repeats it)."""
    rng = np.random.default_rng([config.seed, epoch, ROLES.index(stage.role)])
    order = list(range(len(ds)))
    factor = config.hf_oversample
    if factor > 1.0:
        hf = ds.indices_of(config.target_fidelity)
        reps, n_extra = oversample_counts(len(hf), factor)
        order += hf * reps
        if n_extra:
            order += [int(i) for i in rng.choice(hf, size=n_extra, replace=False)]
    return [order[i] for i in rng.permutation(len(order))]


#: parameter-name prefixes of the fidelity switches E and M
FIDELITY_PREFIXES = ("fidelity_embedding.", "fidelity_columns.")
#: parameter-name prefixes of the heads: readout MLP(s) and the fidelity parameters E and M
HEAD_PREFIXES = ("readouts.", "mlp.", *FIDELITY_PREFIXES)


def param_groups(
    model: Any, lr: float, trunk_lr_factor: float, fidelity_lr_factor: float = 1.0
) -> list[dict[str, Any]]:
    """Adam parameter groups: readouts at ``lr``, E and M at ``lr × fidelity_lr_factor``, the shared trunk at
    ``lr × trunk_lr_factor`` (groups "readouts", "fidelity", "trunk"; the first two are the heads)."""
    fidelity, readouts, trunk = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(FIDELITY_PREFIXES):
            fidelity.append(p)
        else:
            (readouts if name.startswith(HEAD_PREFIXES) else trunk).append(p)
    groups = [
        {"params": readouts, "lr": lr, "name": "readouts"},
        {"params": fidelity, "lr": lr * fidelity_lr_factor, "name": "fidelity"},
        {"params": trunk, "lr": lr * trunk_lr_factor, "name": "trunk"},
    ]
    return [g for g in groups if g["params"]]


@contextmanager
def trunk_frozen(model: Any) -> Iterator[None]:
    """Parameters outside :data:`HEAD_PREFIXES` get ``requires_grad=False`` inside (no weight gradients are
    computed for them: a cheaper backward); the previous flags are restored on exit."""
    saved = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        for name, p in model.named_parameters():
            if not name.startswith(HEAD_PREFIXES):
                p.requires_grad_(False)
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(saved[name])


def cosine_schedule(opt: Any, t_max: int, min_factor: float, last_epoch: int = -1) -> Any:
    """Cosine decay of every group's lr from its initial value to × ``min_factor`` over ``t_max`` epochs."""
    import torch

    def factor(epoch: int) -> float:
        e = min(epoch, t_max)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * e / t_max))

    if last_epoch >= 0:
        for g in opt.param_groups:
            g.setdefault("initial_lr", g["lr"])
    return torch.optim.lr_scheduler.LambdaLR(opt, factor, last_epoch=last_epoch)


def stop_metric(val: dict[str, dict[str, float]], fidelity: str, train_loss: float) -> tuple[float, str]:
    """Force MAE of ``fidelity`` on validation (meV/Å); falls back to other fidelities, then train loss."""
    if fidelity in val and math.isfinite(val[fidelity]["f_mae_mev_ang"]):
        return val[fidelity]["f_mae_mev_ang"], f"val {fidelity} force MAE"
    finite = [m["f_mae_mev_ang"] for m in val.values() if math.isfinite(m["f_mae_mev_ang"])]
    if finite:
        return float(np.mean(finite)), "val force MAE (all fidelities)"
    return train_loss, "train loss"


def projected_grads(
    loss_fn: MFLoss, pred: Any, batch: Any, params: list[Any], shared: list[bool], scale: dict[str, float], target: str
) -> dict[str, float] | None:
    """Set ``p.grad`` of ``params`` to g_target + g_other, where on the ``shared`` parameters g_other loses its
    component along g_target if the two conflict (g_other · g_target < 0). Both gradients come from the same
    forward pass (the loss is linear in the per-fidelity frame weights, so their sum is the plain gradient).
    Returns {"cos": cosine on the shared parameters, "projected": 1.0 or 0.0}; None (nothing set) when the batch
    lacks either kind of frame."""
    import torch

    fids = set(batch.fidelities)
    if target not in fids or fids == {target}:
        return None
    only_t = MFLoss(loss_fn.config, fidelity_scale={f: (w if f == target else 0.0) for f, w in scale.items()})
    only_o = MFLoss(loss_fn.config, fidelity_scale={f: (0.0 if f == target else w) for f, w in scale.items()})
    l_t, l_o = only_t(pred, batch)["loss"], only_o(pred, batch)["loss"]
    if not (l_t.requires_grad and l_o.requires_grad):
        return None
    g_t = torch.autograd.grad(l_t, params, retain_graph=True, allow_unused=True)
    g_o = torch.autograd.grad(l_o, params, allow_unused=True)
    g_t = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_t, strict=True)]
    g_o = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_o, strict=True)]
    dot = sum(float((a * b).sum()) for a, b, sh in zip(g_t, g_o, shared, strict=True) if sh)
    n_t = sum(float((a * a).sum()) for a, sh in zip(g_t, shared, strict=True) if sh)
    n_o = sum(float((b * b).sum()) for b, sh in zip(g_o, shared, strict=True) if sh)
    cos = dot / math.sqrt(n_t * n_o) if n_t > 0 and n_o > 0 else 0.0
    project = dot < 0 and n_t > 0
    for p, a, b, sh in zip(params, g_t, g_o, shared, strict=True):
        p.grad = a + (b - (dot / n_t) * a if project and sh else b)
    return {"cos": cos, "projected": float(project)}


def run_stage(
    model: Any,
    stage: Stage,
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

    counts = {f: len(stage.train.indices_of(f)) for f in config.fidelities}
    lf_weight = config.lf_frame_weight if config.mode == "mf" else 1.0  # sf/tl stages see one fidelity
    scale = frame_scale(counts, config.fidelity_balance, lf_weight, config.target_fidelity)
    loss_fn = MFLoss(config.loss, fidelity_scale=scale)
    task = loss_fn.task("efsm" if stage.train.has_labels("m") else "efs")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    project = config.lf_gradient_projection and config.mode == "mf" and stage.role == "main"
    shared = [not n.startswith(HEAD_PREFIXES) for n, _ in named]
    # readouts at the stage lr, E and M at lr × fidelity_lr_factor, the shared trunk at lr × trunk_lr_factor
    groups = param_groups(model, stage.lr, config.trunk_lr(), config.fidelity_lr_factor)
    if stage.role == "heads":  # linear-probe stage: the shared trunk does not move
        groups = [g for g in groups if g["name"] != "trunk"]
    opt = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    sched = cosine_schedule(opt, max(stage.epochs, 1), config.min_lr_factor)
    start_epoch, best_metric, best_epoch, bad_epochs = 0, math.inf, -1, 0
    best_state = state_dict_copy(model)
    best_val: dict[str, dict[str, float]] = {}
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])
        sched = cosine_schedule(  # the schedule is a pure function of the epoch: rebuilt, not loaded
            opt, max(stage.epochs, 1), config.min_lr_factor, last_epoch=int(resume["epoch"]) - 1
        )
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
        order = epoch_order(stage.train, config, epoch, stage)
        losses, terms, n_seen = 0.0, {k: 0.0 for k in "efsm"}, 0
        cosines: list[float] = []
        n_projected = 0
        for start in range(0, len(order), config.batch_size):
            batch = stage.train.batch(order[start : start + config.batch_size]).to(device)
            pred = model.forward(batch.graphs, batch.fidelity, task=task, is_training=True)
            out = loss_fn(pred, batch)
            opt.zero_grad(set_to_none=True)
            if out["loss"].requires_grad:  # a batch without any weighted label has nothing to learn
                pc = None
                if project:  # sets p.grad itself (None: a batch of one fidelity, plain backward below)
                    pc = projected_grads(loss_fn, pred, batch, params, shared, scale, config.target_fidelity)
                if pc is None:
                    out["loss"].backward()
                else:
                    cosines.append(pc["cos"])
                    n_projected += int(pc["projected"])
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
        metric, metric_name = stop_metric(val, stage.stop_fidelity, train_loss)
        improved = metric < best_metric
        if improved:
            best_metric, best_epoch, bad_epochs = metric, epoch, 0
            best_state, best_val = state_dict_copy(model), val
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
        if cosines:  # lf_gradient_projection: trunk-gradient cosine HF vs LF frames, share of batches projected
            row["grad_cos_mean"] = float(np.mean(cosines))
            row["projected_fraction"] = n_projected / len(cosines)
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
