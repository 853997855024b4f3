"""The science AL loop is a driver over one round function: a round of the campaign can be plugged in."""

from __future__ import annotations

from types import SimpleNamespace

from mfal.bench.science_al import RoundOutcome, run_active_learning
from mfal.bench.science_config import ALConfig


class _Ctx:
    """The part of the benchmark context the driver uses: AL settings, the pool's HF positions, their order."""

    def __init__(self, sizes):
        self.config = SimpleNamespace(al=ALConfig(sizes=sizes, k=2))
        self._pool = list(range(100, 130))

    def pool_target(self):
        return self._pool

    def hf_order(self, seed):
        return list(range(len(self._pool)))[::-1]


def test_driver_carries_labels_between_plugged_rounds():
    seen = []

    def round_fn(ctx, labeled, n_new, seed):
        seen.append((list(labeled), n_new, seed))
        fresh = [p for p in ctx.pool_target() if p not in labeled][:n_new]
        return RoundOutcome(row={"n_hf": len(labeled), "f_mae_mev_ang": 10.0 - len(labeled)}, picked=fresh)

    notes = []
    rows = run_active_learning(_Ctx([5, 8, 12, 99]), 3, notes.append, round_fn=round_fn)
    assert [r["round"] for r in rows] == [0, 1, 2] and [r["n_hf"] for r in rows] == [5, 8, 12]
    assert seen[0] == ([129, 128, 127, 126, 125], 3, 3)  # first labels: the seeded random order
    assert [n for _, n, _ in seen] == [3, 4, 0]  # the last round picks nothing; size 99 > pool is dropped
    assert seen[1][0] == [129, 128, 127, 126, 125, 100, 101, 102]  # picks of round 0 are labeled in round 1
    assert len(notes) == 3 and "n_hf=12" in notes[-1]


def test_driver_without_al_or_fitting_sizes_returns_nothing():
    ctx = _Ctx([5])
    ctx.config.al = None
    assert run_active_learning(ctx, 0) == []
    assert run_active_learning(_Ctx([50, 60]), 0) == []
