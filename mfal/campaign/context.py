"""The context of one campaign step: directory, config (parsed once), state, run options and the store (opened
once, on first use). Build it with ``with Campaign(root, options) as c:``; the store is closed on exit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mfal.campaign.artifacts import CheckpointRef, RoundDir
from mfal.campaign.config import CampaignConfig, load_config
from mfal.campaign.state import CampaignDir, CampaignState
from mfal.fidelity import Fidelities
from mfal.label.config import REF_ATOMS
from mfal.runopts import RunOptions


class Campaign:
    """A campaign directory with its config, state and store, for one step.

    ``options.device`` (auto|cpu|cuda[:N]) overrides the config's ``device`` and ``train.device``.
    """

    def __init__(self, root: str | Path, options: RunOptions | None = None):
        self.options = options or RunOptions()
        self.dir = CampaignDir(root)
        self.config: CampaignConfig = load_config(self.dir.config_path).with_options(self.options)
        self.state: CampaignState = self.dir.load_state()
        self._store: Any = None
        if self.config.train.threads:  # all torch work of the campaign (labels, scoring, MD, training)
            import torch

            torch.set_num_threads(self.config.train.threads)

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def fids(self) -> Fidelities:
        return self.config.fidelities

    @property
    def store(self) -> Any:
        """The campaign's FrameStore, opened on first use and kept open for the step."""
        if self._store is None:
            from mfal.store import open_store

            self._store = open_store(self.dir.root)
        return self._store

    def round(self, r: int) -> RoundDir:
        return self.dir.round(r)

    def save(self) -> None:
        self.dir.save_state(self.state)

    def round_frames(self, r: int) -> list[Any]:
        """FrameDocs labeled in round ``r`` (all statuses)."""
        return self.store.query_frames(campaign=self.name, round=r)

    def labeler(self, fidelity: str) -> Any:
        from mfal.label.config import build_labeler

        return build_labeler(self.config.labelers[fidelity], fidelities=self.config.fidelities)

    def cost_prior(self, fidelity: str) -> float:
        """Configured cost of one label of a 28-atom cell (core-seconds)."""
        return float(self.config.labelers[fidelity].prior_cost(REF_ATOMS, fidelity))

    def ref(self, path: str | Path, sha256: str) -> CheckpointRef:
        return CheckpointRef.from_path(path, sha256, self.dir.root)

    def ensemble(self, refs: Sequence[CheckpointRef], device: str | None = None) -> Any:
        """An ``MFEnsemble`` from checkpoint refs (sha256 checked) on ``device`` (default: the config's)."""
        return load_ensemble(self.dir.root, refs, device or self.device())

    def device(self) -> str:
        """The torch device for scoring, MD and evaluation (``cuda`` without a GPU -> ConfigError)."""
        from mfal.device import resolve_device

        return resolve_device(self.config.device)


def load_ensemble(root: str | Path, refs: Sequence[CheckpointRef], device: str = "cpu") -> Any:
    """An ``MFEnsemble`` of the checkpoints ``refs`` of campaign directory ``root`` (sha256 checked)."""
    from mfal.model import load_ensemble as load

    return load([(ref.path(root), ref.sha256) for ref in refs], device=device)


@contextlib.contextmanager
def progress_bar(show: bool, total: int, desc: str) -> Iterator[Any]:
    """A tqdm bar when ``show`` (the CLI asks for it), else a no-op object with ``update``."""
    if show and total:
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, leave=False) as bar:
            yield bar
    else:

        class _Null:
            def update(self, n: int = 1) -> None:
                pass

        yield _Null()


def now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)

