"""Per-fidelity predictions of an ensemble of MF-CHGNet checkpoints (graphs built once, shared by members)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pymatgen.core import Structure

from mfal.uncertainty.scores import ensemble_scores


def load_members(checkpoints: Sequence[dict[str, str]], device: str = "cpu") -> list[Any]:
    """MFCHGNet members from ``[{"path", "sha256"}]`` (sha256 checked)."""
    from mfal.model import MFCHGNet

    return [MFCHGNet.load(c["path"], sha256=c.get("sha256"), device=device) for c in checkpoints]


def ensemble_predict(
    members: Sequence[Any],
    structures: Sequence[Structure],
    fidelities: Sequence[str] = ("lf", "hf"),
    *,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Scores and mean predictions per fidelity.

    Returns ``{fidelity: {"scores": {name: [n]}, "energy": [n] eV, "forces": per structure [n_atoms, 3] eV/Å}}``
    (means over members). ``progress(k)`` is called per member and fidelity.
    """
    if not structures:
        return {f: {"scores": {}, "energy": np.zeros(0), "forces": []} for f in fidelities}
    graphs = members[0].graphs(list(structures))
    nsites = [len(s) for s in structures]
    out: dict[str, dict[str, Any]] = {}
    for fid in fidelities:
        energies, forces, moms = [], [], []
        for m in members:
            preds = m.predict(structures, fid, graphs=graphs, batch_size=batch_size)
            energies.append([p["e"] * n for p, n in zip(preds, nsites, strict=True)])
            forces.append([np.asarray(p["f"]) for p in preds])
            moms.append([np.asarray(p["m"]) if "m" in p else None for p in preds])
            if progress is not None:
                progress(1)
        e = np.asarray(energies)  # [k, n] eV
        f_per = [np.stack([forces[k][i] for k in range(len(members))]) for i in range(len(structures))]
        m_per = [
            None if moms[0][i] is None else np.stack([moms[k][i] for k in range(len(members))])
            for i in range(len(structures))
        ]
        out[fid] = {
            "scores": ensemble_scores(e, f_per, nsites, m_per),
            "energy": e.mean(axis=0),
            "forces": [f.mean(axis=0) for f in f_per],
        }
    return out
