"""The rules of a round as pure functions (no files, no store, no model)."""

from __future__ import annotations

import math

import pytest

from mfal.campaign import policy
from mfal.campaign.artifacts import Candidate, Candidates, RoundScores, Selection
from mfal.fidelity import Fidelities
from mfal.store.docs import FrameDoc
from mfal.uncertainty import FidelityScores

FIDS = Fidelities()


def _frame(lifepo4, fidelity: str, cost: float, status: str = "ok", r: int = 0) -> FrameDoc:
    kw = {"energy": -1.0} if status == "ok" else {"status_reason": "scf did not converge"}
    return FrameDoc.from_structure(
        lifepo4, fidelity=fidelity, source="teacher", cost=cost, campaign="t", round=r, status=status, **kw
    )


def _scores(hf: list[float], lf: list[float] | None = None) -> RoundScores:
    def fs(v: list[float]) -> FidelityScores:
        return FidelityScores(
            scores={"force_std_max": v}, energy=[0.0] * len(v), forces=[[[0.0, 0.0, 0.0]]] * len(v)
        )

    ids = [f"c{i}" for i in range(len(hf))]
    return RoundScores(model=["a" * 64], ids=ids, fidelities={"lf": fs(lf or hf), "hf": fs(hf)})


def test_budget_left_is_per_round_capped_by_total():
    left = policy.budget_left({"lf": 1.0, "hf": 0.5}, {"lf": 3.0, "hf": 1.0}, {"lf": 0.0, "hf": 3000.0})
    assert left == {"lf": 3600.0, "hf": pytest.approx(600.0)}
    spent_out = policy.budget_left({"lf": 1.0, "hf": 0.5}, {"lf": 3.0, "hf": 1.0}, {"lf": 0.0, "hf": 9000.0})
    assert spent_out["hf"] == 0.0  # never negative
    assert policy.budget_left({"a": 1.0}, {"a": 2.0}, {}) == {"a": 3600.0}  # any fidelity names


def test_failed_ratio_and_guard(lifepo4):
    frames = [_frame(lifepo4, "lf", 1.0), _frame(lifepo4, "hf", 1.0, status="failed"), _frame(lifepo4, "lf", 1.0)]
    assert policy.failed_ratio(frames) == pytest.approx(1 / 3)
    assert policy.failed_ratio([]) == 0.0
    assert policy.failed_guard(1 / 3, 0.2, 0) == "failed-label fraction 0.33 > ratio_failed 0.20 in round 0"
    assert policy.failed_guard(0.2, 0.2, 0) is None


def test_spent_after_counts_failed_labels_too(lifepo4):
    frames = [_frame(lifepo4, "lf", 10.0), _frame(lifepo4, "hf", 100.0, status="failed")]
    assert policy.spent_after({"lf": 5.0}, frames, ("lf", "hf")) == {"lf": 15.0, "hf": 100.0}


@pytest.mark.parametrize(
    ("old", "new", "margin", "promoted"),
    [(None, 0.3, 0.0, True), (0.1, None, 0.0, True), (0.1, 0.104, 0.005, True), (0.1, 0.106, 0.005, False)],
)
def test_promotion_gate(old, new, margin, promoted):
    assert policy.promote(old, new, margin) is promoted


def _stop(**kw):
    args = dict(
        r=0,
        uncertainty=None,
        target=None,
        spent_s={"lf": 0.0, "hf": 0.0},
        total_h={"lf": 1.0, "hf": 1.0},
        max_rounds=3,
        fidelities=FIDS,
    )
    args.update(kw)
    return policy.stop_reason(**args)


def test_stop_reason_order_and_messages():
    assert _stop() is None
    assert _stop(r=2) == "max_rounds=3 reached"
    assert _stop(uncertainty=0.004, target=0.005) == "HF uncertainty 0.0040 eV/Å below target 0.005 eV/Å"
    assert _stop(uncertainty=0.006, target=0.005) is None
    both = {"lf": 3600.0, "hf": 3600.0}
    assert _stop(spent_s=both) == "HF budget spent (1.000 of 1.0 core-hours)"  # HF before LF
    assert _stop(spent_s={"lf": 3600.0, "hf": 0.0}) == "LF budget spent (1.000 of 1.0 core-hours)"
    # uncertainty first, then budgets, then rounds
    assert _stop(uncertainty=0.001, target=0.005, spent_s=both, r=5).startswith("HF uncertainty")
    assert _stop(spent_s=both, r=5).startswith("HF budget")


def test_mean_uncertainty_ignores_nan_and_no_model():
    assert policy.mean_uncertainty(_scores([0.1, 0.3, math.nan]), "hf") == pytest.approx(0.2)
    assert policy.mean_uncertainty(RoundScores(model=None), "hf") is None


def test_round_doc_from_artifacts(lifepo4):
    cands = Candidates(items=[Candidate(id=f"c{i}", origin="rattle", structure={}) for i in range(3)])
    sel = Selection(picks={"lf": ["c0", "c1"], "hf": ["c0"]}, report={"n_out_of_window": 2})
    frames = [_frame(lifepo4, "lf", 10.0), _frame(lifepo4, "lf", 5.0, status="failed"), _frame(lifepo4, "hf", 50.0)]
    doc = policy.round_doc(
        "t",
        1,
        state="done",
        fidelities=FIDS,
        candidates=cands,
        scores=_scores([0.1, 0.2, 0.6]),
        selection=sel,
        frames=frames,
        wall_time={"score": 1.5},
        promoted=True,
    )
    assert doc.n_candidates == 3 and doc.candidate_ids == ["c0", "c1", "c2"] and doc.n_out_of_window == 2
    assert doc.selected == {"lf": ["c0", "c1"], "hf": ["c0"]}
    lf, hf = doc.fidelities["lf"], doc.fidelities["hf"]
    assert (lf.n_selected, lf.n_labeled, lf.n_failed, lf.cost) == (2, 1, 1, 15.0)
    assert (hf.n_selected, hf.n_labeled, hf.n_failed, hf.cost) == (1, 1, 0, 50.0)
    assert hf.uncertainty_mean == pytest.approx(0.3) and hf.uncertainty_max == pytest.approx(0.6)
    assert doc.promoted is True and doc.wall_time == {"score": 1.5}
    empty = policy.round_doc(
        "t", 0, state="running", fidelities=FIDS, candidates=None, scores=None, selection=None, frames=[], wall_time={}
    )
    assert empty.n_candidates == 0 and empty.fidelities["hf"].uncertainty_mean is None


def test_uncertainty_vs_error_joins_by_structure_id(lifepo4):
    """Calibration pairs: a labeled frame meets its candidate's score by structure id; failed frames, other
    fidelities and structures that were not scored are left out."""
    from mfal.campaign.evaluate import calibration, uncertainty_vs_error

    n = len(lifepo4)
    other = lifepo4.copy()
    other.translate_sites([0], [0.05, 0.0, 0.0])
    ok = FrameDoc.from_structure(
        lifepo4, fidelity="hf", source="teacher", energy=-1.0, forces=[[0.0, 0.0, 0.5]] * n, campaign="t", round=1
    )
    unscored = FrameDoc.from_structure(
        other, fidelity="hf", source="teacher", energy=-1.0, forces=[[0.0, 0.0, 0.0]] * n, campaign="t", round=1
    )
    lf = FrameDoc.from_structure(
        lifepo4, fidelity="lf", source="teacher", energy=-1.0, forces=[[0.0, 0.0, 0.0]] * n, campaign="t", round=1
    )
    fs = FidelityScores(scores={"force_std_max": [0.2]}, energy=[-1.0], forces=[[[0.0, 0.0, 0.0]] * n])
    scores = RoundScores(model=["a" * 64], ids=[ok.structure_id], fidelities={"lf": fs, "hf": fs})
    std, err = uncertainty_vs_error(scores, [ok, unscored, lf], "hf")
    assert std == [0.2] and err == [pytest.approx(0.5)]
    assert uncertainty_vs_error(RoundScores(model=None), [ok], "hf") == ([], [])
    assert calibration(scores, [ok], ("lf", "hf")) == {"lf": None, "hf": None}  # < 3 pairs: no ρ


def test_stop_rule_compares_the_calibrated_spread():
    """The score step multiplies the raw spread by the fidelity's scale (raw kept as force_std_max_raw); the
    stop rule's uncertainty is the calibrated mean, the raw mean is reported beside it."""
    from mfal.uncertainty.scores import calibrate_scores

    raw = [0.004, 0.006]  # an under-dispersed ensemble: raw spread below a 0.05 eV/Å target
    sc = _scores(raw)
    hf = sc.fidelities["hf"]
    sc.fidelities["hf"] = hf.model_copy(update={"scores": calibrate_scores(hf.scores, {"forces": 30.0})})
    assert policy.mean_uncertainty(sc, "hf") == pytest.approx(0.15)
    assert policy.mean_raw_uncertainty(sc, "hf") == pytest.approx(0.005)
    assert policy.mean_raw_uncertainty(_scores(raw), "hf") == pytest.approx(0.005)  # scores without _raw
    assert _stop(uncertainty=policy.mean_uncertainty(sc, "hf"), target=0.05) is None
    assert _stop(uncertainty=policy.mean_raw_uncertainty(sc, "hf"), target=0.05) is not None
