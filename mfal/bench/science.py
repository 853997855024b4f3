"""Science benchmark: data efficiency of multi-fidelity CHGNet, the paper's ablation, and AL vs random.

``run_science(config, out_dir)`` runs, on one labeled pool (see :mod:`mfal.bench.science_data`):

1. learning curves: HF training frames ∈ ``hf_sizes`` (+ all pool LF frames for MF and TL) for SF (HF only),
   TL (LF then HF) and MF with component subsets ("MF-F" = EMRC, "MF-E", "MF-RC", ...), per starting point
   (``scratch`` as in the paper; ``pretrained`` = warm start from a pretrained CHGNet, by default the r2SCAN
   model, which is neither teacher) and seed; MAE on the HF test set (energy meV/atom, forces meV/Å, stress
   GPa, moments μB), mean ± std over seeds;
2. active learning vs random at equal HF labels (= equal HF core-seconds, all cells have 28 atoms or fewer and
   the same cost model): AL+MF picks HF frames from the pool by ensemble force uncertainty
   (:func:`mfal.acquire.select`, most uncertain + farthest-point), random+MF / random+SF are the learning-curve
   runs on nested random subsets; HF labels and total label cost AL+MF needs to match SF on the whole HF pool;
   calibration (Spearman ρ of ensemble force std vs true force error on the HF test set).

All graphs are built once and shared by every run. Everything is seeded. Modules: ``science_config``
(settings, presets), ``science_data`` (pool, splits), ``science_runs`` (one training run, test metrics),
``science_al`` (the AL driver over the product's train / score / select functions), ``science_results``
(curves, ratios, AL summary, JSON), ``science_targets`` (verdicts, merge), ``science_report`` (figures). The JSON written to
``out_dir/science.json`` holds every number; :mod:`mfal.bench.science_report` draws the figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mfal.bench.science_al import run_active_learning
from mfal.bench.science_config import (
    PRESETS,
    ALConfig,
    ScienceConfig,
    check_warm_start,
    method_train_kwargs,
    preset,
    run_seeds,
    train_config,
)
from mfal.bench.science_data import SciencePool, replay_pool, teacher_pool
from mfal.bench.science_gap import gap_stats
from mfal.bench.science_results import aggregate, al_summary, curve_ratios, plain, write_result_json
from mfal.bench.science_runs import Context, hf_test_metrics, run_point
from mfal.bench.science_targets import target_checks
from mfal.errors import ConfigError
from mfal.fileio import atomic_write_text, dumps_strict
from mfal.label.teacher import pair_fidelities

log = logging.getLogger(__name__)

__all__ = [  # the benchmark's entry points (defined in the science_* modules, re-exported here)
    "PRESETS",
    "ALConfig",
    "ScienceConfig",
    "load_pool",
    "method_train_kwargs",
    "preset",
    "run_science",
    "write_result_json",
]


def load_pool(config: ScienceConfig, out_dir: Path, progress: bool = False) -> SciencePool:
    """The labeled, split pool of ``config`` (teacher: cached in out_dir; replay: read from ``config.data``)."""
    if config.labeler == "replay":
        if not config.data:
            raise ConfigError("labeler 'replay' needs --data FILE (a paired LF/HF extxyz file)")
        return replay_pool(
            Path(config.data), config.n_test, config.n_val, config.seed, fidelities=config.fidelities
        )
    return teacher_pool(
        config.n_structures,
        config.n_test,
        config.n_val,
        config.seed,
        cache_dir=out_dir,
        progress=progress,
        fidelities=config.fidelities,
        pair=config.pair,
    )


def hf_teacher_model(pool: SciencePool, config: ScienceConfig) -> str | None:
    """The HF teacher's pretrained model name (teacher labels, also replayed ones), None for real labels."""
    models = pool.meta.get("teacher_models") or {}
    if config.fidelities.high in models:
        return str(models[config.fidelities.high])
    for f in pool.frames("pool", config.fidelities.high):
        if f.source == "teacher" or f.calc.get("surrogate"):
            return f.calc.get("model")
    return None


def _warm_check(
    config: ScienceConfig, hf_model: str | None, callback: Callable[[str], None] | None
) -> str | None:
    """ConfigError if the warm start is the HF teacher's model (unless allowed: then warn loudly)."""
    if "pretrained" not in config.starts:
        return None
    warning = check_warm_start(config.warm_version, hf_model, allow=config.allow_teacher_warm_start)
    if warning:
        log.warning(warning)
        if callback is not None:
            callback(warning)
    return warning


def run_science(
    config: ScienceConfig,
    out_dir: str | Path,
    *,
    progress: bool = False,
    callback: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark; write ``out_dir/science.json`` (+ ``rows.jsonl`` as runs finish); return the JSON."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    t_start = time.perf_counter()
    if config.labeler == "teacher":  # refuse a teacher warm start before any labeling
        _warm_check(
            config, pair_fidelities(config.pair, config.fidelities)[config.fidelities.high].model, None
        )
    pool = load_pool(config, out, progress)
    t_label = time.perf_counter() - t_start
    hf_model = hf_teacher_model(pool, config)
    warm_warning = _warm_check(config, hf_model, callback)
    gap = gap_stats(pool.pairs(fidelities=config.fidelities))
    ctx = Context(pool, config, progress)
    fids = config.fidelities
    n_pool_hf = len(ctx.pool_target())
    sizes = sorted({n for n in config.hf_sizes if n <= n_pool_hf})
    if not sizes:
        raise ConfigError(f"hf_sizes={config.hf_sizes}: none fits the {n_pool_hf} pool HF frames")
    skipped = [n for n in config.hf_sizes if n > n_pool_hf]

    plan: list[tuple[str, str, int, int]] = []
    for start in config.starts:
        for seed in run_seeds(config):
            for n in sizes:
                plan += [(m, start, n, seed) for m in config.methods]
                if n in config.ablation_sizes:
                    plan += [(m, start, n, seed) for m in config.ablation if m not in config.methods]
    # SF on the whole HF pool: the reference AL+MF has to match
    if config.al is not None:
        plan += [("SF", config.al.start, n_pool_hf, seed) for seed in run_seeds(config)]
    plan = list(dict.fromkeys(plan))

    rows: list[dict[str, Any]] = []
    rows_path = out / "rows.jsonl"
    atomic_write_text(rows_path, "")
    it = plan
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc="science runs", unit="run")
    for method, start, n, seed in it:
        row = run_point(ctx, method, start, n, seed)
        rows.append(row)
        with rows_path.open("a") as fh:  # a log of finished runs (append-only, one JSON per line)
            fh.write(dumps_strict(row, indent=None) + "\n")
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{start}/{method} n={n}: F {row['f_mae_mev_ang']:.0f} meV/Å")
    if bar is not None:
        bar.close()

    zero_shot = None
    if "pretrained" in config.starts:
        from mfal.train.build import build_model

        zs = build_model(train_config(config, "MF-F", "pretrained", config.seed))
        zero_shot = hf_test_metrics(ctx, zs)

    al_rows: list[dict[str, Any]] = []
    if config.al is not None:
        for seed in run_seeds(config):
            al_rows += run_active_learning(ctx, seed, callback)

    agg = aggregate(rows)
    primary = config.starts[0]
    result: dict[str, Any] = {
        "benchmark": "mfal bench science",
        "config": config.model_dump(mode="json"),
        "labels": pool.source,
        "surrogate_labels": pool.surrogate,
        "note": (
            "SURROGATE labels (pretrained CHGNet teachers), not DFT: numbers measure the method on a synthetic "
            "fidelity gap"
            if pool.surrogate
            else "real DFT labels"
        ),
        "pair": pool.meta.get("pair", config.pair) if config.labeler == "teacher" else f"replay {config.data}",
        "gap": gap,
        "warm_start": {
            "version": config.warm_version,
            "hf_teacher_model": hf_model,
            "why": "a warm start equal to the HF teacher's model is trivially perfect and refused (unless "
            "allow_teacher_warm_start); the default r2SCAN transfer-learned CHGNet is neither teacher",
            "warning": warm_warning,
            "zero_shot_hf_test": zero_shot,
        },
        "pool": {
            "n_structures": len(pool.items),
            "n_pool_hf": n_pool_hf,
            "n_pool_lf": len(ctx.index["pool"][fids.low]),
            "n_lf_used": len(ctx.lf_train()),
            "n_val": len(ctx.index["val"][fids.high]),
            "n_test": len(ctx.index["test"][fids.high]),
            "mean_cost_core_s": {f: float(np.mean(ctx.cost[f])) if ctx.cost[f] else None for f in fids.names},
            "test_frame_ids": [f.frame_id for f in pool.frames("test", fids.high)],
            **pool.meta,
        },
        "hf_sizes": sizes,
        "hf_sizes_skipped": skipped,
        "primary_start": primary,
        "learning_curves": agg,
        "rows": rows,
        **curve_ratios(agg, config.starts),
        "timing_s": {"label": t_label, "graphs": ctx.graph_time},
    }
    result.update(
        al_summary(
            config,
            agg,
            al_rows,
            n_pool_hf=n_pool_hf,
            lf_costs=ctx.cost[fids.low][: len(ctx.lf_train())],
            hf_costs=ctx.cost[fids.high],
        )
    )
    result["targets"] = target_checks(result)
    result["timing_s"]["total"] = time.perf_counter() - t_start
    result = plain(result)
    write_result_json(result, out)
    return result
