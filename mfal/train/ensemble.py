"""The one ensemble trainer: K members that differ by construction, for the campaign, ``mfal train`` and the
benchmarks.

Member ``i`` trains with seed ``seed + i`` (shuffling, scratch init, bootstrap) in ``out_dir/member_i``; a member
whose start weights are shared with an earlier member (the pretrained base, a shared warm start) gets a seeded
relative perturbation of its readout (``member_noise``), so warm-started members do not stay ≈ identical. The
base model is loaded once (members deep-copy it) and the graphs are built once for all members. Resumable: a
member whose ``done.json`` names an intact checkpoint is skipped, an interrupted one continues from its
``train_state.pt``. ``kind: heads`` trains one shared trunk and K readout heads (:mod:`mfal.train.heads`).

After training, identical members (one sha256) or a force spread ≈ 0 on a probe batch raise
:class:`DegenerateEnsembleError` — never a silent zero spread.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mfal.errors import ConfigError, MfalError
from mfal.fileio import atomic_write_json, read_json
from mfal.store.docs import FrameDoc
from mfal.train.build import build_model, check_layout, model_from_state
from mfal.train.config import TrainConfig
from mfal.train.data import FrameDataset
from mfal.train.state import STATE_FILE, load_train_state
from mfal.train.trainer import TrainResult, train_on_datasets

log = logging.getLogger(__name__)

DONE_FILE = "done.json"
DONE_FORMAT = "mfal-member/1"
#: second word of a member's bootstrap seed (``default_rng([member seed, BOOTSTRAP_STREAM])``)
BOOTSTRAP_STREAM = 7919


class EnsembleConfig(BaseModel):
    """Train K members (seeds seed..seed+K-1, optional bootstrap) — YAML section ``ensemble``."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(1, ge=1, description="number of members")
    bootstrap: bool = Field(False, description="each member trains on a bootstrap resample (per fidelity)")
    kind: Literal["independent", "heads"] = Field(
        "independent",
        description="independent: K full models; heads: one shared trunk (trained once) with K readout heads, "
        "each head trained on its bootstrap with the trunk frozen (scored with one trunk pass)",
    )
    head_epochs: int | None = Field(
        None, ge=1, description="heads: epochs of each extra head on the frozen trunk (None: train.epochs)"
    )
    member_noise: float = Field(
        0.01,
        ge=0,
        description="relative Gaussian noise (std = noise × |w|) on the readout of a member whose start weights "
        "equal an earlier member's (seeded by the member seed); 0 = off",
    )
    min_spread: float = Field(
        1e-4,
        ge=0,
        description="eV/Å: a trained ensemble whose max force std on the probe frames is below this is "
        "degenerate (DegenerateEnsembleError); 0 = only identical weights are an error",
    )


class DegenerateEnsembleError(MfalError):
    """The trained members are identical (one sha256) or their spread is ≈ 0: uncertainty would be a silent
    zero."""


#: frames of the spread probe (validation frames first, then training frames)
PROBE_FRAMES = 4


def member_dir(out_dir: str | Path, i: int) -> Path:
    """Directory of member ``i``: ``out_dir/member_i``."""
    return Path(out_dir) / f"member_{i}"


def bootstrap_indices(fidelities: Sequence[str], seed: int) -> list[int]:
    """A bootstrap resample of positions ``0..n-1``, drawn per fidelity with replacement (seeded).

    Each fidelity keeps its frame count, so no member loses all frames of the (few) target-fidelity labels.
    """
    rng = np.random.default_rng([seed, BOOTSTRAP_STREAM])
    out: list[int] = []
    for fid in dict.fromkeys(fidelities):
        pos = [i for i, f in enumerate(fidelities) if f == fid]
        out += [pos[j] for j in rng.integers(0, len(pos), size=len(pos))]
    return out


def _file_sha256(path: Path) -> str:
    from mfal.model.mfchgnet import file_sha256

    return file_sha256(path)


def load_done(directory: Path) -> TrainResult | None:
    """The result recorded in ``directory/done.json`` if its checkpoint is intact, else None (train again)."""
    done = read_json(directory / DONE_FILE)
    if not isinstance(done, dict) or "sha256" not in done:
        return None
    ckpt = directory / str(done.get("checkpoint") or done.get("path") or "model.pt")
    if not ckpt.is_file() or _file_sha256(ckpt) != done["sha256"]:
        log.warning("%s: checkpoint %s missing or changed; training the member again", directory, ckpt)
        return None
    metrics = {
        fid: {k: float("nan") if v is None else float(v) for k, v in m.items()}
        for fid, m in (done.get("metrics") or {}).items()
    }
    return TrainResult(
        model=None,
        metrics=metrics,
        history=[],
        best_epoch=int(done.get("best_epoch", -1)),
        checkpoint=ckpt,
        sha256=done["sha256"],
        stopped_early=bool(done.get("stopped_early", False)),
        extra={"skipped": True, "seed": done.get("seed")},
    )


def resume_point(mdir: Path | None, config: TrainConfig, what: str) -> tuple[TrainResult | None, Any]:
    """Where member dir ``mdir`` stands: ``(result, None)`` when it holds a finished run (its config set to
    ``config``), else ``(None, saved train state or None)``."""
    if mdir is None:
        return None, None
    done = load_done(mdir)
    if done is not None:
        done.config = config
        log.info("%s: done (%s), skipped", what, done.checkpoint)
        return done, None
    return None, load_train_state(mdir / STATE_FILE) if (mdir / STATE_FILE).is_file() else None


def _write_done(directory: Path, res: TrainResult, seed: int) -> None:
    if res.checkpoint is None:  # trained without out_dir: nothing to record
        return
    atomic_write_json(
        directory / DONE_FILE,
        {
            "format": DONE_FORMAT,
            "checkpoint": res.checkpoint.name,  # relative: the directory can move
            "sha256": res.sha256,
            "metrics": res.metrics,
            "best_epoch": res.best_epoch,
            "stopped_early": res.stopped_early,
            "seed": seed,
        },
    )


def train_ensemble(
    frames_train: Sequence[FrameDoc] | FrameDataset,
    frames_val: Sequence[FrameDoc] | FrameDataset,
    config: TrainConfig,
    ensemble: EnsembleConfig,
    *,
    out_dir: str | Path | None = None,
    seed: int,
    warm_starts: Sequence[tuple[str | Path, str]] | None = None,
    progress: bool = False,
    on_member_done: Callable[[int, TrainResult], None] | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[TrainResult]:
    """Train ``ensemble.k`` members; returns their results in member order.

    - member ``i``: ``config`` with ``seed = seed + i``; with ``ensemble.bootstrap`` a per-fidelity bootstrap
      resample of the training frames (:func:`bootstrap_indices`); validation frames are shared;
    - start: ``warm_starts[i % len(warm_starts)]`` (checkpoint path, sha256) if given (e.g. last round's
      members; sha256 checked), else ``config.warm_start``: the pretrained / checkpoint base is loaded once and
      deep-copied per member, ``scratch`` members are initialised from their own seed;
    - graphs are built once (frames may also be given as prepared :class:`FrameDataset` s);
    - with ``out_dir``: member ``i`` writes ``out_dir/member_i`` (``model.pt``, ``train_state.pt``,
      ``metrics.json``, then ``done.json``). On a rerun a member with an intact ``done.json`` is skipped (its
      result has ``model=None``, ``extra["skipped"] = True``; load it from ``checkpoint``), an interrupted one
      resumes from ``train_state.pt``.

    ``on_member_done(i, result)`` runs after member ``i`` is trained and its ``done.json`` written (not for
    skipped members); ``on_epoch(i, row)`` after every epoch of member ``i``.
    """
    k = ensemble.k
    if warm_starts is not None and not warm_starts:
        raise ConfigError("warm_starts: got an empty list; give None or at least one (path, sha256)")
    out = Path(out_dir) if out_dir is not None else None
    base: list[Any] = []  # the loaded base model (at most one load)
    loaded: dict[str, Any] = {}  # warm-start checkpoints by sha256
    datasets: list[FrameDataset] = []
    starts_used: set[str] = set()  # start weights already given to an earlier member

    def member_config(i: int) -> TrainConfig:
        return config.model_copy(update={"seed": seed + i})

    def start_model(i: int, cfg: TrainConfig) -> Any:
        from mfal.model.ensemble import perturb_readout

        if warm_starts is not None:
            path, sha = warm_starts[i % len(warm_starts)]
            if sha not in loaded:
                from mfal.model import MFCHGNet

                loaded[sha] = MFCHGNet.load(path, sha256=sha)
                check_layout(loaded[sha], cfg, where=f"warm start {path}")
            model, key = copy.deepcopy(loaded[sha]), sha
        elif cfg.warm_start == "scratch":
            return build_model(cfg)  # seeded random init: members differ from the start
        else:
            if not base:
                base.append(build_model(cfg))
            model, key = copy.deepcopy(base[0]), "base"
        if key in starts_used:  # same start as an earlier member: differ by construction
            perturb_readout(model, ensemble.member_noise, cfg.seed)
        starts_used.add(key)
        return model

    def prepared(model: Any) -> tuple[FrameDataset, FrameDataset]:
        if not datasets:
            for frames in (frames_train, frames_val):
                if isinstance(frames, FrameDataset):
                    datasets.append(frames)
                else:
                    datasets.append(
                        FrameDataset.build(
                            list(frames), model, magnetic_fidelities=config.magnetic_fidelities
                        )
                    )
        return datasets[0], datasets[1]

    if ensemble.kind == "heads" and k > 1:
        from mfal.train.heads import train_heads

        results = train_heads(
            start_model, prepared, config, ensemble, out_dir=out, seed=seed, progress=progress,
            on_member_done=on_member_done, on_epoch=on_epoch,
        )
        check_ensemble(results, datasets, config, ensemble)
        return results

    results: list[TrainResult] = []
    for i in range(k):
        cfg = member_config(i)
        mdir = member_dir(out, i) if out is not None else None
        done, state = resume_point(mdir, cfg, f"ensemble member {i}")
        if done is not None:
            results.append(done)
            continue
        if state is not None:
            model = model_from_state(state)
            log.info("ensemble member %d: resuming from %s", i, mdir / STATE_FILE)
        else:
            model = start_model(i, cfg)
        train, val = prepared(model)
        if ensemble.bootstrap:
            train = train.subset(bootstrap_indices(train.fidelities, cfg.seed))
        cb = (lambda row, _i=i: on_epoch(_i, row)) if on_epoch is not None else None
        res = train_on_datasets(
            model, train, val, cfg, out_dir=mdir, resume=state, progress=progress, callback=cb
        )
        res.extra["seed"] = cfg.seed
        if mdir is not None:
            _write_done(mdir, res, cfg.seed)
        results.append(res)
        if on_member_done is not None:
            on_member_done(i, res)
    check_ensemble(results, datasets, config, ensemble)
    return results


def _member_model(res: TrainResult) -> Any:
    if res.model is not None:
        return res.model
    from mfal.model import MFCHGNet

    return MFCHGNet.load(res.checkpoint, sha256=res.sha256)


def check_ensemble(
    results: Sequence[TrainResult],
    datasets: Sequence[FrameDataset],
    config: TrainConfig,
    ensemble: EnsembleConfig,
) -> float | None:
    """Raise :class:`DegenerateEnsembleError` if members share a sha256, or if the ensemble's max force std
    (eV/Å, target fidelity) on up to :data:`PROBE_FRAMES` validation/training frames is below
    ``ensemble.min_spread``. Returns that probe spread (None for one member or no frames)."""
    if len(results) < 2:
        return None
    shas = [r.sha256 for r in results if r.sha256 is not None]
    groups: dict[str, int] = {}
    for sha in shas:
        groups[sha] = groups.get(sha, 0) + 1
    worst = max(groups.items(), key=lambda kv: kv[1]) if groups else ("", 1)
    if worst[1] > 1:
        raise DegenerateEnsembleError(
            f"ensemble: {worst[1]} of {len(results)} members have identical weights (sha256 {worst[0][:12]}…): "
            "they started from the same weights and saw the same frames in the same order (e.g. 1 frame per "
            "fidelity + bootstrap, the same seed, member_noise 0); add frames, set ensemble.member_noise > 0 "
            "or use distinct seeds"
        )
    probe = _probe(datasets)
    if probe is None:
        return None
    from mfal.model.ensemble import MFEnsemble

    structures, graphs = probe
    models = [_member_model(r) for r in results]
    pred = MFEnsemble(models).predict_with_uncertainty(
        structures, config.target_fidelity, graphs=graphs, batch_size=len(graphs)
    )
    spread = float(np.max(pred["force_std_max"]))
    if not spread >= ensemble.min_spread:  # NaN too
        raise DegenerateEnsembleError(
            f"ensemble: the {len(results)} members' force spread on {len(graphs)} probe frames is "
            f"{spread:.2e} eV/Å < ensemble.min_spread {ensemble.min_spread:.1e}: members are ≈ identical "
            "(same start, too little data to differ); raise ensemble.member_noise or add frames"
        )
    log.info("ensemble: %d members, probe force spread %.3g eV/Å", len(results), spread)
    return spread


def _probe(datasets: Sequence[FrameDataset]) -> tuple[list[Any], list[Any]] | None:
    """(structures, graphs) of the first :data:`PROBE_FRAMES` frames: validation first, then training."""
    structures: list[Any] = []
    graphs: list[Any] = []
    for ds in reversed(list(datasets)):  # datasets = [train, val]
        for j in range(len(ds)):
            if len(graphs) >= PROBE_FRAMES:
                break
            graphs.append(ds.graphs[j])
            structures.append(ds.structures[j] if ds.structures else None)
    return (structures, graphs) if graphs else None
