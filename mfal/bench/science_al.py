"""Active learning in the science benchmark: a thin driver over the product's functions.

A round = train the ensemble (:func:`mfal.train.ensemble.train_ensemble`), measure it on the HF test set, score
the unlabeled pool (:func:`mfal.uncertainty.score_candidates`) and pick HF frames (:func:`mfal.acquire.select`,
most uncertain + farthest-point); the pool is pre-labeled, so "labeling" reveals the picks' labels. The round is
one function (:data:`RoundFn`): :func:`run_active_learning` only carries the labeled set from round to round.

This is pool-based AL (a fixed pre-labeled pool, no exploration). The campaign itself — exploration, the select
step's ``strategy``, labelers, the promotion gate — is measured round by round through
``mfal.campaign.round.run_round`` by ``mfal bench al`` (:mod:`mfal.bench.al`); the campaign round does not fit
:data:`RoundFn` (it explores its own candidates instead of drawing from this pool).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mfal.bench.science_runs import Context, hf_test_metrics, train_models

#: the member method of AL+MF
AL_METHOD = "MF-F"


@dataclass
class RoundOutcome:
    """What one AL round returns: its row (HF test metrics, calibration, …) and the frames to label next."""

    row: dict[str, Any]
    picked: list[int] = field(default_factory=list)  # dataset positions of newly labeled pool HF frames


#: ``round_fn(ctx, labeled, n_new, seed) -> RoundOutcome``: train on the ``labeled`` HF frames (dataset
#: positions), report, and pick ``n_new`` more (0 in the last round)
RoundFn = Callable[[Context, list[int], int, int], RoundOutcome]


def _scores(ctx: Context, models: Sequence[Any], idx: Sequence[int]) -> Any:
    """The campaign's scorer on dataset positions ``idx`` at the target fidelity (cached graphs)."""
    from mfal.uncertainty import score_candidates

    return score_candidates(models, ctx.ds.structures, [ctx.high], graphs=ctx.ds.graphs, subset=idx)[ctx.high]


def calibration(ctx: Context, models: Sequence[Any]) -> dict[str, Any]:
    """Spearman ρ of ensemble force std vs the ensemble mean's true force error, per HF test structure
    (mean std vs MAE, max std vs max per-atom error; eV/Å)."""
    from mfal.uncertainty.calibration import calibration_stats, max_force_error, mean_force_error

    idx = ctx.index["test"][ctx.high]
    sc = _scores(ctx, models, idx)
    true = [ctx.ds.forces[i].numpy() for i in idx]
    err_mean = [mean_force_error(sc.forces_of(j), t) for j, t in enumerate(true)]
    err_max = [max_force_error(sc.forces_of(j), t) for j, t in enumerate(true)]
    by_mean = calibration_stats(sc.array("force_std_mean"), err_mean)
    return {
        "rho_std_mean_vs_err_mean": by_mean.rho,
        "rho_std_max_vs_err_max": calibration_stats(sc.array("force_std_max"), err_max).rho,
        "n": by_mean.n,
    }


def pick_uncertain(
    ctx: Context, models: Sequence[Any], labeled: Sequence[int], n_new: int
) -> tuple[list[int], dict[str, Any]]:
    """``n_new`` unlabeled pool HF frames by the campaign's selection (equal HF labels, not core-s: the cap
    binds); returns their dataset positions and the mean force_std_max of the picks and of the pool."""
    from mfal.acquire import CostModel, SelectionPolicy, TrustWindow, select

    fids, hi = ctx.fids, ctx.high
    pool = ctx.pool_target()
    done = set(labeled)
    rest = [p for p, i in enumerate(pool) if i not in done]
    sc = _scores(ctx, models, [pool[p] for p in rest])
    scores = {f: {key: np.zeros(len(pool)) for key in sc.scores} for f in fids.names}
    for key in sc.scores:
        scores[hi][key][rest] = sc.array(key)
    nsites = [ctx.ds.n_atoms[i] for i in pool]
    windows = {f: TrustWindow(lo=0.0, hi=1e9, max_per_round=n_new if f == hi else 0) for f in fids.names}
    policy = SelectionPolicy(
        **windows,
        diversity_pool=ctx.config.al.diversity_pool,
        pair_hf_with_lf=False,  # every pool structure already has its LF label
    )
    sel, _ = select(
        nsites,
        scores,
        ctx.pool_descriptors(),
        policy,
        budget={f: math.inf if f == hi else 0.0 for f in fids.names},
        cost_models={
            f: CostModel.from_prior(float(np.mean(ctx.cost[f])), int(np.mean(nsites))) for f in fids.names
        },
        exclude={hi: [p for p, i in enumerate(pool) if i in done]},
    )
    chosen = sel.by_fidelity()[hi]
    info = {
        "picked_force_std_max_mean": float(np.mean(scores[hi]["force_std_max"][chosen])) if chosen else None,
        "pool_force_std_max_mean": float(np.mean(sc.array("force_std_max"))),
    }
    return [pool[p] for p in chosen], info


def pool_round(ctx: Context, labeled: list[int], n_new: int, seed: int) -> RoundOutcome:
    """One pool-based round: K members (1 in the last round), HF test metrics of member 0, calibration,
    then ``n_new`` uncertain picks."""
    al = ctx.config.al
    k = al.k if n_new else 1
    t0 = time.perf_counter()
    models, _ = train_models(ctx, AL_METHOD, al.start, seed, labeled, k=k)
    row: dict[str, Any] = {"n_hf": len(labeled), "seed": seed, **hf_test_metrics(ctx, models[0])}
    if k > 1:
        row["calibration"] = calibration(ctx, models)
    picked: list[int] = []
    if n_new:
        picked, info = pick_uncertain(ctx, models, labeled, n_new)
        row.update(info)
    row["time_s"] = time.perf_counter() - t0
    return RoundOutcome(row=row, picked=picked)


def run_active_learning(
    ctx: Context,
    seed: int,
    callback: Callable[[str], None] | None = None,
    *,
    round_fn: RoundFn = pool_round,
) -> list[dict[str, Any]]:
    """AL+MF from ``al.sizes[0]`` random HF frames; each round ``round_fn`` adds frames up to the next size."""
    al = ctx.config.al
    if al is None:
        return []
    pool = ctx.pool_target()
    sizes = [n for n in al.sizes if n <= len(pool)]
    if not sizes:
        return []
    labeled = [pool[i] for i in ctx.hf_order(seed)[: sizes[0]]]
    rows = []
    for r in range(len(sizes)):
        n_new = sizes[r + 1] - len(labeled) if r + 1 < len(sizes) else 0
        out = round_fn(ctx, labeled, n_new, seed)
        labeled = labeled + out.picked
        row = {"round": r, **out.row}
        rows.append(row)
        if callback is not None:
            callback(f"AL seed {seed} round {r}: n_hf={row['n_hf']} F={row['f_mae_mev_ang']:.1f} meV/Å")
    return rows
