"""``mfal bench al``: active learning measured through the campaign itself.

Each strategy (:data:`mfal.bench.al_config.STRATEGIES`) is a real campaign directory driven round by round by
:func:`mfal.campaign.round.run_round` (explore, score, select, label, train, evaluate — no private loop), with
the surrogate teacher labelers, at the same HF budget and seed. After every round the promoted ensemble is
measured on the HF test set of :mod:`mfal.bench.al_data` (teacher-driven MD + i.i.d. frames): energy (meV/atom),
force (meV/Å), stress (GPa) and moment (μB) MAE vs the HF labels, with the HF labels and HF core-hours spent so
far. Round 0 has no model, so its picks (diverse only) and model are the same for ``uncertainty`` and
``random``: it is run once and the campaign directory copied (``strategy`` is then set in the copy).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mfal.bench.al_config import STRATEGIES, AlBenchConfig, load_preset, strategy_config
from mfal.bench.al_report import ATOM_CALIBRATION_KEYS, atoms_calibration
from mfal.fileio import atomic_write_json, atomic_write_text, read_json
from mfal.runopts import RunOptions

log = logging.getLogger(__name__)

#: test-set metrics of mfal.train.evaluate (units in the names)
METRICS = ("e_mae_mev_atom", "f_mae_mev_ang", "s_mae_gpa", "m_mae_mub")
HOUR = 3600.0


def _campaign_dir(out: Path, strategy: str, seed: int) -> Path:
    return out / "runs" / f"seed{seed}" / strategy


def _prepare(out: Path, cfg: AlBenchConfig, strategy: str, seed: int) -> Path:
    """Write the strategy's campaign config and set up its directory (resumes when it exists)."""
    from mfal.campaign.prepare import prepare

    run = _campaign_dir(out, strategy, seed)
    path = out / "configs" / f"seed{seed}-{strategy}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        path, yaml.safe_dump(strategy_config(cfg.campaign, strategy, seed, cfg.rounds), sort_keys=False)
    )
    prepare(path, run, RunOptions())
    return run


def _fork_random(out: Path, cfg: AlBenchConfig, seed: int) -> Path:
    """The ``random`` campaign directory: a copy of ``uncertainty`` after round 0, with ``strategy: random``."""
    from mfal.campaign.config import load_config

    src, dst = _campaign_dir(out, "uncertainty", seed), _campaign_dir(out, "random", seed)
    if not (dst / "state.json").is_file():
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        for stale in (tmp / "bench_rows").glob("*.json"):
            if stale.name != "000.json":
                stale.unlink()
        raw = yaml.safe_load((tmp / "campaign.yaml").read_text())
        raw["strategy"] = "random"
        atomic_write_text(tmp / "campaign.yaml", yaml.safe_dump(raw, sort_keys=False))
        load_config(tmp / "campaign.yaml")
        tmp.rename(dst)
    return dst


def _round_doc(store: Any, campaign: str, r: int) -> Any:
    for doc in store.rounds(campaign):
        if doc.round == r:
            return doc
    return None


def calibration_of(doc: Any, fidelity: str) -> dict[str, float | None]:
    """rho, miscalibration_area, coverage_1sigma of the force uncertainty at ``fidelity`` from a RoundDoc
    (``RoundDoc.calibration`` when the store has it, else the older ``calibration_rho``; None when absent)."""
    out: dict[str, float | None] = {"rho": None, "miscalibration_area": None, "coverage_1sigma": None}
    out.update(dict.fromkeys(ATOM_CALIBRATION_KEYS))
    calib = (getattr(doc, "calibration", None) or {}).get(fidelity) if doc is not None else None
    if isinstance(calib, dict) and calib:
        key = "forces" if "forces" in calib else next((k for k in calib if "force" in k), next(iter(calib)))
        stats = calib[key] if isinstance(calib[key], dict) else getattr(calib[key], "model_dump", dict)()
        for name in ("rho", "miscalibration_area", "coverage_1sigma"):
            out[name] = stats.get(name)
        out.update(atoms_calibration(calib))  # RoundDoc.calibration[fidelity]["forces_atoms"]
    elif doc is not None and fidelity in doc.fidelities:
        out["rho"] = doc.fidelities[fidelity].calibration_rho
    return out


def measure_round(
    run: Path, r: int, test_frames: Sequence[Any], groups: Sequence[str], stability: Any = None
) -> dict[str, Any]:
    """Round ``r``'s row: HF test metrics of the promoted ensemble (mean over members; ``md``, ``iid`` and
    ``all`` frames), HF labels and core-hours so far, calibration from the RoundDoc, pick vs pool uncertainty."""
    from mfal.campaign.config import load_config
    from mfal.campaign.context import load_ensemble
    from mfal.campaign.state import CampaignDir
    from mfal.store import open_store

    cd = CampaignDir(run)
    cfg, state = load_config(cd.config_path), cd.load_state()
    fids = cfg.fidelities
    members = load_ensemble(run, state.checkpoints).members
    test = hf_test_errors(members, test_frames, groups, fids.high)
    with open_store(cd.root) as store:
        frames = [f for f in store.query_frames(campaign=cfg.name) if f.round is not None and f.round <= r]
        doc = _round_doc(store, cfg.name, r)
    n_ok = {f: sum(x.fidelity == f and x.status == "ok" for x in frames) for f in fids.names}
    cost = {f: sum(x.cost for x in frames if x.fidelity == f) / HOUR for f in fids.names}
    row: dict[str, Any] = {
        "round": r,
        "strategy": cfg.strategy,
        "mode": cfg.train.mode,
        "n_hf": n_ok[fids.high],
        "n_labels": n_ok,
        "hf_core_hours": cost[fids.high],
        "total_core_hours": sum(cost.values()),
        "test": test,
        "calibration": {f: calibration_of(doc, f) for f in fids.names},
        "promoted": getattr(doc, "promoted", None),
        "val_hf_force_mae": state.hf_force_mae,
    }
    hf_rep = (getattr(doc, "selection_reason", {}) or {}).get("fidelities", {}).get(fids.high, {})
    if hf_rep.get("picked_scores"):
        row["picked_force_std_max_mean"] = float(np.mean(hf_rep["picked_scores"]))
        row["pool_force_std_max_mean"] = doc.fidelities[fids.high].uncertainty_mean
    if stability is not None:
        row["md_stability"] = stability(run, state.checkpoints, fids.high)
    return row


def hf_test_errors(
    members: Sequence[Any], test_frames: Sequence[Any], groups: Sequence[str], fidelity: str
) -> dict:
    """HF test MAEs (:data:`METRICS`, mean over ``members``) on the ``all``, ``md`` and ``iid`` test frames."""
    from mfal.train.evaluate import evaluate

    subsets = {"all": list(test_frames)}
    subsets["md"] = [f for f, g in zip(test_frames, groups, strict=True) if g.startswith("md")]
    subsets["iid"] = [f for f, g in zip(test_frames, groups, strict=True) if g == "iid"]
    out: dict[str, dict[str, float | None]] = {}
    for name, frames in subsets.items():
        if frames:
            per = [evaluate(m, frames, fidelity)[fidelity] for m in members]
            out[name] = {k: _finite_mean([p[k] for p in per]) for k in METRICS}
    return out


def campaign_test_curve(run: str | Path, test_frames: Sequence[Any], groups: Sequence[str]) -> list[dict]:
    """Per finished round of any campaign directory (e.g. the demo's): the HF test MAEs of the ensemble that
    round trained (its RoundDoc's checkpoints) and the validation force MAE the campaign recorded (eV/Å)."""
    from mfal.campaign.artifacts import CheckpointRef
    from mfal.campaign.config import load_config
    from mfal.campaign.context import load_ensemble
    from mfal.campaign.state import CampaignDir
    from mfal.store import open_store

    cd = CampaignDir(run)
    cfg = load_config(cd.config_path)
    with open_store(cd.root) as store:
        docs = sorted(store.rounds(cfg.name), key=lambda d: d.round)
    out = []
    for doc in docs:
        if not doc.checkpoints:
            continue
        refs = [CheckpointRef.model_validate(c) for c in doc.checkpoints]
        members = load_ensemble(cd.root, refs).members
        out.append(
            {
                "round": doc.round,
                "n_hf": sum(
                    d.fidelities[cfg.fidelities.high].n_labeled for d in docs if d.round <= doc.round
                ),
                "val_hf_force_mae": doc.fidelities[cfg.fidelities.high].force_mae,
                "test": hf_test_errors(members, test_frames, groups, cfg.fidelities.high),
            }
        )
    return out


def _finite_mean(values: Sequence[float]) -> float | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


def run_strategy_rounds(
    run: Path,
    cfg: AlBenchConfig,
    test_frames: Sequence[Any],
    groups: Sequence[str],
    rounds: Sequence[int],
    stability: Callable[..., Any],
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Run ``rounds`` of the campaign in ``run`` with ``run_round`` and measure each (rows cached per round)."""
    from mfal.campaign.round import run_round
    from mfal.campaign.state import CampaignDir

    rows = []
    for r in rounds:
        cache = run / "bench_rows" / f"{r:03d}.json"
        row = read_json(cache, None)
        if row is None:
            state = CampaignDir(run).load_state()
            if state.state in ("done", "stopped") and state.round <= r:
                break  # the campaign stopped (budget spent) before this round
            t0 = time.perf_counter()
            ev = run_round(run, r, RunOptions())
            last = ev.stop or r == cfg.rounds - 1
            row = measure_round(run, r, test_frames, groups, stability if last else None)
            row["round_s"] = time.perf_counter() - t0
            atomic_write_json(cache, row)
        rows.append(row)
        f = (row["test"].get("md") or row["test"]["all"])["f_mae_mev_ang"]
        progress(f"{run.parent.name} {run.name} round {r}: n_hf={row['n_hf']} md-test F MAE={f:.1f} meV/Å")
    return rows


def bench_al(
    preset: str | Path = "quick",
    *,
    seeds: int | None = None,
    first_seed: int = 0,
    out_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run AL vs random vs SF for seeds ``first_seed`` .. ``first_seed`` + N − 1 and summarize (see
    :func:`mfal.bench.al_report.summarize`). Runs of other seeds into the same ``out_dir`` (e.g. side by side on
    two machines) are reused from their cached rows by a later call that covers them all.

    ``out_dir`` keeps the campaign directories, the cached test set, ``bench_al.json`` and the figure
    (default: ``bench-al-<preset>``); a rerun resumes where it stopped.
    """
    from mfal.bench.al_data import _starts, load_or_build_test_set, md_stability
    from mfal.bench.al_report import figure, picks_by_origin, summarize
    from mfal.campaign.config import parse_config

    say = progress or (lambda msg: None)
    cfg = load_preset(preset)
    n_seeds = seeds or cfg.seeds
    out = Path(out_dir or f"bench-al-{Path(str(preset)).stem}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = parse_config(strategy_config(cfg.campaign, "uncertainty", 0, cfg.rounds), out / "base.yaml")
    test_frames, groups, test_info = load_or_build_test_set(out, cfg.test, base)
    say(f"HF test set: {test_info['n_frames']} frames {test_info['groups']} ({test_info['build_s']:.0f} s)")
    starts = _starts(cfg.test, cfg.test.seed)

    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
    run_seeds = range(first_seed, first_seed + n_seeds)
    for seed in run_seeds:

        def stability(run: Path, refs: Any, fidelity: str, run_seed: int = seed) -> dict[str, Any]:
            ref = refs[0]  # member 0 of the final ensemble drives the MD
            return md_stability(ref.path(run), ref.sha256, fidelity, starts, cfg.md_stability, run_seed)

        def rounds_of(run: Path, rs: Sequence[int]) -> list[dict[str, Any]]:
            return run_strategy_rounds(run, cfg, test_frames, groups, rs, stability, say)

        later = list(range(1, cfg.rounds))
        unc = _prepare(out, cfg, "uncertainty", seed)
        first = rounds_of(unc, [0])
        rnd = _fork_random(out, cfg, seed)  # round 0 is the same for both: run once, copied
        rows["uncertainty"] += [{**r, "seed": seed} for r in first + rounds_of(unc, later)]
        rows["random"] += [{**r, "seed": seed, "strategy": "random"} for r in first + rounds_of(rnd, later)]
        sf = _prepare(out, cfg, "sf", seed)
        rows["sf"] += [{**r, "seed": seed} for r in rounds_of(sf, range(cfg.rounds))]
    res = summarize(rows, cfg, n_seeds)
    res.update(
        preset=str(preset),
        out_dir=str(out),
        test_set=test_info,
        wall_s=time.perf_counter() - t0,
        campaign_dirs={s: [str(_campaign_dir(out, s, k)) for k in run_seeds] for s in STRATEGIES},
    )
    res["hf_picks_by_origin"] = {
        s: picks_by_origin(res["campaign_dirs"][s], base.fidelities.high) for s in STRATEGIES
    }
    res["figure"] = figure(res, out / "bench_al.png")
    atomic_write_json(out / "bench_al.json", res)
    return res
