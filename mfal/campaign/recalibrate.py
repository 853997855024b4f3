"""Per-fidelity recalibration of the ensemble spread across rounds (the campaign side of
:mod:`mfal.uncertainty.calibration`).

Each round's evaluate step pairs the raw spreads with true errors — the frames just labeled (their pre-label
scores from the round's ``scores.json``) plus the validation frames (predicted by the ensemble the next round
scores with) — and writes ``rounds/NNN/calibration.json``: per fidelity and quantity the
:class:`~mfal.uncertainty.CalibrationStats` of the spread as used this round, and the scale for the next round
(``fit_scale`` shrunk toward the scale in use). The score step multiplies the raw spreads by the latest recorded
scale and writes ``rounds/NNN/scale.json`` (which scale, from which round; round 0 and a campaign without any
fit are uncalibrated, scale 1).

Quantities: ``forces`` (force_std_max vs the largest per-atom force error, eV/Å), ``forces_atoms`` (every force
component of every paired frame: the raw per-component member std vs the signed error F_pred − F_label, eV/Å;
area/coverage/scale over components, ρ over atoms — :func:`~mfal.uncertainty.atom_calibration_stats`; its own
scale chain, recorded but not applied to any score: trust windows and the stop rule keep the ``forces`` scale,
which starts from the ``forces_atoms`` fit until the max-atom statistic has pairs of its own — :func:`seed_force_scale`),
``energy`` (energy_std vs |ΔE| per atom, eV/atom), ``moments`` (magmom_std_max vs the largest site
| |m_pred| − |m_label| |, μB; magnetic fidelities only — labels and the model's moments are compared as
magnitudes, as in training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfal.campaign.artifacts import RoundScores
from mfal.fidelity import Fidelities
from mfal.fileio import atomic_write_json, read_json
from mfal.store.docs import FrameDoc
from mfal.uncertainty.calibration import (
    CalibrationStats,
    atom_calibration_stats,
    calibration_stats,
    force_component_errors,
    max_force_error,
)
from mfal.uncertainty.scores import raw_scores

CALIBRATION_FILE = "calibration.json"
SCALE_FILE = "scale.json"
#: quantity -> the score whose spread it calibrates (``forces_atoms``: the FidelityScores field of per-atom,
#: per-component raw std, not a score)
QUANTITY_SCORE: dict[str, str] = {
    "forces": "force_std_max",
    "forces_atoms": "forces_std_xyz",
    "energy": "energy_std",
    "moments": "magmom_std_max",
}
#: quantities whose pairs are force components, three per atom (judged by atom_calibration_stats)
COMPONENT_QUANTITIES = ("forces_atoms",)


def quantities(fids: Fidelities, fidelity: str) -> tuple[str, ...]:
    """The calibrated quantities of ``fidelity`` (moments only at magnetic fidelities)."""
    base = ("forces", "forces_atoms", "energy")
    return (*base, "moments") if fids.is_magnetic(fidelity) else base


def _component_pairs(fs: Any, i: int, frame: FrameDoc) -> tuple[list[float], list[float]]:
    """(raw per-component std, signed error F_pred − F_label) of candidate ``i``, flattened atom by atom (x, y,
    z), eV/Å; empty without labels or without the per-component std (scores saved before it was kept)."""
    std = fs.forces_std_of(i)  # FidelityScores checks its shape against the forces
    if frame.forces is None or std is None:
        return [], []
    err = force_component_errors(fs.forces_of(i), np.asarray(frame.forces))
    return std.ravel().tolist(), err.ravel().tolist()


def _error(quantity: str, fs: Any, i: int, frame: FrameDoc) -> float | None:
    """True error of candidate ``i``'s ensemble mean vs ``frame``'s label (None when the label is missing)."""
    if quantity == "forces":
        return None if frame.forces is None else max_force_error(fs.forces_of(i), np.asarray(frame.forces))
    if quantity == "energy":
        if frame.energy is None:
            return None
        return abs(float(fs.energy[i]) - frame.energy) / max(frame.nsites, 1)
    if frame.magmoms is None or fs.magmoms is None:
        return None
    pred, true = np.abs(np.asarray(fs.magmoms[i], dtype=float)), np.abs(np.asarray(frame.magmoms, dtype=float))
    return float(np.max(np.abs(pred - true))) if pred.shape == true.shape and pred.size else None


def spread_vs_error(
    scores: RoundScores, frames: list[FrameDoc], fidelity: str, quantity: str
) -> tuple[list[float], list[float]]:
    """(raw spread, true error) of the ok ``frames`` at ``fidelity`` that ``scores`` scored (joined by
    structure id); units of ``quantity`` (eV/Å, eV/atom, μB). For ``forces_atoms`` one pair per force
    component (3 per atom, atom by atom), the error signed."""
    std: list[float] = []
    err: list[float] = []
    if not scores.has_model or fidelity not in scores.fidelities:
        return std, err
    fs = scores.fidelities[fidelity]
    name = QUANTITY_SCORE[quantity]
    components = quantity in COMPONENT_QUANTITIES
    if not components and name not in fs.scores:
        return std, err
    raw = None if components else raw_scores(fs.scores, name)
    index = scores.index()
    for fr in frames:
        i = index.get(fr.structure_id) if fr.fidelity == fidelity and fr.status == "ok" else None
        if i is None:
            continue
        if components:
            s, e3 = _component_pairs(fs, i, fr)
            std += s
            err += e3
            continue
        e = _error(quantity, fs, i, fr)
        if e is not None:
            std.append(float(raw[i]))
            err.append(e)
    return std, err


def score_frames(ensemble: Any, frames: list[FrameDoc], fids: Fidelities, **scorer: Any) -> RoundScores:
    """Raw scores of the structures of ``frames`` (ids = structure ids) by ``ensemble`` at every fidelity
    (``scorer``: score_candidates options, e.g. force_probes and seed, as the score step uses)."""
    from mfal.uncertainty import score_candidates

    by_id: dict[str, FrameDoc] = {}
    for fr in frames:
        by_id.setdefault(fr.structure_id, fr)
    if not by_id:
        return RoundScores(model=None)
    ids = list(by_id)
    pred = score_candidates(ensemble, [by_id[i].get_structure() for i in ids], fids.names, **scorer)
    return RoundScores(model=["validation"], ids=ids, fidelities=pred)


def round_calibration(
    fids: Fidelities,
    applied: dict[str, dict[str, float]],
    sources: dict[str, tuple[RoundScores, list[FrameDoc]]],
) -> tuple[dict[str, dict[str, CalibrationStats]], dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    """Per fidelity and quantity: stats of the spread as used (``applied`` scale), the next scale (fitted,
    or ``applied`` with fewer than 2 pairs) and the pair count per source (``sources``: name -> (scores,
    frames), e.g. ``labeled`` = the round's scores with its new labels, ``validation`` = the validation frames
    with their scores by the next round's ensemble)."""
    stats: dict[str, dict[str, CalibrationStats]] = {}
    scale: dict[str, dict[str, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    for f in fids.names:
        stats[f], scale[f], counts[f] = {}, {}, {}
        for q in quantities(fids, f):
            std: list[float] = []
            err: list[float] = []
            for name, (sc, frames) in sources.items():
                s, e = spread_vs_error(sc, frames, f, q)
                std += s
                err += e
                counts[f][f"{q}_{name}"] = len(s)
            a = applied.get(f, {}).get(q, 1.0)
            if q in COMPONENT_QUANTITIES:
                st = atom_calibration_stats(np.reshape(std, (-1, 3)), np.reshape(err, (-1, 3)), scale_applied=a)
            else:
                st = calibration_stats(std, err, scale_applied=a)
            stats[f][q] = st
            scale[f][q] = st.scale if st.scale is not None else a
    return stats, scale, counts


def seed_force_scale(
    stats: dict[str, dict[str, CalibrationStats]],
    scale: dict[str, dict[str, float]],
    fitted: dict[str, dict[str, bool]],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, bool]]]:
    """Start a fidelity's ``forces`` scale from its ``forces_atoms`` fit while the max-atom statistic has never
    been fitted (fewer than 2 pairs so far, e.g. round 0 with one HF validation frame): for any anisotropic
    Gaussian the per-component scale also holds for the per-atom norms (``fit_scale``), and one frame gives
    3 × n_atoms component pairs. Without it the first model's scores would act on the raw spread."""
    scale = {f: dict(qs) for f, qs in scale.items()}
    fitted = {f: dict(qs) for f, qs in fitted.items()}
    for f, qs in stats.items():
        atoms = qs.get("forces_atoms")
        if "forces" in qs and not fitted[f]["forces"] and atoms is not None and atoms.scale is not None:
            scale[f]["forces"] = scale[f]["forces_atoms"]
            fitted[f]["forces"] = True
    return scale, fitted


def save_calibration(
    round_path: Path,
    stats: dict[str, dict[str, CalibrationStats]],
    scale: dict[str, dict[str, float]],
    fitted: dict[str, dict[str, bool]],
    counts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """Write ``calibration.json`` of a round; returns its content."""
    data = {
        "calibration": {f: {q: s.model_dump(mode="json") for q, s in qs.items()} for f, qs in stats.items()},
        "uncertainty_scale": scale,
        "fitted": fitted,
        "n_pairs": counts,
    }
    atomic_write_json(round_path / CALIBRATION_FILE, data)
    return data


def latest_scale(
    rounds_dir: Path, r: int, fids: Fidelities
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, bool]], int | None]:
    """The scale to apply in round ``r`` per fidelity and quantity: the latest ``calibration.json`` before
    ``r`` (and whether each was ever fitted, and from which round); scale 1, unfitted, None without one."""
    for prev in range(r - 1, -1, -1):
        data = read_json(rounds_dir / f"{prev:03d}" / CALIBRATION_FILE)
        if isinstance(data, dict) and isinstance(data.get("uncertainty_scale"), dict):
            sc = data["uncertainty_scale"]
            fit = data.get("fitted") or {}
            scale = {f: {q: float(sc.get(f, {}).get(q, 1.0)) for q in quantities(fids, f)} for f in fids.names}
            fitted = {f: {q: bool(fit.get(f, {}).get(q, False)) for q in quantities(fids, f)} for f in fids.names}
            return scale, fitted, prev
    ones = {f: dict.fromkeys(quantities(fids, f), 1.0) for f in fids.names}
    return ones, {f: dict.fromkeys(quantities(fids, f), False) for f in fids.names}, None


def save_applied(
    round_path: Path, scale: dict[str, dict[str, float]], fitted: dict[str, dict[str, bool]], source: int | None
) -> None:
    """Write ``scale.json``: the scale the round's scores carry, whether it was fitted, and its round."""
    atomic_write_json(round_path / SCALE_FILE, {"scale": scale, "fitted": fitted, "source_round": source})


def load_applied(round_path: Path, fids: Fidelities) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, bool]]]:
    """The scale (and fitted flags) of a round's scores; scale 1, unfitted when the round has no ``scale.json``
    (round 0, or a campaign directory from before calibration)."""
    data = read_json(round_path / SCALE_FILE)
    sc = data.get("scale", {}) if isinstance(data, dict) else {}
    fit = data.get("fitted", {}) if isinstance(data, dict) else {}
    scale = {f: {q: float(sc.get(f, {}).get(q, 1.0)) for q in quantities(fids, f)} for f in fids.names}
    fitted = {f: {q: bool(fit.get(f, {}).get(q, False)) for q in quantities(fids, f)} for f in fids.names}
    return scale, fitted
