"""Campaign benchmark: orchestration overhead per round and the demo's wall time.

Per round (from ``rounds/NNN/times.json`` and ``wall.json`` of an uninterrupted run):

- ``label``: time inside the labelers, ``train``: ensemble training (the work a campaign exists to do);
- ``inference``: exploration (incl. MD), scoring and the evaluation gate (model inference in the loop);
- ``orchestration``: everything else — jobflow, state files, store reads/writes, selection
  (= round wall time − label − train − inference).

``overhead`` = everything but labeling and training (= inference + orchestration), as a share of the round's
wall time (target ≤ 5 %). With surrogate teacher labels (milliseconds) labeling is nearly free, so the share is
also given against the labelers' configured DFT cost (core-seconds / ``cores``) in place of the teacher's time.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mfal.campaign.state import CampaignDir
from mfal.fileio import read_json
from mfal.runopts import RunOptions

#: a campaign runner: ``runner(config, run_dir, options=RunOptions) -> final state dict`` (the CLI passes
#: ``flows.campaign.run_campaign``; mfal never imports flows)
CampaignRunner = Callable[..., dict[str, Any]]
#: the overhead share the benchmark aims for
TARGET_OVERHEAD_SHARE = 0.05


def default_demo_config() -> Path:
    """``configs/demo.yaml`` of the source tree."""
    return Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def round_breakdown(run_dir: str | Path, cores: int = 2) -> list[dict[str, Any]]:
    """Seconds per category and overhead shares for each finished round of ``run_dir``."""
    from mfal.store import open_store

    cd = CampaignDir(run_dir)
    state = cd.load_state()
    rows = []
    with open_store(cd.root) as store:
        frames = store.query_frames(campaign=state.campaign)
    for r in range(state.round):
        times = cd.times(r)
        wall = read_json(cd.round_dir(r) / "wall.json", {})
        if "start" not in wall or "end" not in wall:
            continue
        total = wall["end"] - wall["start"]
        label = times.get("label_lf", 0.0) + times.get("label_hf", 0.0)
        train = times.get("train", 0.0)
        inference = times.get("explore", 0.0) + times.get("score", 0.0) + times.get("evaluate", 0.0)
        orchestration = max(0.0, total - label - train - inference)
        overhead = inference + orchestration
        dft = sum(f.cost for f in frames if f.round == r) / cores
        rows.append(
            {
                "round": r,
                "wall_s": total,
                "label_s": label,
                "train_s": train,
                "inference_s": inference,
                "orchestration_s": orchestration,
                "overhead_share": overhead / total if total else None,
                "orchestration_share": orchestration / total if total else None,
                "configured_label_s": dft,
                "overhead_share_with_configured_labels": overhead / (total - label + dft) if total else None,
            }
        )
    return rows


def mean_shares(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """``mean_overhead_share``, ``mean_orchestration_share``, ``mean_overhead_share_with_configured_labels``
    over the rows of :func:`round_breakdown` (None where no round has the value)."""
    out: dict[str, float | None] = {}
    for key in ("overhead_share", "orchestration_share", "overhead_share_with_configured_labels"):
        vals = [r[key] for r in rows if r[key] is not None]
        out[f"mean_{key}"] = sum(vals) / len(vals) if vals else None
    return out


def bench_campaign(
    config: str | Path | None = None,
    *,
    runner: CampaignRunner,
    run_dir: str | Path | None = None,
    options: RunOptions | None = None,
    progress: bool = False,
    cores: int = 2,
) -> dict[str, Any]:
    """Run the campaign of ``config`` (default: the demo) from scratch with ``runner`` and measure it.

    ``runner(config, run_dir, options=...)`` runs the campaign (the CLI passes ``flows.campaign.run_campaign``);
    ``options`` default to ``RunOptions(progress=progress)``. Returns ``{"config", "wall_s", "rounds": [...],
    "mean_overhead_share", "mean_orchestration_share", "mean_overhead_share_with_configured_labels",
    "target_overhead_share": 0.05, "state", "stop_reason", "cores"}``.
    """
    cfg = Path(config) if config is not None else default_demo_config()
    opts = options if options is not None else RunOptions(progress=progress)
    tmp = None
    if run_dir is None:
        tmp = tempfile.mkdtemp(prefix="mfal-bench-campaign-")
        run_dir = Path(tmp) / "run"
    try:
        t0 = time.perf_counter()
        state = runner(cfg, run_dir, options=opts)
        wall = time.perf_counter() - t0
        rows = round_breakdown(run_dir, cores=cores)
        return {
            "config": str(cfg),
            "wall_s": wall,
            "state": state["state"],
            "stop_reason": state.get("stop_reason"),
            "rounds": rows,
            **mean_shares(rows),
            "target_overhead_share": TARGET_OVERHEAD_SHARE,
            "cores": cores,
        }
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
