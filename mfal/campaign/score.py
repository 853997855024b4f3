"""Score step: ensemble means and uncertainty scores of the candidates per fidelity (none before a model)."""

from __future__ import annotations

from pathlib import Path

from mfal.campaign.artifacts import RoundScores
from mfal.campaign.context import Campaign, progress_bar
from mfal.campaign.faults import fault_point
from mfal.runopts import RunOptions
from mfal.uncertainty import score_candidates


def score_round(root: str | Path, r: int, options: RunOptions | None = None) -> RoundScores:
    """Scores of round ``r``'s candidates by the promoted ensemble (``scores.json``); ``model`` None before the
    first model."""
    c = Campaign(root, options)
    rd = c.round(r)
    done = rd.load_scores()
    if done is not None:
        return done
    with rd.timed("score"):
        if not c.state.checkpoints:
            out = RoundScores(model=None)
        else:
            cands = rd.candidates()
            ensemble = c.ensemble(c.state.checkpoints)
            names = c.fids.names
            with progress_bar(c.options.progress, len(names), f"round {r}: score") as bar:
                pred = score_candidates(ensemble, cands.structures(), names, progress=bar.update)
            out = RoundScores(model=[ck.sha256 for ck in c.state.checkpoints], ids=cands.ids, fidelities=pred)
        rd.save_scores(out)
    fault_point("after_score")
    return out
