"""Numbers of the science benchmark from its rows: learning curves (mean ± std over seeds), MF/SF and MF/TL
ratios, the AL summary, and the JSON file. Pure functions of dicts (no models), shared by the run and the merge
of side-by-side runs (:mod:`mfal.bench.science_targets`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfal.bench.science_config import ScienceConfig
from mfal.fileio import atomic_write_json

METRICS = ("e_mae_mev_atom", "f_mae_mev_ang", "s_mae_gpa", "m_mae_mub")


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """start -> method -> str(n_hf) -> {metric_mean, metric_std, n_seeds}."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["start"], r["method"], r["n_hf"]), []).append(r)
    out: dict[str, Any] = {}
    for (start, method, n), rs in sorted(groups.items()):
        entry: dict[str, float] = {"n_seeds": len(rs)}
        for k in METRICS:
            vals = np.array([r[k] for r in rs], dtype=float)
            entry[f"{k}_mean"] = float(np.mean(vals))
            entry[f"{k}_std"] = float(np.std(vals))
        out.setdefault(start, {}).setdefault(method, {})[str(n)] = entry
    return out


def random_curves(agg: dict, start: str, n_max: int) -> dict[str, dict]:
    """random+MF (MF-F) and random+SF learning-curve points up to the largest AL size ``n_max``."""
    pts = agg.get(start, {})
    return {
        f"random_{name}_curve": {n: v for n, v in pts.get(method, {}).items() if int(n) <= n_max}
        for name, method in (("mf", "MF-F"), ("sf", "SF"))
    }


def curve_ratios(agg: dict, starts: Sequence[str]) -> dict[str, Any]:
    """MF-F / SF force MAE of the first (primary) start, and MF-F / SF, MF-F / TL per start."""
    return {
        "mf_over_sf_force_mae": _ratio(agg, starts[0], "MF-F", "SF"),
        "mf_over_sf_force_mae_by_start": {s: _ratio(agg, s, "MF-F", "SF") for s in starts},
        "mf_over_tl_force_mae_by_start": {s: _ratio(agg, s, "MF-F", "TL") for s in starts},
        "variant_over_sf_force_mae_by_start": {s: variant_ratios(agg, s) for s in starts},
        "variant_over_tl_force_mae_by_start": {s: variant_ratios(agg, s, base="TL") for s in starts},
    }


def partner_of(method: str, methods: Sequence[str], base: str = "SF") -> str | None:
    """The ``base`` method (SF or TL) an MF method (``MF-F``, ``MF-F:o4s80``, ``MF-C`` ...) is compared with.

    ``<base>:<variant>`` when the run has it, else plain ``<base>``, else the run's only ``<base>`` variant;
    None otherwise.
    """
    variant = method.split(":", 1)[1] if ":" in method else None
    bases = [m for m in methods if m == base or m.startswith(f"{base}:")]
    for cand in ([f"{base}:{variant}"] if variant else []) + [base]:
        if cand in bases:
            return cand
    return bases[0] if len(bases) == 1 else None


def variant_ratios(agg: dict, start: str, base: str = "SF") -> dict[str, dict[str, Any]]:
    """Every MF method's force MAE over its ``base`` partner (:func:`partner_of`), keyed by HF size; plain MF-F
    only when the run has no plain ``base`` (MF-F / SF and MF-F / TL are ``mf_over_sf`` / ``mf_over_tl``)."""
    methods = sorted(agg.get(start, {}))
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        if not m.startswith("MF-") or (m == "MF-F" and base in methods):
            continue
        partner = partner_of(m, methods, base)
        if partner is not None and (r := _ratio(agg, start, m, partner)):
            out[m] = {"over": partner, "by_n": r}
    return out


def _ratio(agg: dict, start: str, num: str, den: str, key: str = "f_mae_mev_ang_mean") -> dict[str, float]:
    a, b = agg.get(start, {}).get(num, {}), agg.get(start, {}).get(den, {})
    return {n: a[n][key] / b[n][key] for n in a if n in b and b[n][key] > 0}


def match_point(sizes: Sequence[float], maes: Sequence[float], target: float) -> float | None:
    """Smallest HF count where the (linearly interpolated) curve reaches ``target``; None if never."""
    for i, (n, m) in enumerate(zip(sizes, maes, strict=True)):
        if m <= target:
            if i == 0:
                return float(n)
            n0, m0 = sizes[i - 1], maes[i - 1]
            return float(n0 + (m0 - target) / (m0 - m) * (n - n0))
    return None


def write_result_json(result: dict[str, Any], out_dir: Path) -> Path:
    """``out_dir/science.json``, written whole or not at all (strict JSON: a NaN is null)."""
    return atomic_write_json(Path(out_dir) / "science.json", plain(result))


def plain(o: Any) -> Any:
    """``o`` with numpy scalars and arrays turned into Python numbers and lists (for strict JSON)."""
    if isinstance(o, dict):
        return {k: plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return plain(o.tolist())
    if isinstance(o, np.floating | np.integer | np.bool_):
        return o.item()
    return o


def al_summary(
    config: ScienceConfig,
    agg: dict,
    al_rows: list[dict[str, Any]],
    *,
    n_pool_hf: int,
    lf_costs: Sequence[float],
    hf_costs: Sequence[float],
) -> dict[str, Any]:
    """The AL part of the result: AL curve, random curves, SF on all HF, labels and cost to match it.

    ``lf_costs``: core-s of the LF frames every MF run trains on; ``hf_costs``: core-s of every pool HF frame.
    """
    out: dict[str, Any] = {
        "al_hf_labels_to_match_sf_all": None,
        "al_cost_fraction_to_match_sf_all": None,
    }
    if config.al is None or not al_rows:
        return out
    start = config.al.start
    sf_all = agg.get(start, {}).get("SF", {}).get(str(n_pool_hf))
    by_n: dict[int, list[dict[str, Any]]] = {}
    for r in al_rows:
        by_n.setdefault(r["n_hf"], []).append(r)
    curve = {
        str(n): {
            "f_mae_mev_ang_mean": float(np.mean([r["f_mae_mev_ang"] for r in rs])),
            "f_mae_mev_ang_std": float(np.std([r["f_mae_mev_ang"] for r in rs])),
            "n_seeds": len(rs),
            **{f"{k}_mean": float(np.mean([r[k] for r in rs])) for k in METRICS if k != "f_mae_mev_ang"},
        }
        for n, rs in sorted(by_n.items())
    }
    rhos = [r["calibration"]["rho_std_mean_vs_err_mean"] for r in al_rows if r.get("calibration")]
    rhos = [x for x in rhos if x is not None]
    lf_cost = float(np.sum(lf_costs))
    hf_unit = float(np.mean(hf_costs))
    sf_all_cost = float(np.sum(hf_costs))
    out.update(
        al_curve=curve,
        al_rows=al_rows,
        **random_curves(agg, start, max(config.al.sizes)),
        sf_all={"n_hf": n_pool_hf, "cost_core_s": sf_all_cost, **(sf_all or {})},
        calibration_rho=float(np.mean(rhos)) if rhos else None,
        calibration_rho_per_round=rhos,
        cost_model={"lf_all_core_s": lf_cost, "hf_per_label_core_s": hf_unit},
    )
    if sf_all is None:
        return out
    target = sf_all["f_mae_mev_ang_mean"]
    ns = [int(n) for n in curve]
    n_match = match_point(ns, [curve[str(n)]["f_mae_mev_ang_mean"] for n in ns], target)
    out["al_hf_labels_to_match_sf_all"] = n_match
    out["al_hf_label_fraction_to_match_sf_all"] = n_match / n_pool_hf if n_match is not None else None
    if n_match is not None:
        out["al_cost_fraction_to_match_sf_all"] = (lf_cost + n_match * hf_unit) / sf_all_cost
        out["al_hf_cost_fraction_to_match_sf_all"] = n_match * hf_unit / sf_all_cost
    rnd = out["random_mf_curve"]
    rns = sorted(int(n) for n in rnd)
    n_rnd = match_point(rns, [rnd[str(n)]["f_mae_mev_ang_mean"] for n in rns], target) if rns else None
    out["random_mf_hf_labels_to_match_sf_all"] = n_rnd
    if n_rnd is not None:
        out["random_mf_cost_fraction_to_match_sf_all"] = (lf_cost + n_rnd * hf_unit) / sf_all_cost
    if not math.isfinite(target):
        out["al_hf_labels_to_match_sf_all"] = None
    return out
