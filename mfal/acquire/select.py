"""Cost-aware per-fidelity selection (dpgen2 style ``select(...) -> (selection, report)``).

Trust window per fidelity on one uncertainty score: below ``lo`` the model is trusted (known), at or above ``hi``
the structure is likely unphysical (counted, kept out), in between it is a candidate. Target-fidelity (HF) picks:
the most uncertain, diverse candidates (farthest-point sampling within a pool of the most uncertain) within its
budget. Lower-fidelity (LF) picks: every target pick first (paired frames anchor the fidelity gap), then
candidates above ``lo``, most uncertain first, capped per round and by that fidelity's budget. Costs are
core-seconds.

``strategy="random"`` (a baseline): the same candidates, budgets, caps and LF pairing, but once a model exists
the picks are drawn uniformly from every candidate not yet labeled at that fidelity (no trust window, no
uncertainty, no diversity; ``numpy.random.default_rng(seed)``). Round 0 (no model) is the same for both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mfal.acquire.cost import CostModel
from mfal.acquire.diversity import farthest_point_order
from mfal.fidelity import DEFAULT
from mfal.uncertainty.scores import SCORE_NAMES

Strategy = Literal["uncertainty", "random"]
STRATEGIES: tuple[str, ...] = ("uncertainty", "random")


class TrustWindow(BaseModel):
    """Trust window of one fidelity on one score (calibrated eV/Å for force scores: raw spread × the fidelity's
    fitted scale; eV/atom for energy_std, μB for magmom_std_max)."""

    model_config = ConfigDict(extra="forbid")

    lo: float = Field(ge=0, description="below: the model is trusted, nothing to learn (calibrated units)")
    hi: float = Field(gt=0, description="at or above: likely unphysical, counted and kept out (calibrated units)")
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
    """How candidates are picked per fidelity: a trust window per fidelity name (YAML: ``<name>: {lo, hi, …}``
    beside ``diversity_pool`` and ``pair_hf_with_lf``)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, TrustWindow] = Field(init=False)  # fidelity name -> trust window

    diversity_pool: float = Field(
        3.0,
        ge=1.0,
        description="target picks come by farthest-point sampling from the pool_factor × n most uncertain",
    )
    pair_hf_with_lf: bool = Field(True, description="label every target-fidelity pick at the lower ones too")

    @property
    def windows(self) -> dict[str, TrustWindow]:
        """Fidelity name -> trust window."""
        return dict(self.__pydantic_extra__ or {})

    def window(self, fidelity: str) -> TrustWindow:
        try:
            return self.windows[fidelity]
        except KeyError:
            raise KeyError(
                f"no trust window for fidelity {fidelity!r} (have {sorted(self.windows)})"
            ) from None


@dataclass
class Selection:
    """Indices (into the candidate list) picked per fidelity, most important first."""

    picks: dict[str, list[int]] = field(default_factory=dict)

    def __getitem__(self, fidelity: str) -> list[int]:
        return self.picks.get(fidelity, [])

    def by_fidelity(self) -> dict[str, list[int]]:
        return {f: list(v) for f, v in self.picks.items()}


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


def _random_order(n: int, skip: set[int], rng: np.random.Generator) -> list[int]:
    """All candidates not in ``skip`` in a uniform random order."""
    pool = np.array([i for i in range(n) if i not in skip], dtype=int)
    return [int(i) for i in rng.permutation(pool)] if pool.size else []


def _initial_order(
    n: int, skip: set[int], max_per_round: int, initial: int | None, descriptors: np.ndarray
) -> tuple[list[int], int]:
    """Round 0 (no model): all candidates not in ``skip`` in farthest-point order, and the pick cap."""
    pool = [i for i in range(n) if i not in skip]
    cap = min(max_per_round, max_per_round if initial is None else initial)
    order = [pool[j] for j in farthest_point_order(descriptors[pool])] if pool else []
    return order, cap


def _target_picks(
    n: int,
    win: TrustWindow,
    s: np.ndarray | None,
    costs: np.ndarray,
    budget: float,
    skip: set[int],
    initial: int | None,
    descriptors: np.ndarray,
    diversity_pool: float,
    rng: np.random.Generator | None = None,
) -> tuple[list[int], float, dict[str, Any], int]:
    """Target fidelity: the most uncertain, diverse candidates within ``budget`` (round 0: diverse only);
    with ``rng`` (strategy random) a uniform random order of the unlabeled candidates instead."""
    if s is None:
        order, cap = _initial_order(n, skip, win.max_per_round, initial, descriptors)
        rep: dict[str, Any] = {"mode": "initial (no model): farthest-point over all candidates"}
        n_out = 0
    elif rng is not None:
        order, cap = _random_order(n, skip, rng), win.max_per_round
        rep = {"mode": "random (uniform over unlabeled candidates)", "n_pool": len(order)}
        n_out = len(split_by_trust(s, win)[2])
    else:
        known, cand, out = split_by_trust(s, win)
        cand = [int(i) for i in cand if i not in skip]
        ranked = sorted(cand, key=lambda i: (-s[i], i))
        cap = win.max_per_round
        affordable, _ = _take_within_budget(ranked, costs, budget, cap)
        pool = ranked[: max(1, math.ceil(diversity_pool * len(affordable)))] if affordable else []
        fps = farthest_point_order(descriptors[pool]) if pool else []
        order = [pool[j] for j in fps] + [i for i in ranked if i not in pool]
        rep = {
            "mode": "most uncertain + farthest-point within the pool",
            "n_known": len(known),
            "n_window": len(cand),
            "n_out_of_window": len(out),
            "pool_size": len(pool),
        }
        n_out = len(out)
    picks, cost = _take_within_budget(order, costs, budget, cap)
    rep.update(
        lo=win.lo, hi=win.hi, score=win.score, cap=cap, picked=picks, predicted_cost=cost, budget=budget
    )
    if s is not None:
        rep["picked_scores"] = [float(s[i]) for i in picks]
    return picks, cost, rep, n_out


def _lower_picks(
    n: int,
    win: TrustWindow,
    s: np.ndarray | None,
    costs: np.ndarray,
    budget: float,
    skip: set[int],
    paired: list[int],
    initial: int | None,
    descriptors: np.ndarray,
    rng: np.random.Generator | None = None,
) -> tuple[list[int], dict[str, Any], int]:
    """A lower fidelity: the paired target picks first, then the most uncertain above ``lo`` within ``budget``
    (with ``rng``, strategy random: the others in a uniform random order)."""
    paired_cost = float(sum(costs[i] for i in paired))
    if s is None:
        order, cap = _initial_order(n, skip | set(paired), win.max_per_round, initial, descriptors)
        rep: dict[str, Any] = {"mode": "initial (no model): farthest-point over all candidates"}
        n_out = 0
    elif rng is not None:
        order, cap = _random_order(n, skip | set(paired), rng), win.max_per_round
        rep = {"mode": "random (uniform over unlabeled candidates)", "n_pool": len(order)}
        n_out = len(split_by_trust(s, win)[2])
    else:
        known, cand, out = split_by_trust(s, win)
        order = sorted((int(i) for i in cand if i not in skip and i not in paired), key=lambda i: (-s[i], i))
        cap = win.max_per_round
        rep = {
            "mode": "most uncertain above lo",
            "n_known": len(known),
            "n_window": len(cand),
            "n_out_of_window": len(out),
        }
        n_out = len(out)
    extra, extra_cost = _take_within_budget(order, costs, max(0.0, budget - paired_cost), cap)
    picks = paired + extra
    rep.update(
        lo=win.lo,
        hi=win.hi,
        score=win.score,
        cap=cap,
        picked=picks,
        paired_with_hf=paired,
        predicted_cost=paired_cost + extra_cost,
        budget=budget,
    )
    return picks, rep, n_out


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
    fidelities: Sequence[str] | None = None,
    strategy: Strategy = "uncertainty",
    seed: int = 0,
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
        fidelities: names cheapest first, the last is the target (default: mfal.fidelity.DEFAULT).
        strategy: ``uncertainty`` (trust window, most uncertain + diverse) or ``random`` (uniform picks among
            the same candidates, same budgets and caps; the baseline).
        seed: seeds the random picks (strategy random only).

    Returns:
        The selection and a JSON-able report (counts per trust region, thresholds, predicted costs, reasons).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} not in {list(STRATEGIES)}")
    fids = tuple(fidelities) if fidelities is not None else DEFAULT.names
    target = fids[-1]
    rng = np.random.default_rng(seed) if strategy == "random" else None
    n = len(nsites)
    exclude = {k: set(v) for k, v in (exclude or {}).items()}
    initial = dict(initial or {})
    costs = {f: np.array([cost_models[f].predict(int(a)) for a in nsites]) for f in fids}
    report: dict[str, Any] = {
        "n_candidates": n,
        "budget": dict(budget),
        "fidelities": {},
        "strategy": strategy,
    }

    def score(f: str) -> np.ndarray | None:
        return None if scores is None else np.asarray(scores[f][policy.window(f).score], dtype=float)

    picks: dict[str, list[int]] = {}
    picks[target], _, report["fidelities"][target], n_out = _target_picks(
        n,
        policy.window(target),
        score(target),
        costs[target],
        budget.get(target, 0.0),
        exclude.get(target, set()),
        initial.get(target),
        descriptors,
        policy.diversity_pool,
        rng,
    )
    outs = [n_out]
    for f in reversed(fids[:-1]):
        skip = exclude.get(f, set())
        paired = [i for i in picks[target] if i not in skip] if policy.pair_hf_with_lf else []
        picks[f], report["fidelities"][f], n_out = _lower_picks(
            n,
            policy.window(f),
            score(f),
            costs[f],
            budget.get(f, 0.0),
            skip,
            paired,
            initial.get(f),
            descriptors,
            rng,
        )
        outs.append(n_out)
    report["n_out_of_window"] = max(outs)
    return Selection(picks={f: picks[f] for f in fids}), report
