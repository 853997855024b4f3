"""The rules of a campaign round as small pure functions (no I/O): budget left, failed-label guard, promotion
gate, stop decision, spent costs and the RoundDoc of a round.

Costs are core-seconds (budgets in the config are core-hours), force errors and uncertainties eV/Å; uncertainties
are the calibrated spreads of the round's scores (raw ensemble spread × the fidelity's fitted scale).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mfal.campaign.artifacts import Candidates, RoundScores, Selection
from mfal.fidelity import Fidelities
from mfal.store.docs import FidelityStats, FrameDoc, RoundDoc

HOUR = 3600.0
#: slack when comparing spent to a budget (core-seconds)
EPS = 1e-6


def budget_left(
    per_round_h: Mapping[str, float], total_h: Mapping[str, float], spent_s: Mapping[str, float]
) -> dict[str, float]:
    """Label budget of this round per fidelity (core-seconds): the per-round budget, capped by what is left
    of the campaign's total; never negative."""
    return {
        f: max(0.0, min(per_round_h[f] * HOUR, total_h[f] * HOUR - spent_s.get(f, 0.0))) for f in per_round_h
    }


def spent_after(spent_s: Mapping[str, float], frames: Iterable[FrameDoc], fidelities: Sequence[str]) -> dict[str, float]:
    """Core-seconds spent per fidelity after adding the cost of ``frames`` (failed labels cost too)."""
    frames = list(frames)
    return {f: spent_s.get(f, 0.0) + sum(x.cost for x in frames if x.fidelity == f) for f in fidelities}


def failed_ratio(frames: Sequence[FrameDoc]) -> float:
    """Fraction of ``frames`` whose status is not ok (0 when there are none)."""
    return sum(f.status != "ok" for f in frames) / len(frames) if frames else 0.0


def failed_guard(ratio: float, limit: float, r: int) -> str | None:
    """The reason to stop before training when more than ``limit`` of round ``r``'s labels failed, else None."""
    if ratio > limit:
        return f"failed-label fraction {ratio:.2f} > ratio_failed {limit:.2f} in round {r}"
    return None


def promote(old_mae: float | None, new_mae: float | None, margin: float) -> bool:
    """Promotion gate: the new ensemble replaces the old unless its target validation force MAE (eV/Å) is
    worse by more than ``margin``; promoted when either MAE is unknown (first model, no validation frames)."""
    return old_mae is None or new_mae is None or new_mae <= old_mae + margin


def mean_uncertainty(scores: RoundScores, fidelity: str, name: str = "force_std_max") -> float | None:
    """Mean score ``name`` of the candidates at ``fidelity`` (calibrated eV/Å for force_std_max: the score step
    multiplied the raw spread by the fidelity's scale); None without a model or candidates."""
    s = scores.array(fidelity, name)
    s = s[np.isfinite(s)]
    return float(s.mean()) if s.size else None


def mean_raw_uncertainty(scores: RoundScores, fidelity: str, name: str = "force_std_max") -> float | None:
    """Mean uncalibrated score ``name`` (``<name>_raw`` when the scores carry it, eV/Å) at ``fidelity``."""
    if scores.has_model and f"{name}_raw" in scores.fidelities[fidelity].scores:
        return mean_uncertainty(scores, fidelity, f"{name}_raw")
    return mean_uncertainty(scores, fidelity, name)


def stop_reason(
    *,
    r: int,
    uncertainty: float | None,
    target: float | None,
    spent_s: Mapping[str, float],
    total_h: Mapping[str, float],
    max_rounds: int,
    fidelities: Fidelities,
) -> str | None:
    """Why the campaign stops after round ``r`` (None: go on). In order: the target fidelity's mean calibrated
    uncertainty (force_std_max × scale, eV/Å) below ``target``; a fidelity's total budget spent (target first,
    then the cheaper ones); ``max_rounds``."""
    if uncertainty is not None and target is not None and uncertainty < target:
        return f"{fidelities.high.upper()} uncertainty {uncertainty:.4f} eV/Å below target {target} eV/Å"
    for f in reversed(fidelities.names):
        if spent_s.get(f, 0.0) >= total_h[f] * HOUR - EPS:
            return f"{f.upper()} budget spent ({spent_s[f] / HOUR:.3f} of {total_h[f]} core-hours)"
    if r + 1 >= max_rounds:
        return f"max_rounds={max_rounds} reached"
    return None


def fidelity_stats(
    fidelity: str, selection: Selection | None, frames: Sequence[FrameDoc], scores: RoundScores | None
) -> FidelityStats:
    """Counts, cost (core-seconds) and candidate uncertainty (calibrated force_std_max, eV/Å) of one fidelity
    in one round."""
    fr = [x for x in frames if x.fidelity == fidelity]
    stats = FidelityStats(
        n_selected=len(selection.of(fidelity)) if selection else 0,
        n_labeled=sum(x.status == "ok" for x in fr),
        n_failed=sum(x.status != "ok" for x in fr),
        cost=float(sum(x.cost for x in fr)),
    )
    if scores is not None and scores.has_model:
        s = scores.array(fidelity, "force_std_max")
        if s.size:
            stats.uncertainty_mean = float(s.mean())
            stats.uncertainty_max = float(s.max())
    return stats


def round_doc(
    campaign: str,
    r: int,
    *,
    state: str,
    fidelities: Fidelities,
    candidates: Candidates | None,
    scores: RoundScores | None,
    selection: Selection | None,
    frames: Sequence[FrameDoc],
    wall_time: Mapping[str, float],
    **extra: Any,
) -> RoundDoc:
    """The RoundDoc of round ``r`` from its artifacts and its frames in the store."""
    report = selection.report if selection else {}
    return RoundDoc(
        campaign=campaign,
        round=r,
        state=state,
        n_candidates=len(candidates) if candidates else 0,
        n_out_of_window=int(report.get("n_out_of_window", 0)),
        candidate_ids=candidates.ids if candidates else [],
        selected={f: selection.of(f) if selection else [] for f in fidelities.names},
        selection_reason=dict(report),
        fidelities={f: fidelity_stats(f, selection, frames, scores) for f in fidelities.names},
        wall_time=dict(wall_time),
        **extra,
    )
