"""Summary of ``mfal bench al`` rows: learning curves per strategy (mean ± std over seeds), AL over random at
equal HF budget, the HF labels and cost AL needs to match SF at its full HF budget, calibration from the
RoundDocs, MD stability of the final models, and the figure (MAE vs HF labels and vs HF core-hours)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfal.bench.al_config import STRATEGIES, AlBenchConfig

#: AL force MAE over random's at equal HF core-hours that the issue aims for
TARGET_AL_OVER_RANDOM = 0.75
#: calibration keys per fidelity: the max-atom force pair (RoundDoc calibration "forces") and, suffixed
#: ``_atoms``, the per-atom / per-component force pair (RoundDoc calibration "forces_atoms")
CALIBRATION_KEYS = ("rho", "miscalibration_area", "coverage_1sigma")
ATOM_CALIBRATION_KEYS = tuple(f"{k}_atoms" for k in CALIBRATION_KEYS)


def atoms_calibration(calib: Any) -> dict[str, float | None]:
    """``rho_atoms`` / ``miscalibration_area_atoms`` / ``coverage_1sigma_atoms`` from one fidelity's
    ``RoundDoc.calibration`` entry (its ``forces_atoms`` stats: ρ over atoms, area and 1σ coverage over force
    components); None each when absent (campaigns from before per-atom calibration)."""
    stats = calib.get("forces_atoms") if isinstance(calib, Mapping) else None
    if stats is not None and not isinstance(stats, Mapping):
        stats = stats.model_dump()
    return {f"{k}_atoms": (stats or {}).get(k) for k in CALIBRATION_KEYS}


QUANTITIES = ("f_mae_mev_ang", "e_mae_mev_atom", "s_mae_gpa", "m_mae_mub")


def _stat(values: Sequence[float | None]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size)}


def curve(rows: Sequence[Mapping[str, Any]], subset: str = "md") -> list[dict[str, Any]]:
    """Per round: HF labels, HF / total core-hours and each test MAE as mean ± std over seeds."""
    out = []
    for r in sorted({row["round"] for row in rows}):
        rs = [row for row in rows if row["round"] == r]
        point: dict[str, Any] = {
            "round": r,
            "n_hf": _stat([row["n_hf"] for row in rs]),
            "hf_core_hours": _stat([row["hf_core_hours"] for row in rs]),
            "total_core_hours": _stat([row["total_core_hours"] for row in rs]),
        }
        for q in QUANTITIES:
            point[q] = _stat([(row["test"].get(subset) or row["test"]["all"]).get(q) for row in rs])
        out.append(point)
    return out


def _mean(point: Mapping[str, Any], key: str) -> float | None:
    return point[key]["mean"]


def al_over_random(
    al: Sequence[Mapping[str, Any]], rnd: Sequence[Mapping[str, Any]]
) -> dict[str, float | None]:
    """AL force MAE / random force MAE per round after round 0 (same HF budget), keyed by AL's HF labels."""
    out: dict[str, float | None] = {}
    by_round = {p["round"]: p for p in rnd}
    for p in al:
        q = by_round.get(p["round"])
        if p["round"] == 0 or q is None:
            continue
        a, b = _mean(p, "f_mae_mev_ang"), _mean(q, "f_mae_mev_ang")
        out[str(round(_mean(p, "n_hf") or 0))] = a / b if a is not None and b else None
    return out


def match_sf(al: Sequence[Mapping[str, Any]], sf: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """SF at its full HF budget (its last round) is the reference: the first AL round at least as accurate
    (force MAE on the MD test), its HF labels, their share of SF's, and AL's total label cost over SF's."""
    if not sf or not al:
        return {"sf_all_force_mae": None, "hf_labels": None, "hf_label_fraction": None, "cost_fraction": None}
    ref = sf[-1]
    target = _mean(ref, "f_mae_mev_ang")
    hit = next(
        (p for p in al if target is not None and (_mean(p, "f_mae_mev_ang") or np.inf) <= target), None
    )
    sf_hf, sf_cost = _mean(ref, "n_hf"), _mean(ref, "total_core_hours")
    out: dict[str, Any] = {
        "sf_all_force_mae": target,
        "sf_all_hf_labels": sf_hf,
        "sf_all_core_hours": sf_cost,
    }
    if hit is None:
        out.update(hf_labels=None, hf_label_fraction=None, cost_fraction=None)
    else:
        n = _mean(hit, "n_hf")
        out.update(
            hf_labels=n,
            hf_label_fraction=n / sf_hf if sf_hf else None,
            cost_fraction=_mean(hit, "total_core_hours") / sf_cost if sf_cost else None,
        )
    return out


def calibration_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per fidelity: mean rho / miscalibration_area / coverage_1sigma (max-atom force error vs force_std_max)
    and rho_atoms / miscalibration_area_atoms / coverage_1sigma_atoms (per atom and force component, see
    :func:`atoms_calibration`) over rounds ≥ 1 and seeds (None when no RoundDoc has them), and the values per
    round."""
    fids = sorted({f for row in rows for f in row.get("calibration", {})})
    out: dict[str, dict[str, Any]] = {}
    for f in fids:
        entry: dict[str, Any] = {}
        for key in CALIBRATION_KEYS + ATOM_CALIBRATION_KEYS:
            vals = [
                row["calibration"][f].get(key)
                for row in rows
                if row["round"] >= 1 and f in row["calibration"]
            ]
            entry[key] = _stat(vals)["mean"]
            entry[f"{key}_by_round"] = {
                str(r): _stat([row["calibration"][f].get(key) for row in rows if row["round"] == r])["mean"]
                for r in sorted({row["round"] for row in rows})
            }
        out[f] = entry
    return out


def stability_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Share of the final models' NVT runs that stayed physical (runs pooled over seeds)."""
    runs = [run for row in rows if row.get("md_stability") for run in row["md_stability"]["runs"]]
    return {"stable_share": sum(r["stable"] for r in runs) / len(runs) if runs else None, "n_runs": len(runs)}


def origin_kind(origin: str) -> str:
    """The generator of a candidate (``rattle``, ``md900K``, ``Mn0.25``, ``Li0.5``, …) from its origin tag."""
    return origin.split("<", 1)[0] or "?"


def picks_by_origin(run_dirs: Sequence[str | Path], fidelity: str) -> dict[str, Any]:
    """HF picks and pool of rounds ≥ 1 of the campaigns in ``run_dirs`` (one strategy, all seeds), counted by
    candidate generator (:func:`origin_kind`): ``{"picks": {kind: n}, "pool": {kind: n}}``."""
    from collections import Counter

    from mfal.campaign.state import CampaignDir

    picks: Counter[str] = Counter()
    pool: Counter[str] = Counter()
    for run in run_dirs:
        cd = CampaignDir(Path(run))
        r = 1
        while (cd.round(r).path).is_dir():
            rd = cd.round(r)
            cands, sel = rd.load_candidates(), rd.load_selection()
            if cands is None or sel is None:
                break
            origin = {c.id: origin_kind(c.origin) for c in cands.items}
            pool.update(origin.values())
            picks.update(origin.get(i, "?") for i in sel.picks.get(fidelity, []))
            r += 1
    return {"picks": dict(sorted(picks.items())), "pool": dict(sorted(pool.items()))}


def summarize(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], cfg: AlBenchConfig, n_seeds: int
) -> dict[str, Any]:
    """The JSON of ``mfal bench al`` (``rows``: strategy -> per-round rows of every seed)."""
    curves = {s: curve(rows[s]) for s in STRATEGIES}
    curves_all = {s: curve(rows[s], "all") for s in STRATEGIES}
    ratio = al_over_random(curves["uncertainty"], curves["random"])
    match = match_sf(curves["uncertainty"], curves["sf"])
    last = [v for v in ratio.values() if v is not None]
    final = last[-1] if last else None
    return {
        "seeds": n_seeds,
        "rounds": cfg.rounds,
        "strategies": list(STRATEGIES),
        "test_subset": "md (teacher-driven MD frames); curves_all: md + iid",
        "curves": curves,
        "curves_all": curves_all,
        "al_over_random_force_mae": ratio,
        "al_hf_labels_to_match_sf_all": match["hf_labels"],
        "al_hf_label_fraction_to_match_sf_all": match["hf_label_fraction"],
        "al_cost_fraction_to_match_sf_all": match["cost_fraction"],
        "sf_all": {k: match.get(k) for k in ("sf_all_force_mae", "sf_all_hf_labels", "sf_all_core_hours")},
        "calibration": calibration_summary(rows["uncertainty"]),
        "calibration_by_strategy": {s: calibration_summary(rows[s]) for s in STRATEGIES},
        "md_stability": {s: stability_summary(rows[s]) for s in STRATEGIES},
        "targets": {
            "al_over_random_force_mae": TARGET_AL_OVER_RANDOM,
            "final_al_over_random": final,
            "met": final is not None and final <= TARGET_AL_OVER_RANDOM,
            "margin": None if final is None else final - TARGET_AL_OVER_RANDOM,
        },
        "ran_through_run_round": {s: sorted({row["round"] for row in rows[s]}) for s in STRATEGIES},
        "rows": {s: list(rows[s]) for s in STRATEGIES},
    }


def figure(res: Mapping[str, Any], path: Path) -> str | None:
    """Force / energy MAE on the MD test vs HF labels and vs HF core-hours (error bars: std over seeds)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels = {"uncertainty": "AL+MF (uncertainty)", "random": "random+MF", "sf": "SF (HF only, random)"}
    colors = {"uncertainty": "tab:red", "random": "tab:blue", "sf": "tab:grey"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for s, pts in res["curves"].items():
        for ax, (xkey, qkey) in zip(
            axes,
            (("n_hf", "f_mae_mev_ang"), ("hf_core_hours", "f_mae_mev_ang"), ("n_hf", "e_mae_mev_atom")),
            strict=True,
        ):
            ok = [p for p in pts if p[qkey]["mean"] is not None]
            x = [p[xkey]["mean"] for p in ok]
            y = [p[qkey]["mean"] for p in ok]
            err = [p[qkey]["std"] or 0.0 for p in ok]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=labels[s], color=colors[s])
    n = res.get("seeds", 1)
    axes[0].set(xlabel="HF labels", ylabel="force MAE (meV/Å)")
    axes[1].set(xlabel="HF core-hours", ylabel="force MAE (meV/Å)")
    axes[2].set(xlabel="HF labels", ylabel="energy MAE (meV/atom)")
    axes[0].legend(title=f"{n} seed{'s' if n > 1 else ''}" + (", ± std" if n > 1 else ""), fontsize=8)
    fig.suptitle("HF test (teacher-driven MD) — surrogate teacher labels, through the campaign's run_round")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
