"""Science report: the issue's targets are judged with their margins, and side-by-side runs merge into one.

The inputs are small result dicts in the layout of ``science.json`` (the rows a run writes); the real
end-to-end run that produces such a file is ``test_science.py::test_quick_cli_json``.
"""

from __future__ import annotations

import pytest

from mfal.bench.science_results import aggregate
from mfal.bench.science_targets import merge_results, target_checks
from mfal.errors import DataError


def _row(method: str, start: str, n: int, f: float, seed: int = 0) -> dict:
    return {
        "method": method,
        "start": start,
        "n_hf": n,
        "seed": seed,
        "e_mae_mev_atom": 10.0,
        "f_mae_mev_ang": f,
        "s_mae_gpa": 0.3,
        "m_mae_mub": 0.01,
    }


def _result(rows: list[dict], ablation_sizes=(50,), test_ids=("a", "b"), **extra) -> dict:
    return {
        "config": {"ablation_sizes": list(ablation_sizes)},
        "pool": {"test_frame_ids": list(test_ids)},
        "rows": rows,
        "learning_curves": aggregate(rows),
        "warm_start": {"zero_shot_hf_test": None},
        "timing_s": {"total": 10.0},
        "hf_sizes": sorted({r["n_hf"] for r in rows}),
        **extra,
    }


def _by_name(checks: list[dict]) -> dict[str, dict]:
    return {c["target"]: c for c in checks}


def test_targets_say_by_how_much_they_are_missed():
    rows = [
        _row("SF", "pretrained", 50, 100.0),
        _row("MF-F", "pretrained", 50, 77.0),  # 0.77: missed by 0.07
        _row("TL", "pretrained", 50, 70.0),  # MF-F / TL = 1.1: missed
        _row("MF-C", "pretrained", 50, 80.0),  # gain 20 of MF-F's 23: C alone is not poor
        _row("SF", "pretrained", 100, 90.0),
        _row("MF-F", "pretrained", 100, 54.0),  # 0.6: met
    ]
    checks = _by_name(target_checks(_result(rows)))
    at50 = checks["pretrained: MF-F / SF force MAE at 50 HF ≤ 0.7"]
    assert at50["met"] is False and at50["margin"] == pytest.approx(0.07)
    at100 = checks["pretrained: MF-F / SF force MAE at 100 HF ≤ 0.7"]
    assert at100["met"] is True and at100["margin"] == 0.0
    assert checks["pretrained: MF-F beats TL at 50 HF (MF-F / TL < 1)"]["met"] is False
    best = checks["pretrained: MF-F best of the MF subsets at 50 HF (MF-F / best other ≤ 1)"]
    assert best["met"] is True and best["measured"] == pytest.approx(77.0 / 80.0)
    c_poor = checks["pretrained: C alone poor at 50 HF (MF-C gain over SF / MF-F gain < 0.5)"]
    assert c_poor["met"] is False and c_poor["measured"] == pytest.approx(20.0 / 23.0)


def test_al_targets_unreached_are_not_measured_with_a_reason():
    rows = [_row("SF", "pretrained", 50, 100.0), _row("MF-F", "pretrained", 50, 60.0)]
    res = _result(
        rows,
        al_curve={"25": {}, "40": {}},
        sf_all={"n_hf": 476},
        al_hf_label_fraction_to_match_sf_all=None,
        al_cost_fraction_to_match_sf_all=None,
        calibration_rho=0.72,
    )
    checks = _by_name(target_checks(res))
    frac = checks["AL+MF matches SF on all 476 HF with ≤ 10 % of its HF labels"]
    assert frac["met"] is None and "not reached by 40 HF labels" in frac["why"]  # 40 < 10 % of 476: open
    res["al_curve"]["100"] = {}
    frac = _by_name(target_checks(res))["AL+MF matches SF on all 476 HF with ≤ 10 % of its HF labels"]
    assert frac["met"] is False and "(21% of the pool)" in frac["why"]  # unreached at 21 %: missed
    assert checks["calibration ρ ≥ 0.6"]["met"] is True


def test_side_by_side_runs_merge_into_both_starts():
    warm = _result(
        [_row("SF", "pretrained", 50, 100.0), _row("MF-F", "pretrained", 50, 75.0)],
        al_curve={"25": {"f_mae_mev_ang_mean": 90.0}, "50": {"f_mae_mev_ang_mean": 70.0}},
    )
    warm["warm_start"] = {"zero_shot_hf_test": {"f_mae_mev_ang": 270.0}}
    warm["config"]["al"] = {"start": "pretrained", "sizes": [25, 50]}
    scratch = _result(
        [_row("SF", "scratch", 50, 300.0), _row("MF-F", "scratch", 50, 150.0)], ablation_sizes=()
    )
    merged = merge_results([warm, scratch])
    assert set(merged["learning_curves"]) == {"pretrained", "scratch"}
    assert merged["mf_over_sf_force_mae"] == {"50": pytest.approx(0.75)}  # the first run's start is primary
    assert merged["mf_over_sf_force_mae_by_start"]["scratch"] == {"50": pytest.approx(0.5)}
    assert merged["al_curve"] == warm["al_curve"] and merged["warm_start"] == warm["warm_start"]
    # random+MF / random+SF next to AL: the learning-curve points up to the largest AL size
    assert merged["random_mf_curve"]["50"]["f_mae_mev_ang_mean"] == 75.0
    assert set(merged["random_sf_curve"]) == {"50"}
    assert merged["timing_s"]["total"] == 20.0 and len(merged["rows"]) == 4
    assert {t["target"] for t in merged["targets"]} >= {
        "pretrained: MF-F / SF force MAE at 50 HF ≤ 0.7",
        "scratch: MF-F / SF force MAE at 50 HF ≤ 0.7",
    }


def test_merging_refuses_runs_that_do_not_belong_together():
    a = _result([_row("SF", "pretrained", 50, 100.0)])
    with pytest.raises(DataError, match="different pools"):
        merge_results([a, _result([_row("SF", "scratch", 50, 1.0)], test_ids=("x",))])
    with pytest.raises(DataError, match="repeat"):
        merge_results([a, _result([_row("SF", "pretrained", 50, 99.0)])])
    with_al = _result([_row("SF", "scratch", 50, 1.0)], al_curve={"25": {}})
    with pytest.raises(DataError, match="both have an active-learning part"):
        merge_results([with_al, {**with_al, "rows": [_row("SF", "scratch", 25, 1.0)]}])
    with pytest.raises(DataError, match="not a science.json: no rows"):
        merge_results([{k: v for k, v in a.items() if k != "rows"}])


def test_mf_over_sf_target_is_judged_at_25_hf_too():
    rows = [_row("SF", "pretrained", 25, 100.0), _row("MF-F", "pretrained", 25, 80.0)]
    checks = {c["target"]: c for c in target_checks(_result(rows))}
    at25 = checks["pretrained: MF-F / SF force MAE at 25 HF ≤ 0.7"]
    assert at25["met"] is False and at25["margin"] == pytest.approx(0.1)


def test_recipe_variants_are_compared_with_their_partner_of_in_json_and_report():
    """A run of variants only (``--methods SF:s80,MF-F:s80,MF-F:o4s80``) still reports MF / SF ratios: each MF
    variant over ``SF:<same variant>``, else plain SF, else the run's only SF variant."""
    from mfal.bench.science_report import markdown_tables
    from mfal.bench.science_results import curve_ratios, partner_of

    rows = [
        _row("SF:s80", "pretrained", 12, 200.0),
        _row("MF-F:s80", "pretrained", 12, 220.0),
        _row("MF-F:o4s80", "pretrained", 12, 180.0),
    ]
    agg = aggregate(rows)
    ratios = curve_ratios(agg, ["pretrained"])
    assert ratios["mf_over_sf_force_mae"] == {}  # plain MF-F / SF: not in this run
    by_variant = ratios["variant_over_sf_force_mae_by_start"]["pretrained"]
    assert by_variant["MF-F:s80"] == {"over": "SF:s80", "by_n": {"12": pytest.approx(1.1)}}
    assert by_variant["MF-F:o4s80"] == {"over": "SF:s80", "by_n": {"12": pytest.approx(0.9)}}
    assert partner_of("MF-F:o4", ["SF", "SF:o4", "MF-F:o4"]) == "SF:o4"
    assert partner_of("MF-F:o4", ["SF", "SF:s80"]) == "SF"
    assert partner_of("MF-F:o4", ["SF:a", "SF:b"]) is None  # ambiguous: no ratio rather than a wrong one

    pool = {"n_pool_hf": 20, "n_pool_lf": 20, "n_lf_used": 20, "n_val": 0, "n_test": 5}
    zero_shot = {"e_mae_mev_atom": 764126.8, "f_mae_mev_ang": 408.0}  # CP2K total energies vs CHGNet's zero
    result = {
        **_result(rows, **ratios),
        "labels": "replay pairs.extxyz (cp2k)",
        "pool": pool,
        "warm_start": {"version": "r2scan", "zero_shot_hf_test": zero_shot},
    }
    md = markdown_tables(result)
    assert "its E is not comparable" in md
    assert "No validation frames: each run keeps its lowest-training-loss epoch." in md
    assert "MF-F / SF force MAE {–}" in md
    assert "MF-F:o4s80 / SF:s80 force MAE {12: 0.90}" in md


def test_recipe_variants_are_also_compared_with_their_tl_partner():
    """``--methods SF:s80,MF-F:o4s80,TL:s80`` (the equal-steps TL comparison) reports MF-F:o4s80 / TL:s80 in the
    JSON and the report; a run without TL has no TL ratios."""
    from mfal.bench.science_report import markdown_tables
    from mfal.bench.science_results import curve_ratios, partner_of

    rows = [
        _row("SF:s80", "pretrained", 12, 200.0),
        _row("TL:s80", "pretrained", 12, 250.0),
        _row("MF-F:o4s80", "pretrained", 12, 200.0),
    ]
    ratios = curve_ratios(aggregate(rows), ["pretrained"])
    by_tl = ratios["variant_over_tl_force_mae_by_start"]["pretrained"]
    assert by_tl == {"MF-F:o4s80": {"over": "TL:s80", "by_n": {"12": pytest.approx(0.8)}}}
    assert ratios["variant_over_sf_force_mae_by_start"]["pretrained"]["MF-F:o4s80"]["over"] == "SF:s80"
    assert partner_of("MF-F:o4", ["SF", "TL", "TL:o4"], base="TL") == "TL:o4"
    pool = {"n_pool_hf": 20, "n_pool_lf": 20, "n_lf_used": 20, "n_val": 0, "n_test": 5}
    md = markdown_tables({**_result(rows, **ratios), "labels": "replay pairs.extxyz (cp2k)", "pool": pool})
    assert "MF-F:o4s80 / TL:s80 force MAE {12: 0.80}" in md

    no_tl = curve_ratios(aggregate(rows[:1] + rows[2:]), ["pretrained"])
    assert no_tl["variant_over_tl_force_mae_by_start"]["pretrained"] == {}

    # plain MF-F with only a TL variant (no plain TL, so no mf_over_tl): compared with that variant
    plain = curve_ratios(aggregate([_row("TL:s80", "pretrained", 12, 250.0), _row("MF-F", "pretrained", 12, 225.0)]),
                         ["pretrained"])  # fmt: skip
    assert plain["mf_over_tl_force_mae_by_start"]["pretrained"] == {}
    assert plain["variant_over_tl_force_mae_by_start"]["pretrained"]["MF-F"]["over"] == "TL:s80"
