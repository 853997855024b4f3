"""Selection under budget, trust windows, cost model, diversity and calibration (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.acquire import CostModel, SelectionPolicy, TrustWindow, farthest_point_order, select, split_by_trust
from mfal.acquire.diversity import structure_descriptor
from mfal.uncertainty import calibration_rho, ensemble_scores


def _policy(hf_cap: int = 10, lf_cap: int = 10, pool: float = 1.0) -> SelectionPolicy:
    return SelectionPolicy(
        lf=TrustWindow(lo=0.05, hi=1.0, max_per_round=lf_cap),
        hf=TrustWindow(lo=0.05, hi=1.0, max_per_round=hf_cap),
        diversity_pool=pool,
    )


def _costs(lf: float = 10.0, hf: float = 100.0) -> dict[str, CostModel]:
    return {"lf": CostModel.from_prior(lf, 10), "hf": CostModel.from_prior(hf, 10)}


def test_split_by_trust_regions():
    win = TrustWindow(lo=0.1, hi=0.5, max_per_round=3)
    known, cand, out = split_by_trust(np.array([0.05, 0.1, 0.3, 0.5, 0.9, np.nan]), win)
    assert known.tolist() == [0]
    assert cand.tolist() == [1, 2]
    assert out.tolist() == [3, 4, 5]


def test_hf_selection_respects_budget_and_picks_most_uncertain():
    rng = np.random.default_rng(0)
    n = 40
    s_hf = rng.uniform(0.06, 0.9, n)
    s_hf[5] = 1.5  # out of window: must never be picked
    scores = {f: {"force_std_max": s_hf.copy()} for f in ("lf", "hf")}
    nsites = rng.integers(8, 30, n)
    desc = rng.normal(size=(n, 4))
    budget = {"lf": 1e9, "hf": 350.0}  # hf rate 10 core-s/atom -> ~1-4 picks
    sel, rep = select(nsites, scores, desc, _policy(pool=1.0), budget, _costs())
    hf_cost = sum(_costs()["hf"].predict(int(nsites[i])) for i in sel["hf"])
    assert 0 < hf_cost <= budget["hf"]
    assert 5 not in sel["hf"] and 5 not in sel["lf"]
    # without diversity the picks are the greedy most-uncertain ones that fit the budget
    ranked = [i for i in np.argsort(-s_hf) if i != 5]
    expected, spent = [], 0.0
    for i in ranked:
        c = 10.0 * nsites[i]
        if spent + c <= budget["hf"]:
            expected.append(int(i))
            spent += c
    assert sorted(sel["hf"]) == sorted(expected)
    assert sel["hf"][0] == int(ranked[0])
    assert rep["fidelities"]["hf"]["n_out_of_window"] == 1
    # every HF pick is paired at LF
    assert set(sel["hf"]) <= set(sel["lf"])


@pytest.mark.parametrize("seed", range(5))
def test_budget_never_exceeded_with_diversity(seed):
    rng = np.random.default_rng(seed)
    n = 30
    scores = {f: {"force_std_max": rng.uniform(0, 1.2, n)} for f in ("lf", "hf")}
    nsites = rng.integers(4, 60, n)
    budget = {"lf": float(rng.uniform(100, 2000)), "hf": float(rng.uniform(0, 3000))}
    sel, _ = select(
        nsites, scores, rng.normal(size=(n, 3)), _policy(hf_cap=4, lf_cap=6, pool=3.0), budget, _costs()
    )
    costs = _costs()
    assert sum(costs["hf"].predict(int(nsites[i])) for i in sel["hf"]) <= budget["hf"] + 1e-6
    assert len(sel["hf"]) <= 4 and len(set(sel["hf"])) == len(sel["hf"])
    extra = [i for i in sel["lf"] if i not in sel["hf"]]
    assert len(extra) <= 6
    # the first HF pick is the most uncertain affordable one in the window
    s = scores["hf"]["force_std_max"]
    window = [
        i for i in range(n) if 0.05 <= s[i] < 1.0 and costs["hf"].predict(int(nsites[i])) <= budget["hf"]
    ]
    if sel["hf"]:
        top = max(window, key=lambda i: s[i])
        assert s[sel["hf"][0]] >= s[top] - 1e-12 or costs["hf"].predict(int(nsites[top])) > budget["hf"]


def test_diversity_prefers_distinct_structures():
    # two clusters of near-duplicates; with a diverse pool the second pick comes from the other cluster
    desc = np.array([[0, 0], [0.01, 0], [0.02, 0], [5, 5], [5.01, 5]], dtype=float)
    s = np.array([0.9, 0.85, 0.8, 0.6, 0.55])
    scores = {f: {"force_std_max": s} for f in ("lf", "hf")}
    sel, _ = select([10] * 5, scores, desc, _policy(hf_cap=2, pool=3.0), {"lf": 1e9, "hf": 1e9}, _costs())
    assert sel["hf"][0] == 0 and sel["hf"][1] in (3, 4)
    sel_plain, _ = select(
        [10] * 5, scores, desc, _policy(hf_cap=2, pool=1.0), {"lf": 1e9, "hf": 1e9}, _costs()
    )
    assert sel_plain["hf"] == [0, 1]


def test_initial_round_without_model_is_diverse_and_capped():
    desc = np.array([[0.0], [0.1], [10.0], [5.0], [7.0], [2.0]])
    sel, rep = select(
        [10] * 6, None, desc, _policy(), {"lf": 1e9, "hf": 1e9}, _costs(), initial={"lf": 3, "hf": 2}
    )
    assert sel["hf"] == [0, 2]
    assert sel["lf"][:2] == [0, 2] and len(sel["lf"]) == 2 + 3
    assert "initial" in rep["fidelities"]["hf"]["mode"]


def test_exclude_skips_already_labeled():
    s = np.array([0.9, 0.8, 0.7])
    scores = {f: {"force_std_max": s} for f in ("lf", "hf")}
    sel, _ = select(
        [10] * 3,
        scores,
        np.eye(3),
        _policy(hf_cap=1),
        {"lf": 1e9, "hf": 1e9},
        _costs(),
        exclude={"hf": [0], "lf": [1]},
    )
    assert sel["hf"] == [1]
    assert 1 not in sel["lf"] and 0 in sel["lf"]


def test_selection_takes_the_fidelity_names_from_the_config():
    """Any names, any number of fidelities: the last is the target, every cheaper one gets the paired picks."""
    win = {"lo": 0.05, "hi": 1.0, "max_per_round": 2}
    policy = SelectionPolicy.model_validate({"pbe": win, "pbeu": win, "hse": {**win, "max_per_round": 1}})
    assert sorted(policy.windows) == ["hse", "pbe", "pbeu"]
    assert policy.model_dump()["hse"]["max_per_round"] == 1  # YAML shape kept: windows beside the options
    s = np.array([0.9, 0.8, 0.7, 0.6])
    names = ("pbe", "pbeu", "hse")
    costs = {f: CostModel.from_prior(10.0, 10) for f in names}
    sel, rep = select(
        [10] * 4,
        {f: {"force_std_max": s} for f in names},
        np.eye(4),
        policy,
        {f: 1e9 for f in names},
        costs,
        fidelities=names,
    )
    assert sel["hse"] == [0]
    assert sel["pbeu"][0] == 0 and sel["pbe"][0] == 0  # paired with the target pick
    assert set(rep["fidelities"]) == set(names)


def test_cost_model_learns_from_records():
    m = CostModel.from_prior(280.0, 28)  # 10 core-s/atom
    assert m.predict(28) == pytest.approx(280.0)
    m2 = m.updated([(560.0, 28)] * 9)  # observed 20 core-s/atom, 9x the prior weight
    assert m.rate == pytest.approx(10.0)  # unchanged
    assert m2.rate == pytest.approx((280 + 9 * 560) / (28 * 10))
    assert 10 < m2.rate < 20


def test_farthest_point_order():
    x = np.array([[0.0], [1.0], [10.0], [4.0]])
    assert farthest_point_order(x) == [0, 2, 3, 1]


def test_ensemble_scores_and_calibration():
    rng = np.random.default_rng(1)
    k, n = 3, 6
    forces = [rng.normal(scale=0.1 * (i + 1), size=(k, 5, 3)) for i in range(n)]
    energies = rng.normal(size=(k, n))
    sc = ensemble_scores(energies, forces, [5] * n)
    assert sc["force_std_max"].shape == (n,)
    assert np.all(sc["force_std_max"] >= sc["force_std_mean"])
    assert calibration_rho(sc["force_std_max"], np.arange(n)) > 0.5
    assert calibration_rho([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert calibration_rho([1, 1, 1], [1, 2, 3]) is None


def test_descriptor_distinguishes_rattled_cells(lifepo4):
    a = structure_descriptor(lifepo4)
    b = lifepo4.copy()
    b.perturb(0.3, min_distance=0.2)
    assert np.linalg.norm(structure_descriptor(b) - a) > 1e-3
    assert np.allclose(structure_descriptor(lifepo4.copy()), a)
