"""Cost-aware per-fidelity selection (dpgen2 style ``select(...) -> (selection, report)``).

Trust window per fidelity on one uncertainty score: below ``lo`` the model is trusted (known), at or above ``hi``
the structure is likely unphysical (counted, kept out), in between it is a candidate. LF picks: candidates above
LF ``lo``, most uncertain first, capped per round and by the LF budget. HF picks: the most uncertain, diverse
candidates (farthest-point sampling within a pool of the most uncertain) within the HF budget. Every HF pick is
also labeled at LF (paired frames anchor the fidelity gap). Costs are core-seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mfal.acquire.cost import CostModel
from mfal.acquire.diversity import farthest_point_order
from mfal.uncertainty.scores import SCORE_NAMES


class TrustWindow(BaseModel):
    """Trust window of one fidelity on one score (eV/Å for force scores)."""

    model_config = ConfigDict(extra="forbid")

    lo: float = Field(ge=0, description="below: the model is trusted, nothing to learn")
    hi: float = Field(gt=0, description="at or above: likely unphysical, counted and kept out")
    score: str = Field("force_std_max", description=f"score to threshold, one of {list(SCORE_NAMES)}")
    max_per_round: int = Field(ge=0, description="cap on picks per round (paired LF labels not counted)")

    @model_validator(mode="after")
    def _check(self) -> TrustWindow:
        if self.hi <= self.lo:
            raise ValueError(f"hi={self.hi} must be greater than lo={self.lo}")
        if self.score not in SCORE_NAMES:
            raise ValueError(f"score={self.score!r} not in {list(SCORE_NAMES)}")
        return self


class SelectionPolicy(BaseModel):
    """How candidates are picked per fidelity."""

    model_config = ConfigDict(extra="forbid")

    lf: TrustWindow
    hf: TrustWindow
    diversity_pool: float = Field(
        3.0,
        ge=1.0,
        description="HF picks come by farthest-point sampling from the pool_factor × n most uncertain",
    )
    pair_hf_with_lf: bool = Field(True, description="label every HF pick at LF too")


@dataclass
class Selection:
    """Indices (into the candidate list) picked per fidelity, most important first."""

    lf: list[int] = field(default_factory=list)
    hf: list[int] = field(default_factory=list)

    def by_fidelity(self) -> dict[str, list[int]]:
        return {"lf": list(self.lf), "hf": list(self.hf)}


def split_by_trust(scores: np.ndarray, window: TrustWindow) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (known, candidate, out-of-window) of ``scores``: ``< lo``, ``[lo, hi)``, ``>= hi`` (NaN: out)."""
    s = np.asarray(scores, dtype=float)
    bad = ~np.isfinite(s)
    known = np.flatnonzero(~bad & (s < window.lo))
    cand = np.flatnonzero(~bad & (s >= window.lo) & (s < window.hi))
    out = np.flatnonzero(bad | (s >= window.hi))
    return known, cand, out


def _take_within_budget(
    order: Sequence[int], costs: np.ndarray, budget: float, cap: int, taken: Sequence[int] = ()
) -> tuple[list[int], float]:
    """Walk ``order`` and keep those that still fit ``budget`` (core-seconds), at most ``cap`` of them."""
    picks: list[int] = []
    spent = 0.0
    skip = set(taken)
    for i in order:
        if len(picks) >= cap:
            break
        if i in skip:
            continue
        if spent + costs[i] <= budget + 1e-9:
            picks.append(int(i))
            spent += float(costs[i])
    return picks, spent


def _initial_order(
    n: int, skip: set[int], max_per_round: int, initial: int | None, descriptors: np.ndarray
) -> tuple[list[int], int]:
    """Round 0 (no model): all candidates not in ``skip`` in farthest-point order, and the pick cap."""
    pool = [i for i in range(n) if i not in skip]
    cap = min(max_per_round, max_per_round if initial is None else initial)
    order = [pool[j] for j in farthest_point_order(descriptors[pool])] if pool else []
    return order, cap


def select(
    nsites: Sequence[int],
    scores: Mapping[str, Mapping[str, np.ndarray]] | None,
    descriptors: np.ndarray,
    policy: SelectionPolicy,
    budget: Mapping[str, float],
    cost_models: Mapping[str, CostModel],
    *,
    exclude: Mapping[str, Sequence[int]] | None = None,
    initial: Mapping[str, int] | None = None,
) -> tuple[Selection, dict[str, Any]]:
    """Pick candidates to label per fidelity.

    Args:
        nsites: atoms per candidate.
        scores: fidelity -> score name -> ``[n]`` array, or None when there is no model yet (round 0: picks
            are diverse only, counts from ``initial``).
        descriptors: ``[n, d]`` structure descriptors for diversity.
        policy: trust windows and diversity.
        budget: fidelity -> budget left this round (core-seconds).
        cost_models: fidelity -> cost model.
        exclude: fidelity -> candidate indices already labeled at that fidelity.
        initial: fidelity -> number of picks without a model (round 0).

    Returns:
        The selection and a JSON-able report (counts per trust region, thresholds, predicted costs, reasons).
    """
    n = len(nsites)
    exclude = {k: set(v) for k, v in (exclude or {}).items()}
    costs = {f: np.array([cost_models[f].predict(int(a)) for a in nsites]) for f in ("lf", "hf")}
    report: dict[str, Any] = {"n_candidates": n, "budget": dict(budget), "fidelities": {}}

    # ---- HF: most uncertain + diverse, within the HF budget
    hf_win = policy.hf
    if scores is None:
        order, cap = _initial_order(
            n, exclude.get("hf", set()), hf_win.max_per_round, (initial or {}).get("hf"), descriptors
        )
        hf_rep: dict[str, Any] = {"mode": "initial (no model): farthest-point over all candidates"}
        n_out_hf = 0
    else:
        s_hf = np.asarray(scores["hf"][hf_win.score], dtype=float)
        known, cand, out = split_by_trust(s_hf, hf_win)
        cand = [int(i) for i in cand if i not in exclude.get("hf", set())]
        ranked = sorted(cand, key=lambda i: (-s_hf[i], i))
        cap = hf_win.max_per_round
        affordable, _ = _take_within_budget(ranked, costs["hf"], budget.get("hf", 0.0), cap)
        pool = ranked[: max(1, math.ceil(policy.diversity_pool * len(affordable)))] if affordable else []
        fps = farthest_point_order(descriptors[pool]) if pool else []
        order = [pool[j] for j in fps] + [i for i in ranked if i not in pool]
        hf_rep = {
            "mode": "most uncertain + farthest-point within the pool",
            "n_known": len(known),
            "n_window": len(cand),
            "n_out_of_window": len(out),
            "pool_size": len(pool),
        }
        n_out_hf = len(out)
    hf_picks, hf_cost = _take_within_budget(order, costs["hf"], budget.get("hf", 0.0), cap)
    hf_rep.update(
        lo=hf_win.lo,
        hi=hf_win.hi,
        score=hf_win.score,
        cap=cap,
        picked=hf_picks,
        predicted_cost=hf_cost,
        budget=budget.get("hf", 0.0),
    )
    if scores is not None:
        hf_rep["picked_scores"] = [float(scores["hf"][hf_win.score][i]) for i in hf_picks]
    report["fidelities"]["hf"] = hf_rep

    # ---- LF: paired HF picks first, then the most uncertain above LF lo
    lf_win = policy.lf
    lf_excl = exclude.get("lf", set())
    paired = [i for i in hf_picks if i not in lf_excl] if policy.pair_hf_with_lf else []
    lf_budget = budget.get("lf", 0.0)
    paired_cost = float(sum(costs["lf"][i] for i in paired))
    if scores is None:
        order, cap = _initial_order(
            n, lf_excl | set(paired), lf_win.max_per_round, (initial or {}).get("lf"), descriptors
        )
        lf_rep: dict[str, Any] = {"mode": "initial (no model): farthest-point over all candidates"}
        n_out_lf = 0
    else:
        s_lf = np.asarray(scores["lf"][lf_win.score], dtype=float)
        known, cand, out = split_by_trust(s_lf, lf_win)
        order = sorted(
            (int(i) for i in cand if i not in lf_excl and i not in paired), key=lambda i: (-s_lf[i], i)
        )
        cap = lf_win.max_per_round
        lf_rep = {
            "mode": "most uncertain above lo",
            "n_known": len(known),
            "n_window": len(cand),
            "n_out_of_window": len(out),
        }
        n_out_lf = len(out)
    extra, extra_cost = _take_within_budget(order, costs["lf"], max(0.0, lf_budget - paired_cost), cap)
    lf_picks = paired + extra
    lf_rep.update(
        lo=lf_win.lo,
        hi=lf_win.hi,
        score=lf_win.score,
        cap=cap,
        picked=lf_picks,
        paired_with_hf=paired,
        predicted_cost=paired_cost + extra_cost,
        budget=lf_budget,
    )
    report["fidelities"]["lf"] = lf_rep
    report["n_out_of_window"] = max(n_out_hf, n_out_lf)
    return Selection(lf=lf_picks, hf=hf_picks), report
