"""Per-fidelity AtomRef (composition model) refit by least squares before training."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mfal.train.data import FrameDataset


def composition_per_atom(model: Any, graph: Any, fidelity: str) -> float:
    """Current AtomRef energy of one graph at ``fidelity`` (eV/atom for intensive models, else eV)."""
    row = model.fidelities.index(fidelity) if "C" in model.components else 0
    z = graph.atomic_number.long().cpu() - 1
    total = float(model.atom_ref.detach().cpu()[row, z].sum())
    return total / len(z) if model.is_intensive else total


def fit_atomref(
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
                        float(ei) - composition_per_atom(model, g, fid)
                        for ei, g in zip(e, chunk, strict=True)
                    ]
        finally:
            model.train(was_training)
        targets = np.asarray([ds.energy[i] for i in idx]) - np.asarray(network)
        model.fit_composition(graphs, targets, fid)
        used[fid] = len(idx)
    return used
