"""``mfal bench al --preset quick``: AL vs random vs SF through the campaign's own ``run_round`` (real teacher
labels from the pretrained CHGNet weights in the wheel, real training; no mocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from mfal.bench.al_config import STRATEGIES, load_preset, strategy_config
from mfal.bench.al_report import al_over_random, curve, match_sf

THREADS = os.environ.get("MFAL_TEST_THREADS", "2")
MFAL = [sys.executable, "-c", "from flows.cli import main; main()"]
#: the preset's target on 2 idle cores is 10 min; the bound leaves room for a loaded shared machine
QUICK_BOUND_S = 2400


def test_strategy_configs_share_the_hf_budget():
    from mfal.campaign.config import CampaignConfig

    preset = load_preset("quick")
    cfgs = {
        s: CampaignConfig.model_validate(strategy_config(preset.campaign, s, 4, preset.rounds))
        for s in STRATEGIES
    }
    assert {c.budget.total["hf"] for c in cfgs.values()} == {preset.campaign["budget"]["total"]["hf"]}
    assert {c.budget.per_round["hf"] for c in cfgs.values()} == {preset.campaign["budget"]["per_round"]["hf"]}
    assert (
        cfgs["uncertainty"].strategy == "uncertainty"
        and cfgs["random"].strategy == cfgs["sf"].strategy == "random"
    )
    assert cfgs["sf"].train.mode == "sf" and not cfgs["sf"].trust.pair_hf_with_lf
    assert cfgs["sf"].budget.total["lf"] * 3600 < 1.0  # no LF label fits
    assert all(c.seed == 4 and c.stop.max_rounds == preset.rounds for c in cfgs.values())
    assert all(c.teacher_warm_start() is None for c in cfgs.values())  # the warm start is not the HF teacher


@pytest.mark.parametrize("name", ["quick", "mid", "hetero", "realistic", "full"])
def test_every_preset_gives_valid_campaigns(name):
    """Each shipped preset validates for every strategy; `realistic` is `hetero` labeled by the realistic pair."""
    from mfal.bench.al_config import PRESETS
    from mfal.campaign.config import CampaignConfig

    assert name in PRESETS
    preset = load_preset(name)
    cfgs = [CampaignConfig.model_validate(strategy_config(preset.campaign, s, 0, preset.rounds)) for s in STRATEGIES]
    pairs = {c.labelers[f].options.pair for c in cfgs for f in ("lf", "hf")}
    assert pairs == ({"realistic"} if name == "realistic" else {"chgnet-020-030"})
    if name == "realistic":
        hetero = load_preset("hetero")
        assert preset.campaign["explore"] == hetero.campaign["explore"] and preset.test == hetero.test
        assert cfgs[0].labelers["lf"].options.fidelities["lf"].transform.cell_scale != 1.0
        mine, theirs = preset.model_dump(), hetero.model_dump()
        mine["campaign"].pop("labelers"), theirs["campaign"].pop("labelers")
        assert mine == theirs  # `base: hetero`: only the labelers differ


def test_preset_base_errors_name_the_file(tmp_path):
    """A preset whose `base:` is unknown, or presets that include each other, stop with one ConfigError."""
    from mfal.errors import ConfigError

    (tmp_path / "a.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\nrounds: 3\n")
    (tmp_path / "b.yaml").write_text(f"base: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(ConfigError, match="include each other"):
        load_preset(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: nope\n")
    with pytest.raises(ConfigError, match="'nope'"):
        load_preset(tmp_path / "c.yaml")


def _rows(maes, n_hf, cost):
    return [
        {
            "round": r,
            "n_hf": n,
            "hf_core_hours": c,
            "total_core_hours": 2 * c,
            "test": {"md": {"f_mae_mev_ang": m}},
        }
        for r, (m, n, c) in enumerate(zip(maes, n_hf, cost, strict=True))
    ]


def test_summary_ratios_and_match():
    al = curve(_rows([100.0, 60.0, 40.0], [3, 6, 9], [0.2, 0.4, 0.6]))
    rnd = curve(_rows([100.0, 80.0, 80.0], [3, 6, 9], [0.2, 0.4, 0.6]))
    sf = curve(_rows([120.0, 90.0, 50.0], [3, 6, 9], [0.2, 0.4, 0.6]))
    assert al_over_random(al, rnd) == {"6": 0.75, "9": 0.5}
    m = match_sf(al, sf)
    assert m["sf_all_force_mae"] == 50.0 and m["hf_labels"] == 9 and m["hf_label_fraction"] == 1.0
    assert m["cost_fraction"] == pytest.approx(1.0)
    never = match_sf(curve(_rows([100.0, 99.0, 98.0], [3, 6, 9], [0.2, 0.4, 0.6])), sf)
    assert never["hf_labels"] is None and never["cost_fraction"] is None


@pytest.mark.slow
@pytest.mark.timeout(QUICK_BOUND_S + 300)
def test_bench_al_quick_runs_the_campaign_rounds(tmp_path):
    """The CI-sized benchmark end to end: three strategies, each a campaign directory with its RoundDocs."""
    from mfal.campaign.state import CampaignDir
    from mfal.store import open_store

    env = {**os.environ, "OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS}
    out = tmp_path / "al"
    t0 = time.perf_counter()
    p = subprocess.run(
        [*MFAL, "bench", "al", "--preset", "quick", "--json", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=QUICK_BOUND_S,
    )
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout)
    for key in (
        "al_over_random_force_mae",
        "al_hf_labels_to_match_sf_all",
        "al_cost_fraction_to_match_sf_all",
        "calibration",
        "md_stability",
        "curves",
    ):
        assert key in res, key
    assert res["al_over_random_force_mae"] and all(
        v is None or v > 0 for v in res["al_over_random_force_mae"].values()
    )
    for f, cal in res["calibration"].items():
        assert {"rho", "miscalibration_area", "coverage_1sigma"} <= set(cal), f
    # the per-atom force calibration of round >= 1 reaches the JSON (RoundDoc.calibration[f]["forces_atoms"])
    assert res["calibration"]["hf"]["miscalibration_area_atoms"] is not None
    assert set(res["md_stability"]) == set(STRATEGIES)
    assert all(0 <= v["stable_share"] <= 1 for v in res["md_stability"].values())
    for s in STRATEGIES:  # round 1 labeled at least one HF pick, each from the explored pool
        picks = res["hf_picks_by_origin"][s]
        assert sum(picks["picks"].values()) >= 1 and set(picks["picks"]) <= set(picks["pool"])
    assert (
        res["test_set"]["n_frames"] > 0
        and (out / "test_set.json").is_file()
        and (out / "bench_al.png").is_file()
    )
    rounds = load_preset("quick").rounds
    for s in STRATEGIES:
        for d in res["campaign_dirs"][s]:
            cd = CampaignDir(d)
            state = cd.load_state()
            with open_store(cd.root) as store:
                docs = store.rounds(state.campaign)
            assert sorted(doc.round for doc in docs) == list(range(rounds)), (
                s,
                d,
            )  # every round via run_round
            assert all(doc.state == "done" for doc in docs)
            strategy = "uncertainty" if s == "uncertainty" else "random"
            assert docs[-1].selection_reason["strategy"] == strategy
        assert res["ran_through_run_round"][s] == list(range(rounds))
    assert len({c[-1]["n_hf"]["mean"] for c in res["curves"].values()}) >= 1
    assert res["wall_s"] <= wall
    # a later call over the same seeds (e.g. after `--seed K` runs side by side) reuses every cached round
    from mfal.bench.al import bench_al

    again = bench_al("quick", seeds=res["seeds"], first_seed=0, out_dir=out)
    from mfal.fileio import dumps_strict

    assert json.loads(dumps_strict(again["curves"])) == res["curves"]
    assert again["campaign_dirs"] == res["campaign_dirs"]
    assert again["wall_s"] < 0.25 * res["wall_s"]


def test_summarize_keys_calibration_and_figure(tmp_path):
    from mfal.bench.al_report import figure, summarize

    def rows(scale, strategy):
        out = []
        for seed in (0, 1):
            for r, row in enumerate(_rows([100.0, 80.0 * scale], [3, 6], [0.2, 0.4])):
                row["test"]["all"] = row["test"]["md"]
                row["calibration"] = {
                    "hf": {"rho": 0.5 + 0.1 * seed, "miscalibration_area": None, "coverage_1sigma": 0.6},
                    "lf": {"rho": None, "miscalibration_area": None, "coverage_1sigma": None},
                }
                if r == 1:
                    row["md_stability"] = {
                        "stable_share": 1.0,
                        "runs": [{"stable": True}, {"stable": seed == 0}],
                    }
                out.append({**row, "seed": seed, "strategy": strategy})
        return out

    res = summarize(
        {"uncertainty": rows(0.5, "u"), "random": rows(1.0, "r"), "sf": rows(1.2, "s")},
        load_preset("quick"),
        2,
    )
    assert res["al_over_random_force_mae"] == {"6": 0.5}
    assert res["targets"]["met"] and res["targets"]["margin"] == pytest.approx(-0.25)
    assert res["calibration"]["hf"]["rho"] == pytest.approx(0.55) and res["calibration"]["lf"]["rho"] is None
    assert res["calibration"]["hf"]["miscalibration_area"] is None  # absent from the RoundDocs -> null
    assert res["md_stability"]["uncertainty"] == {"stable_share": 0.75, "n_runs": 4}
    assert res["al_hf_labels_to_match_sf_all"] == 6 and res[
        "al_cost_fraction_to_match_sf_all"
    ] == pytest.approx(1.0)
    assert res["curves"]["random"][1]["f_mae_mev_ang"]["std"] == 0.0
    assert figure(res, tmp_path / "f.png") and (tmp_path / "f.png").stat().st_size > 1000


def test_picks_by_origin_counts_what_each_strategy_labeled_at_hf(tmp_path):
    """The report says which generators a strategy's HF picks came from (rounds ≥ 1), beside the pool."""
    from mfal.bench.al_report import origin_kind, picks_by_origin
    from mfal.campaign.artifacts import Candidate, Candidates, Selection
    from mfal.campaign.state import CampaignDir

    assert origin_kind("md900K<start:0") == "md900K" and origin_kind("rattle<Mn0.25<start:1") == "rattle"
    cell = {"@module": "pymatgen.core.structure", "@class": "Structure", "lattice": {"matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]}, "sites": []}  # fmt: skip
    cd = CampaignDir(tmp_path / "run")
    for r, (kinds, picked) in enumerate([(["rattle"], [0]), (["rattle", "rattle", "md900K"], [2, 0]), (["Li0.5"], [0])]):
        rd = cd.round(r)
        rd.path.mkdir(parents=True, exist_ok=True)
        items = [Candidate(id=f"c{r}-{i}", origin=f"{k}<start:0", structure=cell) for i, k in enumerate(kinds)]
        rd.save_candidates(Candidates(items=items))
        rd.save_selection(Selection(picks={"hf": [items[i].id for i in picked], "lf": []}))
    out = picks_by_origin([tmp_path / "run"], "hf")  # round 0 (no model yet) is left out
    assert out == {"picks": {"Li0.5": 1, "md900K": 1, "rattle": 1}, "pool": {"Li0.5": 1, "md900K": 1, "rattle": 2}}
