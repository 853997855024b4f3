"""One training run of the science benchmark: the shared labeled pool (graphs built once), training through
:func:`mfal.train.ensemble.train_ensemble`, and the HF test metrics through :func:`mfal.train.evaluate`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mfal.bench.science_config import ScienceConfig, train_config
from mfal.bench.science_data import SPLITS, SciencePool
from mfal.bench.science_results import METRICS
from mfal.errors import ConfigError

log = logging.getLogger(__name__)


class Context:
    """Pool + one shared FrameDataset (graphs built once for every run) + index maps by split and fidelity."""

    def __init__(self, pool: SciencePool, config: ScienceConfig, progress: bool) -> None:
        from mfal.model import MFCHGNet
        from mfal.train.data import FrameDataset

        self.pool, self.config, self.progress = pool, config, progress
        self.fids = config.fidelities
        frames = [f for it in pool.items for f in it.frames.values()]
        # the graph converter is the same for every CHGNet model
        graph_model = MFCHGNet(
            fidelities=self.fids.names, components="", magnetic_fidelities=self.fids.magnetic
        )
        t0 = time.perf_counter()
        self.ds = FrameDataset.build(frames, graph_model)
        self.graph_time = time.perf_counter() - t0
        pos = {fid: i for i, fid in enumerate(self.ds.frame_ids)}
        self.index = {
            split: {f: [pos[fr.frame_id] for fr in pool.frames(split, f)] for f in self.fids.names}
            for split in SPLITS
        }
        self.cost = {f: [fr.cost for fr in pool.frames("pool", f)] for f in self.fids.names}
        self._descriptors: np.ndarray | None = None
        if not self.index["pool"][self.fids.high]:
            raise ConfigError(f"the pool has no {self.fids.high} frames")

    @property
    def high(self) -> str:
        """The target fidelity (HF)."""
        return self.fids.high

    def pool_target(self) -> list[int]:
        """Dataset positions of the pool's target-fidelity (HF) frames."""
        return self.index["pool"][self.high]

    def hf_order(self, seed: int) -> list[int]:
        """Seeded random order of the pool's HF frames (positions into :meth:`pool_target`)."""
        n = len(self.pool_target())
        return [int(i) for i in np.random.default_rng([seed, 11]).permutation(n)]

    def lf_train(self) -> list[int]:
        """Dataset positions of the low-fidelity pool frames every MF/TL run trains on (capped by lf_max)."""
        lf = self.index["pool"][self.fids.low]
        return lf if self.config.lf_max is None else lf[: self.config.lf_max]

    def pool_descriptors(self) -> np.ndarray:
        """Structure descriptors of the pool's HF frames (for diversity in selection), computed once."""
        if self._descriptors is None:
            from mfal.acquire.diversity import descriptors

            self._descriptors = descriptors([self.ds.structures[i] for i in self.pool_target()])
        return self._descriptors


def train_models(
    ctx: Context, method: str, start: str, seed: int, hf_idx: Sequence[int], *, k: int = 1
) -> tuple[list[Any], dict[str, Any]]:
    """Train ``k`` members (seeds seed..seed+k-1) of ``method`` on HF frames ``hf_idx`` (dataset positions) +
    the pool's LF frames (MF/TL); early stopping on the HF validation frames. Returns (models, info)."""
    from mfal.train.ensemble import EnsembleConfig, train_ensemble

    cfg = train_config(ctx.config, method, start, seed)
    train_idx = list(hf_idx) + (ctx.lf_train() if cfg.mode != "sf" else [])
    t0 = time.perf_counter()
    results = train_ensemble(
        ctx.ds.subset(train_idx),
        ctx.ds.subset(ctx.index["val"][ctx.high]),
        cfg,
        EnsembleConfig(k=k),
        seed=seed,
    )
    first = results[0]
    info = {
        "time_s": time.perf_counter() - t0,
        "best_epoch": first.best_epoch,
        "epochs_run": len(first.history),
        "n_lf": len(train_idx) - len(hf_idx),
    }
    return [r.model for r in results], info


def hf_test_metrics(ctx: Context, model: Any) -> dict[str, float]:
    """MAE of ``model`` on the HF test frames (energy meV/atom, forces meV/Å, stress GPa, moments μB)."""
    from mfal.train.evaluate import evaluate

    out = evaluate(model, ctx.ds.subset(ctx.index["test"][ctx.high]), batch_size=16)
    return {k: float(out[ctx.high][k]) for k in METRICS}


def run_point(ctx: Context, method: str, start: str, n_hf: int, seed: int) -> dict[str, Any]:
    """One learning-curve point: ``method`` on the first ``n_hf`` HF frames of the seeded order."""
    pool_hf = ctx.pool_target()
    hf_idx = [pool_hf[i] for i in ctx.hf_order(seed)[:n_hf]]
    (model,), info = train_models(ctx, method, start, seed, hf_idx)
    row = {
        "method": method,
        "start": start,
        "n_hf": n_hf,
        "seed": seed,
        **hf_test_metrics(ctx, model),
        **info,
    }
    log.info("science %s/%s n_hf=%d seed=%d: F %.1f meV/Å", start, method, n_hf, seed, row["f_mae_mev_ang"])
    return row
