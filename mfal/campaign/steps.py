"""The steps of one campaign round. Each is idempotent: it skips work whose result is already on disk or in
the store, so rerunning a killed campaign resumes from the last finished step (no label computed twice).

Every step takes the campaign directory and the round number and returns a small JSON-able summary; big data
(candidates, scores, checkpoints) lives in files under ``DIR/rounds/NNN`` and frames in the store.
Costs are core-seconds; force errors eV/Å.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from mfal.campaign.config import FIDELITIES, CampaignConfig, load_config
from mfal.campaign.faults import fault_point
from mfal.campaign.state import CampaignDir, CampaignState, atomic_write_json, read_json
from mfal.errors import ConfigError, MfalError
from mfal.store.docs import FidelityStats, FrameDoc, RoundDoc, structure_fingerprint

log = logging.getLogger(__name__)

REF_ATOMS = 28  # configured label costs refer to a 28-atom cell
DEVICE_ENV = "MFAL_DEVICE"  # exported by SLURM GPU/train jobs (flows.submit.slurm)


class CampaignStopped(MfalError):
    """The campaign stopped on a guard (e.g. too many failed labels); the message gives the reason."""


@contextlib.contextmanager
def _bar(progress: bool, total: int, desc: str) -> Iterator[Any]:
    """A tqdm bar when ``progress`` (the CLI asks for it), else a no-op object with ``update``."""
    if progress and total:
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, leave=False) as bar:
            yield bar
    else:

        class _Null:
            def update(self, n: int = 1) -> None:
                pass

        yield _Null()


def device_override(device: str | None = None) -> str | None:
    """The device overriding the campaign config: ``device`` if given, else ``$MFAL_DEVICE`` if set, else None."""
    dev = device or os.environ.get(DEVICE_ENV) or None
    if dev is not None and dev not in ("auto", "cpu", "cuda") and not dev.startswith("cuda:"):
        src = "device" if device else f"${DEVICE_ENV}"
        raise ConfigError(f"{src}={dev!r} not in ['auto', 'cpu', 'cuda']")
    return dev


def load_ensemble(checkpoints: list[dict[str, str]], device: str = "cpu") -> Any:
    """An ``MFEnsemble`` from checkpoint references ``[{"path", "sha256"}]`` (sha256 checked)."""
    from mfal.model import MFEnsemble

    return MFEnsemble.from_checkpoints(
        [ck["path"] for ck in checkpoints], [ck.get("sha256") for ck in checkpoints], device=device
    )


def predict_scores(
    ensemble: Any,
    structures: list[Structure],
    fidelities: tuple[str, ...] = FIDELITIES,
    *,
    progress: Any = None,
) -> dict[str, dict[str, Any]]:
    """Per fidelity: ``{"scores": {name: [n]}, "energy": [n] eV per cell, "forces": per structure [n_i, 3] eV/Å}``
    (ensemble means; graphs built once for all fidelities). ``progress(1)`` is called per fidelity."""
    from mfal.uncertainty import scores_from_prediction

    nsites = [len(s) for s in structures]
    lead = ensemble.members[0]
    graphs = lead.graphs(structures) if structures else []
    out: dict[str, dict[str, Any]] = {}
    for fid in fidelities:
        pred = ensemble.predict_with_uncertainty(structures, fid, graphs=graphs)
        energy = np.asarray(pred["energy"], dtype=float)
        out[fid] = {
            "scores": scores_from_prediction(pred, nsites, energy_per_atom=lead.is_intensive),
            "energy": energy * np.asarray(nsites, dtype=float) if lead.is_intensive else energy,
            "forces": pred["forces"],
        }
        if progress is not None:
            progress(1)
    return out


class Campaign:
    """A campaign directory with its config, state and store.

    ``device`` (or ``$MFAL_DEVICE``) overrides the config's ``device`` and ``train.device`` (auto|cpu|cuda).
    """

    def __init__(self, root: str | Path, device: str | None = None):
        self.dir = CampaignDir(root)
        self.config: CampaignConfig = load_config(self.dir.config_path)
        dev = device_override(device)
        if dev is not None:
            self.config = self.config.model_copy(
                update={"device": dev, "train": self.config.train.model_copy(update={"device": dev})}
            )
        self.state: CampaignState = self.dir.load_state()
        if self.config.train.threads:  # all torch work of the campaign (labels, scoring, MD, training)
            import torch

            torch.set_num_threads(self.config.train.threads)

    @property
    def name(self) -> str:
        return self.config.name

    def store(self) -> Any:
        from mfal.store import open_store

        return open_store(self.dir.root)

    def save(self) -> None:
        self.dir.save_state(self.state)

    def candidates(self, r: int) -> list[Structure]:
        data = read_json(self.dir.round_dir(r) / "candidates.json")
        if data is None:
            raise MfalError(f"round {r}: candidates.json missing (explore has not run)")
        out = []
        for c in data:
            s = Structure.from_dict(c["structure"])
            s.properties = {"candidate_id": c["id"], "origin": c["origin"]}
            out.append(s)
        return out

    def labeler(self, fidelity: str) -> Any:
        from mfal.label import get_labeler

        lc = getattr(self.config.labelers, fidelity)
        return get_labeler(lc.kind, **lc.options)

    def cost_prior(self, fidelity: str) -> float:
        """Configured cost of one label of a 28-atom cell (core-seconds)."""
        lc = getattr(self.config.labelers, fidelity)
        if lc.cost_per_label is not None:
            return lc.cost_per_label
        lab = self.labeler(fidelity)
        if hasattr(lab, "cost"):
            return float(lab.cost(REF_ATOMS, fidelity))
        return 3600.0


def _timed(cd: CampaignDir, r: int, stage: str):
    class _T:
        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            cd.record_time(r, stage, time.perf_counter() - self.t0)

    return _T()


# ----------------------------------------------------------------------------------------------- prepare
def prepare(config_path: str | Path, root: str | Path) -> CampaignConfig:
    """Validate ``config_path`` and set up ``root`` (campaign.yaml copy, state.json), or check it matches.

    Nothing is written when the config is invalid. A rerun with the same config resumes; a different config
    in an existing campaign directory is an error.
    """
    import yaml

    from mfal.campaign.config import absolutize
    from mfal.campaign.state import atomic_write_text

    cfg = absolutize(load_config(config_path), Path(config_path).resolve().parent)
    cd = CampaignDir(root)
    dumped = cfg.model_dump(mode="json")
    if cd.config_path.is_file() and cd.state_path.is_file():
        old = load_config(cd.config_path).model_dump(mode="json")
        if old != dumped:
            diff = sorted(k for k in set(old) | set(dumped) if old.get(k) != dumped.get(k))
            raise MfalError(
                f"{cd.root} already holds campaign {old.get('name')!r} with a different config "
                f"(differs in {diff}); use another --dir"
            )
        return cfg
    cd.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cd.config_path, yaml.safe_dump(dumped, sort_keys=False))
    if not cd.state_path.is_file():
        cd.save_state(CampaignState(campaign=cfg.name))
    return cfg


# ----------------------------------------------------------------------------------------------- explore
def explore_round(
    root: str | Path, r: int, *, progress: bool = False, device: str | None = None
) -> dict[str, Any]:
    """Generate round ``r``'s candidates (``candidates.json``) unless they exist (MD on ``device``)."""
    from mfal.explore import explore, load_start_structures

    c = Campaign(root, device)
    path = c.dir.round_dir(r) / "candidates.json"
    if path.is_file():
        return {"round": r, "n_candidates": len(read_json(path)), "skipped": True}
    if c.state.state == "new":
        c.state.state = "running"
        c.save()
    _stamp(c.dir, r, "start")
    with _timed(c.dir, r, "explore"):
        cfg = c.config
        bases = load_start_structures(cfg.start_structures, c.dir.root, seed=cfg.seed)
        calc = None
        if cfg.explore.md.temperatures and c.state.checkpoints:
            from mfal.model import MFCHGNetCalculator

            ck = c.state.checkpoints[0]
            calc = MFCHGNetCalculator(
                ck["path"], fidelity=cfg.explore.md.fidelity, device=cfg.device, sha256=ck["sha256"]
            )
        with _bar(progress, len(bases), f"round {r}: explore") as bar:
            cands = explore(
                bases, cfg.explore, seed=cfg.seed * 1000 + r, calculator=calc, progress=bar.update
            )
        data = [
            {"id": s.properties["candidate_id"], "origin": s.properties["origin"], "structure": s.as_dict()}
            for s in cands
        ]
        atomic_write_json(path, data)
    return {"round": r, "n_candidates": len(data), "skipped": False}


# ----------------------------------------------------------------------------------------------- score
def score_round(
    root: str | Path, r: int, *, progress: bool = False, device: str | None = None
) -> dict[str, Any]:
    """Ensemble scores and mean predictions per fidelity (``scores.json``); none before the first model."""
    from mfal.device import resolve_device

    c = Campaign(root, device)
    path = c.dir.round_dir(r) / "scores.json"
    if path.is_file():
        return {"round": r, "skipped": True}
    with _timed(c.dir, r, "score"):
        if not c.state.checkpoints:
            atomic_write_json(path, {"model": None})
            return {"round": r, "model": None}
        cands = c.candidates(r)
        ensemble = load_ensemble(c.state.checkpoints, device=resolve_device(c.config.device))
        with _bar(progress, len(FIDELITIES), f"round {r}: score") as bar:
            pred = predict_scores(ensemble, cands, FIDELITIES, progress=bar.update)
        data = {
            "model": [ck["sha256"] for ck in c.state.checkpoints],
            "ids": [s.properties["candidate_id"] for s in cands],
            "fidelities": {
                f: {
                    "scores": {k: np.asarray(v).tolist() for k, v in p["scores"].items()},
                    "forces": [np.asarray(x).tolist() for x in p["forces"]],
                    "energy": np.asarray(p["energy"]).tolist(),
                }
                for f, p in pred.items()
            },
        }
        atomic_write_json(path, data)
    hf = np.asarray(data["fidelities"]["hf"]["scores"]["force_std_max"])
    return {"round": r, "hf_force_std_max_mean": float(hf.mean()) if hf.size else None}


# ----------------------------------------------------------------------------------------------- select
def _cost_models(c: Campaign, store: Any) -> dict[str, Any]:
    from mfal.acquire import CostModel

    out = {}
    for f in FIDELITIES:
        prior = CostModel.from_prior(c.cost_prior(f), REF_ATOMS)
        frames = store.query_frames(fidelity=f, campaign=c.name)
        out[f] = prior.updated((fr.cost, fr.nsites) for fr in frames)
    return out


def select_round(root: str | Path, r: int, *, progress: bool = False) -> dict[str, Any]:
    """Pick candidates per fidelity within the round's and campaign's budget left (``selection.json``)."""
    from mfal.acquire import select
    from mfal.acquire.diversity import descriptors

    c = Campaign(root)
    path = c.dir.round_dir(r) / "selection.json"
    if path.is_file():
        sel = read_json(path)
        return {"round": r, "n_lf": len(sel["lf"]), "n_hf": len(sel["hf"]), "skipped": True}
    with _timed(c.dir, r, "select"):
        cfg = c.config
        cands = c.candidates(r)
        ids = [s.properties["candidate_id"] for s in cands]
        sc = read_json(c.dir.round_dir(r) / "scores.json", {"model": None})
        scores = None
        if sc.get("model"):
            scores = {
                f: {k: np.asarray(v) for k, v in sc["fidelities"][f]["scores"].items()} for f in FIDELITIES
            }
        with c.store() as store:
            costs = _cost_models(c, store)
            labeled = {
                f: {
                    structure_fingerprint(fr.get_structure())
                    for fr in store.query_frames(fidelity=f, campaign=c.name)
                }
                for f in FIDELITIES
            }
        budget = {
            f: max(
                0.0,
                min(
                    getattr(cfg.budget.per_round, f) * 3600.0,
                    getattr(cfg.budget.total, f) * 3600.0 - c.state.spent.get(f, 0.0),
                ),
            )
            for f in FIDELITIES
        }
        exclude = {f: [i for i, cid in enumerate(ids) if cid in labeled[f]] for f in FIDELITIES}
        selection, report = select(
            [len(s) for s in cands],
            scores,
            descriptors(cands),
            cfg.trust,
            budget,
            costs,
            exclude=exclude,
            initial={"lf": cfg.initial.n_lf, "hf": cfg.initial.n_hf},
        )
        report["cost_rate"] = {f: costs[f].rate for f in FIDELITIES}
        data = {
            "lf": [ids[i] for i in selection.lf],
            "hf": [ids[i] for i in selection.hf],
            "report": report,
        }
        atomic_write_json(path, data)
        with c.store() as store:
            store.upsert_round(_round_doc(c, r, state="running"))
    return {"round": r, "n_lf": len(data["lf"]), "n_hf": len(data["hf"]), "skipped": False}


# ----------------------------------------------------------------------------------------------- label
def _task_path(c: Campaign, r: int, fidelity: str, cid: str) -> Path:
    return c.dir.label_dir(r, fidelity) / f"{cid[:32]}.json"


def label_round(root: str | Path, r: int, fidelity: str, *, progress: bool = False) -> dict[str, Any]:
    """Label the round's picks at ``fidelity``, storing each chunk as soon as it is done.

    A label is persisted in its task file (``labels/<fidelity>/<candidate>.json``) before the store write; a
    rerun finds it there and only writes it to the store, so no finished label is computed twice.
    """
    c = Campaign(root)
    sel = read_json(c.dir.round_dir(r) / "selection.json")
    if sel is None:
        raise MfalError(f"round {r}: selection.json missing (select has not run)")
    picks = list(sel[fidelity])
    by_id = {s.properties["candidate_id"]: s for s in c.candidates(r)}
    lc = getattr(c.config.labelers, fidelity)
    labeler = None
    n_ok = n_failed = n_reused = 0
    cost = 0.0
    t_label = 0.0
    t0 = time.perf_counter()
    with c.store() as store, _bar(progress, len(picks), f"round {r}: label {fidelity}") as bar:
        for start in range(0, len(picks), lc.chunk_size):
            chunk = picks[start : start + lc.chunk_size]
            docs: list[FrameDoc] = []
            todo = []
            for cid in chunk:
                tp = _task_path(c, r, fidelity, cid)
                if tp.is_file():
                    docs.extend(FrameDoc.model_validate(d) for d in read_json(tp))
                    n_reused += 1
                else:
                    todo.append(cid)
            if todo:
                labeler = labeler or c.labeler(fidelity)
                fault_point("during_label")
                workdir = c.dir.label_dir(r, fidelity) / "work"
                workdir.mkdir(parents=True, exist_ok=True)
                tl = time.perf_counter()
                new = labeler.label(
                    [by_id[cid] for cid in todo], fidelity, workdir=workdir, campaign=c.name, round=r
                )
                t_label += time.perf_counter() - tl
                with open(c.dir.calls_log, "a") as fh:
                    for cid in todo:
                        fh.write(f"{r} {fidelity} {cid}\n")
                for cid, doc in zip(todo, new, strict=True):
                    atomic_write_json(_task_path(c, r, fidelity, cid), [doc.model_dump(mode="json")])
                    fault_point("after_label")
                docs.extend(new)
            store.upsert_frames(docs)
            for d in docs:
                cost += d.cost
                if d.status == "ok":
                    n_ok += 1
                else:
                    n_failed += 1
            bar.update(len(chunk))
    total = time.perf_counter() - t0
    c.dir.record_time(r, f"label_{fidelity}", t_label)
    c.dir.record_time(r, f"label_{fidelity}_overhead", total - t_label)
    return {
        "round": r,
        "fidelity": fidelity,
        "n_ok": n_ok,
        "n_failed": n_failed,
        "n_reused": n_reused,
        "cost": cost,
    }


# ----------------------------------------------------------------------------------------------- train
def _round_frames(c: Campaign, store: Any, r: int) -> list[FrameDoc]:
    return store.query_frames(campaign=c.name, round=r)


def failed_ratio(frames: list[FrameDoc]) -> float:
    """Fraction of ``frames`` whose status is not ok (0 when there are none)."""
    return sum(f.status != "ok" for f in frames) / len(frames) if frames else 0.0


def split_train_val(
    frames: list[FrameDoc], fraction: float, seed: int
) -> tuple[list[FrameDoc], list[FrameDoc]]:
    """Stable structure-wise split: a structure is in validation iff hash(seed, fingerprint) < ``fraction``.

    All fidelities of a structure stay together; if no HF structure lands in validation (and there are ≥ 2),
    the HF structure with the smallest hash does. The split of a structure does not change between rounds
    (except through that fallback).
    """
    groups: dict[str, list[FrameDoc]] = {}
    for f in frames:
        groups.setdefault(structure_fingerprint(f.get_structure()), []).append(f)

    def h(key: str) -> float:
        return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12

    val_keys = {k for k in groups if h(k) < fraction}
    hf_keys = sorted((k for k, fs in groups.items() if any(f.fidelity == "hf" for f in fs)), key=h)
    if len(hf_keys) >= 2 and not val_keys & set(hf_keys):
        val_keys.add(hf_keys[0])
    if len(hf_keys) >= 2 and set(hf_keys) <= val_keys:
        val_keys.discard(hf_keys[-1])
    train = [f for k in sorted(groups) if k not in val_keys for f in groups[k]]
    val = [f for k in sorted(groups) if k in val_keys for f in groups[k]]
    return train, val


def train_round(
    root: str | Path, r: int, *, progress: bool = False, device: str | None = None
) -> dict[str, Any]:
    """Check the failed-label ratio, then train the ensemble (member i warm-starts from last round's member i).

    Finished members are skipped on a rerun; an interrupted member resumes from its ``train_state.pt``.
    ``device`` (else ``$MFAL_DEVICE``, else ``train.device``) is checked before any work.
    """
    from mfal.device import resolve_device
    from mfal.model import MFCHGNet
    from mfal.train.data import FrameDataset
    from mfal.train.trainer import build_model, train_on_datasets

    c = Campaign(root, device)
    cfg = c.config
    resolve_device(cfg.train.device)  # cuda without a GPU -> ConfigError now, not after loading the data
    mdir = c.dir.model_dir(r)
    with c.store() as store:
        ratio = failed_ratio(_round_frames(c, store, r))
        frames = store.training_frames(campaign=c.name)
    if ratio > cfg.ratio_failed:
        reason = f"failed-label fraction {ratio:.2f} > ratio_failed {cfg.ratio_failed:.2f} in round {r}"
        return {"round": r, "stopped": reason, "checkpoints": []}
    train, val = split_train_val(frames, cfg.validation_fraction, cfg.seed)
    if not train or not val:
        raise MfalError(f"round {r}: {len(train)} training / {len(val)} validation frames; need both")
    t0 = time.perf_counter()
    checkpoints: list[dict[str, str]] = []
    datasets = None
    metrics = []
    for i in range(cfg.ensemble.k):
        member_dir = mdir / f"member_{i}"
        done = read_json(member_dir / "done.json")
        if done is None:
            tcfg = cfg.train.model_copy(update={"seed": cfg.train.seed + cfg.seed * 100 + r * 10 + i})
            if c.state.checkpoints:
                prev = c.state.checkpoints[i % len(c.state.checkpoints)]
                model = MFCHGNet.load(prev["path"], sha256=prev["sha256"])
            else:
                model = build_model(tcfg)
            if datasets is None:
                tr = FrameDataset.build(train, model, magnetic_fidelities=tcfg.magnetic_fidelities)
                va = FrameDataset.build(val, model, magnetic_fidelities=tcfg.magnetic_fidelities)
                datasets = (tr, va)
            tr, va = datasets
            if cfg.ensemble.bootstrap:
                rng = np.random.default_rng([tcfg.seed, 7919])
                tr = tr.subset(rng.integers(0, len(tr), size=len(tr)).tolist())
            state_file = member_dir / "train_state.pt"
            res = train_on_datasets(
                model,
                tr,
                va,
                tcfg,
                out_dir=member_dir,
                resume=state_file if state_file.is_file() else None,
                progress=progress,
            )
            done = {"path": str(res.checkpoint), "sha256": res.sha256, "metrics": res.metrics}
            atomic_write_json(member_dir / "done.json", done)
            fault_point("during_train")
        checkpoints.append({"path": done["path"], "sha256": done["sha256"]})
        metrics.append(done.get("metrics", {}))
    c.dir.record_time(r, "train", time.perf_counter() - t0)
    return {"round": r, "checkpoints": checkpoints, "n_train": len(train), "n_val": len(val)}


# ----------------------------------------------------------------------------------------------- evaluate
def _hf_force_mae(members: list[Any], val: list[FrameDoc]) -> float | None:
    """Mean over members of the HF validation force MAE (eV/Å); None without HF validation frames."""
    from mfal.train.trainer import evaluate

    hf_val = [f for f in val if f.fidelity == "hf" and f.forces is not None]
    if not hf_val or not members:
        return None
    maes = [evaluate(m, hf_val, "hf")["hf"]["f_mae_mev_ang"] / 1000.0 for m in members]
    return float(np.mean(maes))


def _calibration(c: Campaign, r: int, frames: list[FrameDoc]) -> dict[str, float | None]:
    """Spearman ρ of predicted force_std_max (round r's scores) vs the true max force error of the new labels."""
    from mfal.uncertainty import calibration_rho

    sc = read_json(c.dir.round_dir(r) / "scores.json", {})
    if not sc.get("model"):
        return {f: None for f in FIDELITIES}
    index = {cid: i for i, cid in enumerate(sc["ids"])}
    out: dict[str, float | None] = {}
    for f in FIDELITIES:
        std, err = [], []
        for fr in frames:
            cid = structure_fingerprint(fr.get_structure())
            if fr.fidelity != f or fr.status != "ok" or fr.forces is None or cid not in index:
                continue
            i = index[cid]
            pred = np.asarray(sc["fidelities"][f]["forces"][i])
            err.append(float(np.linalg.norm(pred - np.asarray(fr.forces), axis=1).max()))
            std.append(sc["fidelities"][f]["scores"]["force_std_max"][i])
        out[f] = calibration_rho(std, err)
    return out


def _round_doc(c: Campaign, r: int, *, state: str, **extra: Any) -> RoundDoc:
    """RoundDoc of round r from its files and the store."""
    rd = c.dir.round_dir(r)
    cands = read_json(rd / "candidates.json", [])
    sel = read_json(rd / "selection.json", {})
    sc = read_json(rd / "scores.json", {})
    report = sel.get("report", {})
    fids: dict[str, FidelityStats] = {}
    with c.store() as store:
        frames = _round_frames(c, store, r)
    for f in FIDELITIES:
        fr = [x for x in frames if x.fidelity == f]
        stats = FidelityStats(
            n_selected=len(sel.get(f, [])),
            n_labeled=sum(x.status == "ok" for x in fr),
            n_failed=sum(x.status != "ok" for x in fr),
            cost=float(sum(x.cost for x in fr)),
        )
        if sc.get("model"):
            s = np.asarray(sc["fidelities"][f]["scores"]["force_std_max"])
            if s.size:
                stats.uncertainty_mean = float(s.mean())
                stats.uncertainty_max = float(s.max())
        fids[f] = stats
    return RoundDoc(
        campaign=c.name,
        round=r,
        state=state,
        n_candidates=len(cands),
        n_out_of_window=int(report.get("n_out_of_window", 0)),
        candidate_ids=[x["id"] for x in cands],
        selected={f: sel.get(f, []) for f in FIDELITIES},
        selection_reason=report,
        fidelities=fids,
        wall_time=c.dir.times(r),
        **extra,
    )


def evaluate_round(
    root: str | Path,
    r: int,
    train_out: dict[str, Any],
    *,
    progress: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Validation gate, calibration, RoundDoc, state update and the stop decision for round ``r``.

    Returns ``{"round", "stop": bool, "reason", "promoted", "hf_force_mae"}``.
    """
    from mfal.device import resolve_device

    c = Campaign(root, device)
    cfg = c.config
    if c.state.round > r:  # already evaluated (rerun after a kill between evaluate and the next round)
        done = c.state.state in ("done", "stopped")
        return {"round": r, "stop": done, "reason": c.state.stop_reason, "skipped": True}
    t0 = time.perf_counter()
    with c.store() as store:
        frames = _round_frames(c, store, r)
        all_frames = store.training_frames(campaign=c.name)
    spent = {
        f: c.state.spent.get(f, 0.0) + sum(x.cost for x in frames if x.fidelity == f) for f in FIDELITIES
    }
    if train_out.get("stopped"):
        reason = train_out["stopped"]
        doc = _round_doc(c, r, state="stopped", stop_reason=reason, finished_at=_now())
        with c.store() as store:
            store.upsert_round(doc)
        c.state = c.state.model_copy(update={"state": "stopped", "stop_reason": reason, "spent": spent})
        c.save()
        return {"round": r, "stop": True, "reason": reason, "promoted": False}
    _, val = split_train_val(all_frames, cfg.validation_fraction, cfg.seed)
    dev = resolve_device(cfg.device)
    new_members = load_ensemble(train_out["checkpoints"], device=dev).members
    new_mae = _hf_force_mae(new_members, val)
    old_mae = None
    if c.state.checkpoints:
        old_mae = _hf_force_mae(load_ensemble(c.state.checkpoints, device=dev).members, val)
    promoted = old_mae is None or new_mae is None or new_mae <= old_mae + cfg.promotion_margin
    calib = _calibration(c, r, frames)
    checkpoints = train_out["checkpoints"] if promoted else c.state.checkpoints
    current_mae = new_mae if promoted else old_mae
    c.dir.record_time(r, "evaluate", time.perf_counter() - t0)
    # stop rule
    sc = read_json(c.dir.round_dir(r) / "scores.json", {})
    hf_unc = None
    if sc.get("model"):
        s = np.asarray(sc["fidelities"]["hf"]["scores"]["force_std_max"])
        hf_unc = float(s.mean()) if s.size else None
    reason = None
    target = cfg.stop.hf_uncertainty_target
    if hf_unc is not None and target is not None and hf_unc < target:
        reason = f"HF uncertainty {hf_unc:.4f} eV/Å below target {target} eV/Å"
    elif spent["hf"] >= cfg.budget.total.hf * 3600.0 - 1e-6:
        reason = f"HF budget spent ({spent['hf'] / 3600:.3f} of {cfg.budget.total.hf} core-hours)"
    elif spent["lf"] >= cfg.budget.total.lf * 3600.0 - 1e-6:
        reason = f"LF budget spent ({spent['lf'] / 3600:.3f} of {cfg.budget.total.lf} core-hours)"
    elif r + 1 >= cfg.stop.max_rounds:
        reason = f"max_rounds={cfg.stop.max_rounds} reached"
    doc = _round_doc(
        c,
        r,
        state="done",
        stop_reason=reason,
        checkpoints=train_out["checkpoints"],
        promoted=promoted,
        finished_at=_now(),
    )
    for f in FIDELITIES:
        doc.fidelities[f].calibration_rho = calib[f]
    doc.fidelities["hf"].force_mae = new_mae
    doc.selection_reason["gate"] = {
        "old_hf_force_mae": old_mae,
        "new_hf_force_mae": new_mae,
        "margin": cfg.promotion_margin,
        "promoted": promoted,
    }
    with c.store() as store:
        store.upsert_round(doc)
    _stamp(c.dir, r, "end")
    c.state = c.state.model_copy(
        update={
            "round": r + 1,
            "checkpoints": checkpoints,
            "hf_force_mae": current_mae,
            "spent": spent,
            "state": "done" if reason else "running",
            "stop_reason": reason,
        }
    )
    c.save()
    return {
        "round": r,
        "stop": reason is not None,
        "reason": reason,
        "promoted": promoted,
        "hf_force_mae": new_mae,
    }


def _stamp(cd: CampaignDir, r: int, key: str) -> None:
    """Record the wall-clock time (s since the epoch) of ``key`` ("start"/"end") of round r in wall.json."""
    path = cd.round_dir(r) / "wall.json"
    data = read_json(path, {})
    data[key] = time.time()
    atomic_write_json(path, data)


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
