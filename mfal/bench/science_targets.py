"""The issue's targets checked against a science result, and merging of runs made side by side.

``target_checks(result)`` turns the JSON of ``mfal.bench.science.run_science`` into one verdict per
target (measured value, threshold, met or not, margin), so a report says by how much a target is missed.
``merge_results([...])`` joins runs on the same pool (e.g. ``--preset full`` and ``--preset scratch``, one
core each) into one result with both starting points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mfal.bench.science_results import aggregate, curve_ratios, random_curves
from mfal.errors import DataError

MF_OVER_SF_MAX = 0.7  # MF-F force MAE ≤ 0.7 × SF at 25, 50 and 100 HF frames
AL_FRACTION_MAX = 0.10  # AL+MF matches SF-on-all with ≤ 10 % of its HF labels and ≤ 1/10 of its label cost
RHO_MIN = 0.6  # calibration: Spearman ρ of ensemble force std vs force error


def _check(name: str, measured: float | None, threshold: float, *, below: bool, why: str = "") -> dict:
    """One verdict; ``margin`` > 0 means missed by that much (same units as ``measured``)."""
    met = margin = None
    if measured is not None:
        excess = measured - threshold if below else threshold - measured
        met, margin = bool(excess <= 0), max(excess, 0.0)
    return {
        "target": name,
        "measured": measured,
        "threshold": threshold,
        "met": met,
        "margin": margin,
        "why": why,
    }


def _f(curves: dict, start: str, method: str, n: int) -> float | None:
    point = curves.get(start, {}).get(method, {}).get(str(n))
    return None if point is None else float(point["f_mae_mev_ang_mean"])


def target_checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the benchmark that ``result`` has numbers for, per starting point."""
    curves = result["learning_curves"]
    checks: list[dict[str, Any]] = []
    for start in curves:
        for n in (25, 50, 100):
            sf, mf = _f(curves, start, "SF", n), _f(curves, start, "MF-F", n)
            if sf and mf is not None:
                checks.append(
                    _check(
                        f"{start}: MF-F / SF force MAE at {n} HF ≤ 0.7", mf / sf, MF_OVER_SF_MAX, below=True
                    )
                )
        tl, mf = _f(curves, start, "TL", 50), _f(curves, start, "MF-F", 50)
        if tl and mf is not None:
            checks.append(
                _check(f"{start}: MF-F beats TL at 50 HF (MF-F / TL < 1)", mf / tl, 1.0, below=True)
            )
        for n in result.get("config", {}).get("ablation_sizes") or []:
            subsets = {m: _f(curves, start, m, n) for m in curves.get(start, {}) if m.startswith("MF-")}
            subsets = {m: v for m, v in subsets.items() if v is not None}
            if len(subsets) > 1 and "MF-F" in subsets:
                best_other = min(v for m, v in subsets.items() if m != "MF-F")
                checks.append(
                    _check(
                        f"{start}: MF-F best of the MF subsets at {n} HF (MF-F / best other ≤ 1)",
                        subsets["MF-F"] / best_other,
                        1.0,
                        below=True,
                    )
                )
            sf, mfc, mff = _f(curves, start, "SF", n), subsets.get("MF-C"), subsets.get("MF-F")
            if sf and mfc is not None and mff is not None and sf > mff:
                # C alone is "poor" when it gets less than half of MF-F's force gain over SF
                checks.append(
                    _check(
                        f"{start}: C alone poor at {n} HF (MF-C gain over SF / MF-F gain < 0.5)",
                        (sf - mfc) / (sf - mff),
                        0.5,
                        below=True,
                    )
                )
    if result.get("al_curve"):
        n_pool = result.get("sf_all", {}).get("n_hf")
        n_al = max(int(n) for n in result["al_curve"])
        reached_too_late = bool(n_pool) and n_al / n_pool >= AL_FRACTION_MAX  # unreached by then: missed
        why = (
            f"not reached by {n_al} HF labels ({n_al / n_pool:.0%} of the pool)" if n_pool else "not reached"
        )
        for name, key in (
            (
                f"AL+MF matches SF on all {n_pool} HF with ≤ 10 % of its HF labels",
                "al_hf_label_fraction_to_match_sf_all",
            ),
            ("… and ≤ 1/10 of its total label cost (LF + HF core-s)", "al_cost_fraction_to_match_sf_all"),
        ):
            value = result.get(key)
            check = _check(name, value, AL_FRACTION_MAX, below=True, why="" if value is not None else why)
            if value is None and reached_too_late:
                check["met"] = False
            checks.append(check)
        rho = result.get("calibration_rho")
        checks.append(_check("calibration ρ ≥ 0.6", rho, RHO_MIN, below=False))
    return checks


def merge_results(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result from runs on the same pool (same HF test frames); at most one may hold the AL part."""
    if not results:
        raise DataError("nothing to merge: no science.json given")
    required = ("config", "pool", "rows", "learning_curves", "warm_start", "timing_s", "hf_sizes")
    for i, r in enumerate(results):
        missing = [k for k in required if k not in r]
        if missing:
            raise DataError(f"science result {i + 1} is not a science.json: no {', '.join(missing)}")
    first = results[0]
    test_ids = first["pool"]["test_frame_ids"]
    for r in results[1:]:
        if r["pool"]["test_frame_ids"] != test_ids:
            raise DataError("cannot merge science runs on different pools (their HF test frames differ)")
    with_al = [r for r in results if r.get("al_curve")]
    if len(with_al) > 1:
        raise DataError("cannot merge two runs that both have an active-learning part")
    rows = [row for r in results for row in r["rows"]]
    seen = {(row["method"], row["start"], row["n_hf"], row["seed"]) for row in rows}
    if len(seen) != len(rows):
        raise DataError("the runs repeat a (method, start, HF size, seed) point; merge distinct runs only")
    agg = aggregate(rows)
    starts = list(dict.fromkeys(s for r in results for s in r["learning_curves"]))
    merged = {**first, **(with_al[0] if with_al else {})}
    merged.update(
        config={
            **first["config"],
            "ablation_sizes": sorted({n for r in results for n in r["config"].get("ablation_sizes") or []}),
        },
        configs=[r["config"] for r in results],
        merged_from=len(results),
        rows=rows,
        learning_curves=agg,
        primary_start=starts[0],
        hf_sizes=sorted({n for r in results for n in r["hf_sizes"]}),
        **curve_ratios(agg, starts),
        warm_start=next(
            (r["warm_start"] for r in results if r["warm_start"].get("zero_shot_hf_test")),
            first["warm_start"],
        ),
        timing_s={
            "total": sum(r["timing_s"]["total"] for r in results),
            "runs": [r["timing_s"] for r in results],
        },
    )
    if with_al:  # the random curves of the AL comparison come from the merged learning curves
        al_start = with_al[0]["config"]["al"]["start"]
        merged.update(random_curves(agg, al_start, max(with_al[0]["config"]["al"]["sizes"])))
    merged["targets"] = target_checks(merged)
    return merged
