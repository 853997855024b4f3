"""Score step: ensemble means and calibrated uncertainty scores of the candidates per fidelity (none before a
model).

The raw ensemble spreads are multiplied by the latest scale the evaluate step recorded for their fidelity and
quantity (:mod:`mfal.campaign.recalibrate`); the raw values stay in ``scores.json`` as ``<name>_raw``, the scale
in ``scale.json``. Trust windows (select) and ``stop.hf_uncertainty_target`` therefore act on calibrated eV/Å.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mfal.campaign import recalibrate
from mfal.campaign.artifacts import RoundScores
from mfal.campaign.context import Campaign, progress_bar
from mfal.campaign.faults import fault_point
from mfal.runopts import RunOptions
from mfal.uncertainty import score_candidates
from mfal.uncertainty.scores import calibrate_scores


def scorer_options(c: Campaign, ensemble: Any, r: int) -> dict[str, Any]:
    """How round ``r`` scores with ``ensemble``: ``ensemble.force_spread`` and ``force_probes`` of the config
    (shared-trunk ensembles only; else exact member forces) and the probes' seed (campaign seed, round)."""
    return {**c.config.ensemble.scorer_for(ensemble), "seed": c.config.seed * 1000 + r}


def score_round(root: str | Path, r: int, options: RunOptions | None = None) -> RoundScores:
    """Scores of round ``r``'s candidates by the promoted ensemble (``scores.json``), spreads calibrated by the
    latest recorded per-fidelity scale; ``model`` None before the first model."""
    c = Campaign(root, options)
    rd = c.round(r)
    done = rd.load_scores()
    if done is not None:
        return done
    with rd.timed("score"):
        scale, fitted, source = recalibrate.latest_scale(rd.path.parent, r, c.fids)
        if not c.state.checkpoints:
            out = RoundScores(model=None)
        else:
            cands = rd.candidates()
            ensemble = c.ensemble(c.state.checkpoints)
            names = c.fids.names
            with progress_bar(c.options.progress, len(names), f"round {r}: score") as bar:
                pred = score_candidates(
                    ensemble,
                    cands.structures(),
                    names,
                    progress=bar.update,
                    **scorer_options(c, ensemble, r),
                )
            pred = {
                f: fs.model_copy(update={"scores": calibrate_scores(fs.scores, scale[f])}) for f, fs in pred.items()
            }
            out = RoundScores(model=[ck.sha256 for ck in c.state.checkpoints], ids=cands.ids, fidelities=pred)
        recalibrate.save_applied(rd.path, scale, fitted, source)  # before scores.json: a saved score has its scale
        rd.save_scores(out)
    fault_point("after_score")
    return out
