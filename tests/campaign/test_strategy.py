"""Selection strategy: ``random`` draws uniform picks among the same candidates, under the same budgets and caps."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.acquire import CostModel, SelectionPolicy, TrustWindow, select


def _setup(n: int = 60):
    rng = np.random.default_rng(1)
    s = rng.uniform(0.06, 0.9, n)
    s[::7] = 0.01  # below lo: uncertainty never picks these
    scores = {f: {"force_std_max": s.copy()} for f in ("lf", "hf")}
    nsites = rng.integers(8, 30, n)
    desc = rng.normal(size=(n, 4))
    policy = SelectionPolicy(
        lf=TrustWindow(lo=0.05, hi=1.0, max_per_round=8),
        hf=TrustWindow(lo=0.05, hi=1.0, max_per_round=4),
        diversity_pool=1.0,
    )
    costs = {"lf": CostModel.from_prior(10.0, 10), "hf": CostModel.from_prior(100.0, 10)}
    return nsites, scores, desc, policy, costs


def _cost(costs, f, nsites, picks):
    return sum(costs[f].predict(int(nsites[i])) for i in picks)


@pytest.mark.parametrize("hf_budget", [600.0, 1e9])
def test_random_picks_differ_from_uncertainty_and_respect_budget(hf_budget):
    nsites, scores, desc, policy, costs = _setup()
    budget = {"lf": 2000.0, "hf": hf_budget}
    exclude = {"hf": [1, 2], "lf": [3]}
    unc, _ = select(nsites, scores, desc, policy, budget, costs, exclude=exclude)
    picks = []
    for seed in (0, 1, 2):
        rnd, rep = select(
            nsites, scores, desc, policy, budget, costs, exclude=exclude, strategy="random", seed=seed
        )
        assert rep["strategy"] == "random" and rep["fidelities"]["hf"]["mode"].startswith("random")
        for f in ("lf", "hf"):
            assert 0 < len(rnd[f]) and _cost(costs, f, nsites, rnd[f]) <= budget[f] + 1e-9
            assert not set(rnd[f]) & set(exclude[f])
        assert len(rnd["hf"]) <= policy.window("hf").max_per_round
        assert len(rnd["lf"]) - len(set(rnd["hf"]) - set(exclude["lf"])) <= policy.window("lf").max_per_round
        assert set(rnd["hf"]) <= set(rnd["lf"])  # still paired with LF
        picks.append(tuple(rnd["hf"]))
        again, _ = select(
            nsites, scores, desc, policy, budget, costs, exclude=exclude, strategy="random", seed=seed
        )
        assert again.by_fidelity() == rnd.by_fidelity()  # seeded: reproducible
    assert len(set(picks)) > 1  # the seed matters
    assert any(set(p) != set(unc["hf"]) for p in picks)
    # uncertainty never picks below lo; uniform picks ignore the model's scores
    s = scores["hf"]["force_std_max"]
    assert all(s[i] >= 0.05 for i in unc["hf"])
    mean_unc = np.mean(s[unc["hf"]])
    mean_rnd = np.mean([np.mean(s[list(p)]) for p in picks])
    assert mean_unc > mean_rnd


def test_random_draws_cover_the_candidates_uniformly():
    nsites, scores, desc, policy, costs = _setup(20)
    counts = np.zeros(20)
    for seed in range(300):
        rnd, _ = select(
            nsites, scores, desc, policy, {"lf": 0.0, "hf": 1e9}, costs, strategy="random", seed=seed
        )
        counts[rnd["hf"]] += 1
    assert counts.min() > 0  # even the "known" (< lo) candidates are drawn
    assert counts.max() / counts.mean() < 1.6


def test_round_zero_is_the_same_for_both_strategies():
    nsites, _, desc, policy, costs = _setup()
    kw = {"initial": {"lf": 5, "hf": 3}}
    unc, _ = select(nsites, None, desc, policy, {"lf": 1e9, "hf": 1e9}, costs, **kw)
    rnd, _ = select(
        nsites, None, desc, policy, {"lf": 1e9, "hf": 1e9}, costs, strategy="random", seed=5, **kw
    )
    assert unc.by_fidelity() == rnd.by_fidelity()


def test_unknown_strategy_is_refused():
    nsites, scores, desc, policy, costs = _setup()
    with pytest.raises(ValueError, match="strategy='greedy'"):
        select(nsites, scores, desc, policy, {"lf": 1.0, "hf": 1.0}, costs, strategy="greedy")


def test_campaign_config_strategy_and_seed_per_round(tmp_path, make_config, save_config):
    from mfal.campaign.config import load_config
    from mfal.campaign.select import random_seed
    from mfal.errors import ConfigError

    cfg = make_config(tmp_path, strategy="random", allow_teacher_warm_start=True)
    assert load_config(save_config(tmp_path, cfg)).strategy == "random"
    assert load_config(
        save_config(tmp_path, make_config(tmp_path, allow_teacher_warm_start=True))
    ).strategy == ("uncertainty")
    assert random_seed(3, 1) != random_seed(3, 2) != random_seed(4, 2)
    bad = save_config(
        tmp_path, make_config(tmp_path, strategy="greedy", allow_teacher_warm_start=True), "b.yaml"
    )
    with pytest.raises(ConfigError, match="field strategy"):
        load_config(bad)
