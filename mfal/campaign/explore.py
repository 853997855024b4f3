"""Explore step: round ``r``'s candidates from the start structures (MD driven by the promoted model)."""

from __future__ import annotations

from pathlib import Path

from mfal.campaign.artifacts import Candidates
from mfal.campaign.context import Campaign, progress_bar
from mfal.campaign.faults import fault_point
from mfal.runopts import RunOptions


def explore_round(root: str | Path, r: int, options: RunOptions | None = None) -> Candidates:
    """Generate round ``r``'s candidates (``candidates.json``) unless they exist; MD on the config's device."""
    from mfal.explore import explore, load_start_structures

    c = Campaign(root, options)
    rd = c.round(r)
    done = rd.load_candidates()
    if done is not None:
        return done
    if c.state.state == "new":
        c.state.state = "running"
        c.save()
    rd.stamp("start")
    with rd.timed("explore"):
        cfg = c.config
        bases = load_start_structures(cfg.start_structures, c.dir.root, seed=cfg.seed)
        calc = None
        if cfg.explore.md.temperatures and c.state.checkpoints:
            from mfal.model import MFCHGNetCalculator

            ref = c.state.checkpoints[0]
            calc = MFCHGNetCalculator(
                str(ref.path(c.dir.root)), fidelity=cfg.md_fidelity(), device=cfg.device, sha256=ref.sha256
            )
        with progress_bar(c.options.progress, len(bases), f"round {r}: explore") as bar:
            structures = explore(
                bases, cfg.explore, seed=cfg.seed * 1000 + r, calculator=calc, progress=bar.update
            )
        cands = Candidates.from_structures(structures)
        rd.save_candidates(cands)
    fault_point("after_explore")
    return cands
