"""Shared-trunk ensemble training (``ensemble.kind: heads``): one trunk trained once, K readout heads.

Member 0 is trained like an independent member (trunk + its head, all training frames, warm start as usual):
that is the trunk. Member ``i >= 1`` is a copy of it whose head (readouts, AtomRef) starts from member 0's
trained head plus a seeded relative perturbation (``member_noise``, seed + i) and is trained on its own
per-fidelity bootstrap of the training frames for ``head_epochs`` epochs with every trunk weight frozen. The
saved members therefore have bitwise identical trunks, so :func:`mfal.model.load_ensemble` restores them as a
shared-trunk ensemble and :func:`mfal.uncertainty.score_candidates` runs the trunk once for all K heads.

Resumable like the independent members (``out_dir/member_i/done.json``, ``train_state.pt``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfal.errors import DataError
from mfal.train.build import model_from_state
from mfal.train.config import TrainConfig
from mfal.train.data import FrameDataset
from mfal.train.trainer import TrainResult, train_on_datasets

if TYPE_CHECKING:
    from mfal.train.ensemble import EnsembleConfig

log = logging.getLogger(__name__)


def train_heads(
    start_model: Callable[[int, TrainConfig], Any],
    prepared: Callable[[Any], tuple[FrameDataset, FrameDataset]],
    config: TrainConfig,
    ensemble: EnsembleConfig,
    *,
    out_dir: Path | None,
    seed: int,
    progress: bool = False,
    on_member_done: Callable[[int, TrainResult], None] | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[TrainResult]:
    """Train the trunk (member 0) then K-1 heads on it (see the module docstring); results in member order.

    ``start_model(i, cfg)`` gives member i's start weights, ``prepared(model)`` the (train, val) datasets
    (graphs built once) — both from :func:`mfal.train.ensemble.train_ensemble`.
    """
    from mfal.model.ensemble import MFEnsemble, freeze_trunk, perturb_readout
    from mfal.train.ensemble import _write_done, bootstrap_indices, member_dir, resume_point

    results: list[TrainResult] = []
    trunk: list[Any] = []  # member 0's trained model

    def trunk_model() -> Any:
        if not trunk:
            res = results[0]
            if res.model is not None:
                trunk.append(res.model)
            else:
                from mfal.model import MFCHGNet

                trunk.append(MFCHGNet.load(res.checkpoint, sha256=res.sha256))
        return trunk[0]

    for i in range(ensemble.k):
        cfg = config.model_copy(update={"seed": seed + i})
        if i > 0:
            cfg = cfg.model_copy(update={"epochs": ensemble.head_epochs or config.epochs})
        mdir = member_dir(out_dir, i) if out_dir is not None else None
        done, state = resume_point(mdir, cfg, f"ensemble head {i}")
        if done is not None:
            results.append(done)
            continue
        if i == 0:
            model = model_from_state(state) if state is not None else start_model(0, cfg)
            train, val = prepared(model)
        else:
            base = trunk_model()
            train, val = prepared(base)
            if state is not None:
                model = model_from_state(state)
            else:
                model = copy.deepcopy(base)
                perturb_readout(model, ensemble.member_noise, cfg.seed)
            freeze_trunk(model)
            if ensemble.bootstrap:
                train = train.subset(bootstrap_indices(train.fidelities, cfg.seed))
        cb = (lambda row, _i=i: on_epoch(_i, row)) if on_epoch is not None else None
        try:
            res = train_on_datasets(
                model, train, val, cfg, out_dir=mdir, resume=state, progress=progress, callback=cb
            )
        finally:
            freeze_trunk(model, frozen=False)
        res.extra["seed"] = cfg.seed
        res.extra["head"] = i > 0
        if mdir is not None:
            _write_done(mdir, res, cfg.seed)
        results.append(res)
        if i == 0:
            trunk.append(res.model)
        if on_member_done is not None:
            on_member_done(i, res)
    models = [r.model for r in results]
    if all(m is not None for m in models) and not MFEnsemble(models).shared_trunk:
        raise DataError("heads ensemble: the trained heads do not share member 0's trunk (internal error)")
    return results
