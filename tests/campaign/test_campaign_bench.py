"""Campaign benchmark arithmetic on a hand-made campaign directory (times.json/wall.json + embedded store)."""

from __future__ import annotations

import pytest

from mfal.bench.campaign import round_breakdown
from mfal.campaign.state import CampaignDir, CampaignState, atomic_write_json
from mfal.store import FrameDoc, open_store


def test_round_breakdown(tmp_path, lifepo4):
    cd = CampaignDir(tmp_path / "run")
    cd.root.mkdir()
    cd.save_state(CampaignState(campaign="b", round=1, state="done"))
    atomic_write_json(cd.round_dir(0) / "wall.json", {"start": 100.0, "end": 200.0})
    times = {
        "explore": 1.0,
        "score": 2.0,
        "select": 0.5,
        "label_lf": 10.0,
        "label_hf": 20.0,
        "train": 60.0,
        "evaluate": 3.0,
        "label_lf_overhead": 0.2,
    }
    atomic_write_json(cd.round_dir(0) / "times.json", times)
    with open_store(cd.root) as store:
        store.upsert_frames(
            [
                FrameDoc.from_structure(
                    lifepo4, fidelity="hf", source="teacher", energy=-1.0, cost=400.0, campaign="b", round=0
                )
            ]
        )
    (row,) = round_breakdown(cd.root, cores=2)
    assert row["wall_s"] == pytest.approx(100.0)
    assert row["label_s"] == pytest.approx(30.0) and row["train_s"] == pytest.approx(60.0)
    assert row["inference_s"] == pytest.approx(6.0)
    assert row["orchestration_s"] == pytest.approx(4.0)
    assert row["overhead_share"] == pytest.approx(0.10)
    assert row["orchestration_share"] == pytest.approx(0.04)
    # labels at their configured cost: 400 core-s / 2 cores = 200 s instead of the 30 s measured
    assert row["overhead_share_with_configured_labels"] == pytest.approx(10.0 / (100 - 30 + 200))
