"""Select step: candidates to label per fidelity within the round's and the campaign's budget left
(``strategy: uncertainty`` — trust windows, most uncertain + diverse — or ``random``, the baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mfal.campaign import policy
from mfal.campaign.artifacts import Selection
from mfal.campaign.context import REF_ATOMS, Campaign
from mfal.campaign.faults import fault_point
from mfal.runopts import RunOptions


def cost_models(c: Campaign) -> dict[str, Any]:
    """Per fidelity: the labeler's prior cost, updated from the campaign's recorded label costs."""
    from mfal.acquire import CostModel

    out = {}
    for f in c.fids.names:
        prior = CostModel.from_prior(c.cost_prior(f), REF_ATOMS)
        frames = c.store.query_frames(fidelity=f, campaign=c.name)
        out[f] = prior.updated((fr.cost, fr.nsites) for fr in frames)
    return out


def random_seed(campaign_seed: int, r: int) -> int:
    """Seed of round ``r``'s random picks (strategy random): campaign seed and round."""
    return campaign_seed * 1000 + r


def select_round(root: str | Path, r: int, options: RunOptions | None = None) -> Selection:
    """Pick candidates per fidelity (``selection.json``) and record the round as running in the store."""
    from mfal.acquire import select
    from mfal.acquire.diversity import descriptors

    with Campaign(root, options) as c:
        rd = c.round(r)
        done = rd.load_selection()
        if done is not None:
            return done
        with rd.timed("select"):
            cfg, names = c.config, c.fids.names
            cands = rd.candidates()
            structures = cands.structures()
            ids = cands.ids
            scores = rd.scores()
            costs = cost_models(c)
            labeled = {f: c.store.structure_ids(fidelity=f, campaign=c.name) for f in names}
            budget = policy.budget_left(cfg.budget.per_round, cfg.budget.total, c.state.spent)
            exclude = {f: [i for i, cid in enumerate(ids) if cid in labeled[f]] for f in names}
            picks, report = select(
                [len(s) for s in structures],
                scores.arrays(),
                descriptors(structures),
                cfg.trust,
                budget,
                costs,
                exclude=exclude,
                initial=cfg.initial.per_fidelity(c.fids),
                fidelities=names,
                strategy=cfg.strategy,
                seed=random_seed(cfg.seed, r),
            )
            report["cost_rate"] = {f: costs[f].rate for f in names}
            sel = Selection(picks={f: [ids[i] for i in picks[f]] for f in names}, report=report)
            rd.save_selection(sel)
            fault_point("after_select")
            doc = policy.round_doc(
                c.name,
                r,
                state="running",
                fidelities=c.fids,
                candidates=cands,
                scores=scores,
                selection=sel,
                frames=c.round_frames(r),
                wall_time=rd.times(),
            )
            c.store.upsert_round(doc)
    return sel
