"""Validation errors per fidelity (each frame predicted at its own fidelity)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mfal.errors import ConfigError
from mfal.store.docs import FrameDoc
from mfal.train.data import FrameDataset

#: metric keys of :func:`evaluate` (units in the names)
METRIC_KEYS = ("e_mae_mev_atom", "f_mae_mev_ang", "s_mae_gpa", "m_mae_mub")


def as_dataset(model: Any, frames: Sequence[FrameDoc] | FrameDataset) -> FrameDataset:
    """``frames`` as a dataset (graphs built through ``model`` unless it is one already)."""
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
    ds = as_dataset(model, frames)
    if fidelity is not None:
        if fidelity not in ds.model_fidelities:
            raise ConfigError(f"fidelity={fidelity!r} not in model fidelities {list(ds.model_fidelities)}")
        ds = ds.select_fidelity(fidelity)
    dev = device or model_device(model)
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


def model_device(model: Any) -> str:
    try:
        return str(next(model.parameters()).device)
    except StopIteration:
        return "cpu"
