"""Campaign status (rounds table / JSON) and report (PNG plots + markdown summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mfal.campaign.config import load_config
from mfal.campaign.state import CampaignDir
from mfal.fileio import atomic_write_text


def calibration_row(doc: Any, high: str, fitted: bool) -> dict[str, Any]:
    """Status keys of a round's calibrated uncertainty at the target fidelity ``high`` (forces, eV/Å).

    ``hf_uncertainty_mean``: mean calibrated force_std_max of the candidates (what the stop rule compares);
    ``hf_uncertainty_mean_raw``: the same, uncalibrated; ``hf_uncertainty_scale_applied``: the scale the round's
    scores carried (``hf_uncertainty_calibrated`` False = scale 1, nothing fitted yet, e.g. round 0);
    ``hf_uncertainty_scale``: the scale fitted this round for the next; ``hf_force_rho`` /
    ``hf_miscalibration_area`` / ``hf_coverage_1sigma`` / ``hf_coverage_2sigma``: CalibrationStats of the
    round's new labels plus validation frames (max-atom force error vs force_std_max); ``hf_force_atoms_rho`` /
    ``hf_force_atoms_area`` / ``hf_force_atoms_coverage_1sigma`` / ``hf_force_atoms_coverage_2sigma`` /
    ``hf_force_atoms_scale`` / ``hf_force_atoms_n``: the same frames judged per force component (quantity
    ``forces_atoms``: ρ over atoms, area and coverage over components, n = components; None in campaigns from
    before it); ``calibration``: every fidelity and quantity (RoundDoc).
    """
    cal = (doc.calibration if doc else {}) or {}
    forces = cal.get(high, {}).get("forces", {})
    atoms = cal.get(high, {}).get("forces_atoms", {})
    stop = (doc.selection_reason.get("stop") if doc else None) or {}
    fs = doc.fidelities.get(high) if doc else None
    return {
        "hf_uncertainty_mean": fs.uncertainty_mean if fs else None,
        "hf_uncertainty_mean_raw": stop.get("hf_uncertainty_raw"),
        "hf_uncertainty_calibrated": fitted,
        "hf_uncertainty_scale_applied": forces.get("scale_applied"),
        "hf_uncertainty_scale": (doc.uncertainty_scale.get(high) if doc else None),
        "hf_force_rho": forces.get("rho"),
        "hf_miscalibration_area": forces.get("miscalibration_area"),
        "hf_coverage_1sigma": forces.get("coverage_1sigma"),
        "hf_coverage_2sigma": forces.get("coverage_2sigma"),
        "hf_force_atoms_rho": atoms.get("rho"),
        "hf_force_atoms_area": atoms.get("miscalibration_area"),
        "hf_force_atoms_coverage_1sigma": atoms.get("coverage_1sigma"),
        "hf_force_atoms_coverage_2sigma": atoms.get("coverage_2sigma"),
        "hf_force_atoms_scale": atoms.get("scale"),
        "hf_force_atoms_n": atoms.get("n"),
        "calibration": cal,
    }


def campaign_status(root: str | Path) -> dict[str, Any]:
    """``{"state", "campaign", "surrogate", "budget", "rounds": [...]}``; costs core-seconds, MAE eV/Å.

    The per-round keys name the cheapest fidelity ``lf`` and the target ``hf`` (``n_lf_labeled``, ``cost_hf``, …);
    the calibrated-uncertainty keys are those of :func:`calibration_row`.
    """
    from mfal.campaign.recalibrate import load_applied
    from mfal.store import open_store

    cd = CampaignDir(root)
    state = cd.load_state()
    cfg = load_config(cd.config_path)
    low, high = cfg.fidelities.low, cfg.fidelities.high
    rows = []
    with open_store(cd.root, create=False) as store:
        rounds = {r.round: r for r in store.rounds(cfg.name)}
        counts = store.counts_by(("round", "fidelity", "status"), campaign=cfg.name)
        sources = {k[0] for k in store.counts_by(("source",), campaign=cfg.name)}
    for r in sorted(set(rounds) | {k[0] for k in counts}):
        doc = rounds.get(r)

        def n(fid: str, ok: bool, _r: int = r) -> int:
            return sum(v for (rr, f, s), v in counts.items() if rr == _r and f == fid and (s == "ok") == ok)

        fids = doc.fidelities if doc else {}
        rows.append(
            {
                "round": r,
                "n_candidates": doc.n_candidates if doc else 0,
                "n_lf_labeled": n(low, True),
                "n_hf_labeled": n(high, True),
                "n_failed": sum(n(f, False) for f in cfg.fidelities.names),
                "hf_force_mae": fids[high].force_mae if high in fids else None,
                "calibration_rho": fids[high].calibration_rho if high in fids else None,
                "cost_lf": fids[low].cost if low in fids else 0.0,
                "cost_hf": fids[high].cost if high in fids else 0.0,
                "state": doc.state if doc else "running",
                "promoted": doc.promoted if doc else None,
                "stop_reason": doc.stop_reason if doc else None,
                **calibration_row(doc, high, load_applied(cd.round_dir(r), cfg.fidelities)[1][high]["forces"]),
            }
        )
    return {
        "campaign": cfg.name,
        "state": state.state,
        "stop_reason": state.stop_reason,
        "surrogate": "teacher" in sources,
        "sources": sorted(s for s in sources if s),
        "budget_per_round": {k: cfg.budget.seconds("per_round")[f] for k, f in (("lf", low), ("hf", high))},
        "budget_total": {k: cfg.budget.seconds("total")[f] for k, f in (("lf", low), ("hf", high))},
        "spent": {k: state.spent.get(f, 0.0) for k, f in (("lf", low), ("hf", high))},  # keyed like the budgets
        "rounds": rows,
    }


def _scale(r: dict[str, Any]) -> str:
    """``applied → fitted`` force-spread scale of a round; ``1 (uncal.)`` when the scores carried no fit."""
    applied, fitted = r.get("hf_uncertainty_scale_applied"), r.get("hf_uncertainty_scale")
    if applied is None and fitted is None:
        return "–"
    now = "1 (uncal.)" if not r.get("hf_uncertainty_calibrated") else f"{applied:.3g}"
    return now + (f" → {fitted:.3g}" if fitted is not None else "")


def status_table(st: dict[str, Any]) -> Any:
    """A rich Table of :func:`campaign_status`."""
    from rich.table import Table

    surrogate = " — SURROGATE (teacher) labels" if "teacher" in st["sources"] else ""
    bpr = st["budget_per_round"]
    table = Table(
        title=f"campaign {st['campaign']}: {st['state']}{surrogate}",
        caption=(
            f"cost in core-seconds (budget per round LF {bpr['lf']:.0f} / HF {bpr['hf']:.0f}; spent "
            f"LF {st['spent'].get('lf', 0):.0f} of {st['budget_total']['lf']:.0f}, HF {st['spent'].get('hf', 0):.0f} "
            f"of {st['budget_total']['hf']:.0f}); σ scale: applied → fitted for the next round, σ̄: mean calibrated "
            "HF force std of the candidates, area/1σ cov: miscalibration area and 1σ coverage (0.68 ideal) of the "
            "max-atom force error (area floor ≈ 0.15 even when calibrated); ρ/atom, area/atom: per atom and force "
            "component (0 = calibrated)"
            + (f"; stop: {st['stop_reason']}" if st["stop_reason"] else "")
        ),
    )
    for col in (
        "round",
        "cand.",
        "LF ok",
        "HF ok",
        "failed",
        "HF F-MAE eV/Å",
        "ρ HF",
        "σ scale HF",
        "HF σ̄ eV/Å",
        "area HF",
        "1σ cov HF",
        "ρ/atom HF",
        "area/atom HF",
        "cost LF",
        "cost HF",
        "state",
    ):
        table.add_column(col, justify="right" if col != "state" else "left")

    def fmt(x: Any, f: str = "{:.3f}") -> str:
        return "–" if x is None else f.format(x)

    for r in st["rounds"]:
        state = r["state"] + ("" if r["promoted"] in (None, True) else " (kept old)")
        table.add_row(
            str(r["round"]),
            str(r["n_candidates"]),
            str(r["n_lf_labeled"]),
            str(r["n_hf_labeled"]),
            str(r["n_failed"]),
            fmt(r["hf_force_mae"]),
            fmt(r["calibration_rho"], "{:.2f}"),
            _scale(r),
            fmt(r.get("hf_uncertainty_mean"), "{:.4f}"),
            fmt(r.get("hf_miscalibration_area"), "{:.2f}"),
            fmt(r.get("hf_coverage_1sigma"), "{:.2f}"),
            fmt(r.get("hf_force_atoms_rho"), "{:.2f}"),
            fmt(r.get("hf_force_atoms_area"), "{:.2f}"),
            f"{r['cost_lf']:.0f}/{bpr['lf']:.0f}",
            f"{r['cost_hf']:.0f}/{bpr['hf']:.0f}",
            state,
        )
    return table


def failed_frames(frames: list[Any]) -> list[dict[str, Any]]:
    """Failed and quarantined frames, oldest round first: round, fidelity, status, reason, frame_id."""
    rows = [
        {"round": f.round, "fidelity": f.fidelity, "status": f.status, "reason": f.status_reason or "", "frame_id": f.frame_id}
        for f in frames
        if f.status != "ok"
    ]
    return sorted(rows, key=lambda x: (x["round"] if x["round"] is not None else -1, x["fidelity"]))


def _parity(cd: CampaignDir, cfg: Any, frames: list[Any], state: Any, path: Path, tag: str) -> Path | None:
    """Parity of the promoted ensemble per fidelity on the validation frames (forces, eV/Å)."""
    import numpy as np

    from mfal.campaign.context import load_ensemble
    from mfal.campaign.figures import _plt, _save
    from mfal.campaign.train import split_frames
    from mfal.uncertainty import score_candidates

    if not state.checkpoints:
        return None
    plt = _plt()
    _, val = split_frames(cfg, [f for f in frames if f.status == "ok"])
    ensemble = load_ensemble(cd.root, state.checkpoints)
    fids = (cfg.fidelities.low, cfg.fidelities.high)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    for ax, fid in zip(axes, fids, strict=True):
        fv = [f for f in val if f.fidelity == fid and f.forces is not None]
        if fv:
            structures = [f.get_structure() for f in fv]
            pred = score_candidates(ensemble, structures, (fid,), **cfg.ensemble.scorer_for(ensemble))[fid]
            t = np.concatenate([np.asarray(f.forces).ravel() for f in fv])
            p = np.concatenate([np.asarray(x).ravel() for x in pred.forces])
            lim = float(max(np.abs(t).max(), np.abs(p).max(), 1e-3)) * 1.05
            ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
            ax.scatter(t, p, s=4, alpha=0.6)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_title(f"{fid.upper()} forces, {len(fv)} val frames, MAE {np.abs(t - p).mean():.3f} eV/Å", fontsize=9)
        else:
            ax.set_title(f"{fid.upper()}: no validation frames", fontsize=9)
        ax.set_xlabel(f"{fid.upper()} label force (eV/Å){tag}")
        ax.set_ylabel("ensemble mean force (eV/Å)")
    return _save(fig, path)


def _selection_rounds(cd: CampaignDir, rounds: list[int], high: str, low: str) -> list[dict[str, Any]]:
    out = []
    for r in rounds:
        rd = cd.round(r)
        sc, sel, cands = rd.scores(), rd.load_selection(), rd.load_candidates()
        ids = cands.ids if cands else []
        pos = {x: i for i, x in enumerate(ids)}
        picks = {f: [pos[x] for x in (sel.of(f) if sel else []) if x in pos] for f in (low, high)}
        out.append({"round": r, "scores": sc.array(high, "force_std_max") if sc.has_model else None, "picks": picks})
    return out


def make_report(root: str | Path, *, parity: bool = True, html: bool = False) -> Path:
    """Write ``DIR/report/`` (PNGs + ``report.md``, and with ``html`` the self-contained ``report.html``
    dashboard) and return the markdown path (the html path with ``html``).

    Plots: HF validation force MAE vs cumulative HF labels and HF core-hours; calibration per round (predicted std
    vs observed error, ideal line, ρ); parity of the promoted ensemble per fidelity on the validation frames;
    candidates ranked by HF uncertainty per round with the picks marked; budget spent vs planned.
    """
    from mfal.campaign import figures
    from mfal.campaign.evaluate import uncertainty_vs_error
    from mfal.store import open_store

    cd = CampaignDir(root)
    st = campaign_status(root)
    cfg = load_config(cd.config_path)
    low, high = cfg.fidelities.low, cfg.fidelities.high
    state = cd.load_state()
    out = cd.root / "report"
    out.mkdir(exist_ok=True)
    with open_store(cd.root, create=False) as store:
        frames = store.query_frames(campaign=cfg.name)
    surrogate = "teacher" in st["sources"]
    tag = " (surrogate teacher labels)" if surrogate else ""
    rounds = [r["round"] for r in st["rounds"]]
    images: list[tuple[str, Path]] = []

    images.append(("HF validation force MAE vs HF labels and core-hours",
                   figures.hf_error_curve(st, out / "hf_mae_vs_labels.png", high=high, tag=tag)))  # fmt: skip
    points = {
        fid: {r: uncertainty_vs_error(cd.round(r).scores(), [f for f in frames if f.round == r], fid) for r in rounds}
        for fid in (low, high)
    }
    images.append(("Calibration: predicted uncertainty vs observed error of the frames labeled each round",
                   figures.calibration_plot(points, out / "uncertainty_vs_error.png", tag=tag)))  # fmt: skip
    if parity and (png := _parity(cd, cfg, frames, state, out / "parity.png", tag)) is not None:
        images.append(("Parity of the promoted ensemble per fidelity (validation frames)", png))
    images.append(("What was selected and why", figures.selection_plot(
        _selection_rounds(cd, rounds, high, low), out / "selection.png", high=high, low=low,
        lo=cfg.trust.window(high).lo, tag=tag)))  # fmt: skip
    images.append(("Budget spent vs planned",
                   figures.budget_plot(st, out / "budget.png", roles={"lf": low, "hf": high}, tag=tag)))  # fmt: skip
    failed = failed_frames(frames)

    lines = [f"# Campaign {cfg.name}: {st['state']}", ""]
    if surrogate:
        lines += [
            "**Labels are SURROGATE labels** (pretrained CHGNet teachers standing in for DFT); "
            "the numbers show the loop working, not DFT accuracy.",
            "",
        ]
    if st["stop_reason"]:
        lines += [f"Stop reason: {st['stop_reason']}", ""]
    lines += [
        "| round | candidates | LF ok | HF ok | failed | HF val force MAE (eV/Å) | calibration ρ (HF) | HF σ scale (applied → fitted) | HF mean calibrated σ (eV/Å) | HF miscal. area | HF 1σ / 2σ coverage | HF ρ / area per atom | cost LF (core-s) | cost HF (core-s) | state |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in st["rounds"]:
        f = lambda x, p=3: "–" if x is None else f"{x:.{p}f}"  # noqa: E731
        lines.append(
            f"| {r['round']} | {r['n_candidates']} | {r['n_lf_labeled']} | {r['n_hf_labeled']} | {r['n_failed']} | "
            f"{f(r['hf_force_mae'])} | {f(r['calibration_rho'], 2)} | {_scale(r)} | {f(r['hf_uncertainty_mean'], 4)} | "
            f"{f(r['hf_miscalibration_area'], 2)} | {f(r['hf_coverage_1sigma'], 2)} / {f(r['hf_coverage_2sigma'], 2)} | "
            f"{f(r.get('hf_force_atoms_rho'), 2)} / {f(r.get('hf_force_atoms_area'), 2)} | {r['cost_lf']:.0f} | {r['cost_hf']:.0f} | {r['state']} |"
        )
    lines.append("")
    for title, png in images:
        lines += [f"## {title}", "", f"![{title}]({png.name})", ""]
    if failed:
        lines += ["## Failed and quarantined labels", "", "| round | fidelity | status | reason |", "|---|---|---|---|"]
        lines += [f"| {x['round']} | {x['fidelity']} | {x['status']} | {x['reason']} |" for x in failed]
        lines.append("")
    md = atomic_write_text(out / "report.md", "\n".join(lines))
    if html:
        from mfal.campaign.report_html import write_html

        return write_html(out / "report.html", st, [png for _, png in images], failed=failed)
    return md
