"""Evaluate step: promotion gate, per-fidelity calibration of the spread (and the next round's scale), the
round's RoundDoc, state update and the stop decision (on the calibrated target-fidelity spread, eV/Å)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mfal.campaign import policy, recalibrate
from mfal.campaign.artifacts import Evaluation, RoundScores, TrainOutput
from mfal.campaign.context import Campaign, now
from mfal.campaign.faults import fault_point
from mfal.campaign.score import scorer_options
from mfal.campaign.train import split_frames
from mfal.runopts import RunOptions
from mfal.store.docs import FrameDoc
from mfal.uncertainty import calibration_stats, max_force_error


def force_mae(members: list[Any], val: list[FrameDoc], fidelity: str) -> float | None:
    """Mean over members of the validation force MAE at ``fidelity`` (eV/Å); None without such frames."""
    from mfal.train.trainer import evaluate

    fv = [f for f in val if f.fidelity == fidelity and f.forces is not None]
    if not fv or not members:
        return None
    maes = [evaluate(m, fv, fidelity)[fidelity]["f_mae_mev_ang"] / 1000.0 for m in members]
    return float(np.mean(maes))


def uncertainty_vs_error(
    scores: RoundScores, frames: list[FrameDoc], fidelity: str
) -> tuple[list[float], list[float]]:
    """(predicted force_std_max, true max force error eV/Å) of the ok ``frames`` at ``fidelity`` that were
    scored as candidates (joined by structure id)."""
    std: list[float] = []
    err: list[float] = []
    if not scores.has_model:
        return std, err
    index = scores.index()
    fs = scores.fidelities[fidelity]
    s = fs.array("force_std_max")
    for fr in frames:
        if fr.fidelity != fidelity or fr.status != "ok" or fr.forces is None:
            continue
        i = index.get(fr.structure_id)
        if i is None:
            continue
        err.append(max_force_error(fs.forces_of(i), np.asarray(fr.forces)))
        std.append(float(s[i]))
    return std, err


def calibration(scores: RoundScores, frames: list[FrameDoc], fidelities: tuple[str, ...]) -> dict[str, float | None]:
    """Spearman ρ of predicted force_std_max vs the true max force error of the round's new labels."""
    return {f: calibration_stats(*uncertainty_vs_error(scores, frames, f)).rho for f in fidelities}


def _recalibrate(
    c: Campaign, rd: Any, scores: RoundScores, frames: list[FrameDoc], val: list[FrameDoc], refs: list[Any]
) -> dict[str, Any]:
    """Calibration of round ``rd``'s spread per fidelity and quantity on its new labels (pre-label scores) and
    the validation frames (scored by ``refs``, the ensemble the next round uses); writes ``calibration.json``."""
    fids = c.fids
    applied, fitted = recalibrate.load_applied(rd.path, fids)
    sources = {"labeled": (scores, frames)}
    ok_val = [f for f in val if f.status == "ok"]
    if ok_val and refs:
        ens = c.ensemble(refs)
        scored = recalibrate.score_frames(ens, ok_val, fids, **scorer_options(c, ens, rd.r))
        sources["validation"] = (scored, ok_val)
    stats, scale, counts = recalibrate.round_calibration(fids, applied, sources)
    now_fitted = {f: {q: fitted[f][q] or stats[f][q].scale is not None for q in stats[f]} for f in stats}
    scale, now_fitted = recalibrate.seed_force_scale(stats, scale, now_fitted)
    return recalibrate.save_calibration(rd.path, stats, scale, now_fitted, counts)


def evaluate_round(
    root: str | Path, r: int, train_out: TrainOutput, options: RunOptions | None = None
) -> Evaluation:
    """Gate the new ensemble, record round ``r`` (RoundDoc, state) and decide whether the campaign stops."""
    with Campaign(root, options) as c:
        cfg, fids = c.config, c.fids
        if c.state.round > r:  # already evaluated (rerun after a kill between evaluate and the next round)
            done = c.state.state in ("done", "stopped")
            return Evaluation(round=r, stop=done, reason=c.state.stop_reason, skipped=True)
        rd = c.round(r)
        t0 = time.perf_counter()
        frames = c.round_frames(r)
        spent = policy.spent_after(c.state.spent, frames, fids.names)
        artifacts = {"candidates": rd.load_candidates(), "scores": rd.scores(), "selection": rd.load_selection()}

        def doc(state: str, **extra: Any) -> Any:
            return policy.round_doc(
                c.name, r, state=state, fidelities=fids, frames=frames, wall_time=rd.times(), **artifacts, **extra
            )

        if train_out.stopped:
            reason = train_out.stopped
            c.store.upsert_round(doc("stopped", stop_reason=reason, finished_at=now()))
            c.state = c.state.model_copy(update={"state": "stopped", "stop_reason": reason, "spent": spent})
            c.save()
            return Evaluation(round=r, stop=True, reason=reason, promoted=False)
        _, val = split_frames(cfg, c.store.training_frames(campaign=c.name))
        new_mae = force_mae(c.ensemble(train_out.checkpoints).members, val, fids.high)
        old_mae = force_mae(c.ensemble(c.state.checkpoints).members, val, fids.high) if c.state.checkpoints else None
        promoted = policy.promote(old_mae, new_mae, cfg.promotion_margin)
        next_refs = train_out.checkpoints if promoted or not c.state.checkpoints else c.state.checkpoints
        calib = calibration(artifacts["scores"], frames, fids.names)
        cal = _recalibrate(c, rd, artifacts["scores"], frames, val, next_refs)
        rd.record_time("evaluate", time.perf_counter() - t0)
        hf_u = policy.mean_uncertainty(artifacts["scores"], fids.high)
        reason = policy.stop_reason(
            r=r,
            uncertainty=hf_u,
            target=cfg.stop.hf_uncertainty_target,
            spent_s=spent,
            total_h=cfg.budget.total,
            max_rounds=cfg.stop.max_rounds,
            fidelities=fids,
        )
        rdoc = doc(
            "done",
            stop_reason=reason,
            checkpoints=[ref.model_dump() for ref in train_out.checkpoints],
            promoted=promoted,
            finished_at=now(),
            calibration=cal["calibration"],
            uncertainty_scale={f: cal["uncertainty_scale"][f]["forces"] for f in fids.names},
        )
        for f in fids.names:
            rdoc.fidelities[f].calibration_rho = calib[f]
        rdoc.fidelities[fids.high].force_mae = new_mae
        rdoc.selection_reason["gate"] = {
            "old_hf_force_mae": old_mae,
            "new_hf_force_mae": new_mae,
            "margin": cfg.promotion_margin,
            "promoted": promoted,
        }
        rdoc.selection_reason["stop"] = {
            "hf_uncertainty": hf_u,
            "hf_uncertainty_raw": policy.mean_raw_uncertainty(artifacts["scores"], fids.high),
            "target": cfg.stop.hf_uncertainty_target,
            "unit": "eV/Å (calibrated force_std_max)",
        }
        c.store.upsert_round(rdoc)
        rd.stamp("end")
        fault_point("before_state_save")
        c.state = c.state.model_copy(
            update={
                "round": r + 1,
                "checkpoints": train_out.checkpoints if promoted else c.state.checkpoints,
                "hf_force_mae": new_mae if promoted else old_mae,
                "spent": spent,
                "state": "done" if reason else "running",
                "stop_reason": reason,
            }
        )
        c.save()
    return Evaluation(round=r, stop=reason is not None, reason=reason, promoted=promoted, force_mae=new_mae)
