"""One campaign round, seen whole. The order is written once, here; ``run_round`` runs it in this process and
``flows.campaign`` turns the same steps into jobflow jobs.

    explore   mfal.campaign.explore.explore_round   -> Candidates   (mfal.explore.explore)
    score     mfal.campaign.score.score_round       -> RoundScores  (promoted ensemble; none in round 0)
    select    mfal.campaign.select.select_round     -> Selection    (policy.budget_left, mfal.acquire.select)
    label <f> mfal.campaign.label.label_round       -> counts       (one per fidelity, independent)
    train     mfal.campaign.train.train_round       -> TrainOutput  (policy.failed_ratio/failed_guard, ensemble)
    evaluate  mfal.campaign.evaluate.evaluate_round -> Evaluation   (policy.promote, calibration,
                                                                     policy.stop_reason, policy.round_doc)

Each step takes ``(root, r, options)`` (label also the fidelity, evaluate the train output), loads the round's
artifacts through :class:`~mfal.campaign.artifacts.RoundDir`, and skips work whose result is already saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfal.campaign.artifacts import Evaluation
from mfal.campaign.evaluate import evaluate_round
from mfal.campaign.explore import explore_round
from mfal.campaign.label import label_round
from mfal.campaign.score import score_round
from mfal.campaign.select import select_round
from mfal.campaign.state import CampaignDir
from mfal.campaign.train import train_round
from mfal.fidelity import Fidelities
from mfal.runopts import RunOptions


@dataclass(frozen=True)
class Step:
    """One step of a round. ``name`` starts every job name (cluster queues are routed by it); ``fidelity`` is
    passed to per-fidelity steps; ``takes_previous``: the step gets the previous stage's (single) output;
    ``torch``: the step runs the model (explore MD, score, train, evaluate) and gets the device override."""

    name: str
    run: Callable[..., Any]
    fidelity: str | None = None
    takes_previous: bool = False
    torch: bool = False

    def options_for(self, options: RunOptions) -> RunOptions:
        """``options`` without the device for steps that do not run the model (select, label)."""
        return options if self.torch else options.model_copy(update={"device": None})

    def __call__(self, root: str | Path, r: int, options: RunOptions, previous: Sequence[Any] = ()) -> Any:
        args: list[Any] = [root, r]
        if self.fidelity is not None:
            args.append(self.fidelity)
        if self.takes_previous:
            args.append(previous[0])
        return self.run(*args, self.options_for(options))


def round_stages(fidelities: Fidelities) -> list[list[Step]]:
    """The round as stages run in order; the steps of one stage are independent (jobs may run in parallel)."""
    return [
        [Step("explore", explore_round, torch=True)],
        [Step("score", score_round, torch=True)],
        [Step("select", select_round)],
        [Step(f"label {f}", label_round, fidelity=f) for f in fidelities.names],
        [Step("train ensemble", train_round, torch=True)],
        [Step("evaluate", evaluate_round, takes_previous=True, torch=True)],
    ]


def step_by_name(name: str, fidelities: Fidelities) -> Step:
    """The step called ``name`` (e.g. ``"label hf"``)."""
    for stage in round_stages(fidelities):
        for step in stage:
            if step.name == name:
                return step
    raise KeyError(f"no round step {name!r}")


def run_round(root: str | Path, r: int, options: RunOptions | None = None) -> Evaluation:
    """Run round ``r`` of the campaign in ``root`` step by step in this process (same order as the flow)."""
    from mfal.campaign.config import load_config

    options = options or RunOptions()
    fids = load_config(CampaignDir(root).config_path).fidelities
    previous: list[Any] = []
    for stage in round_stages(fids):
        previous = [step(root, r, options, previous) for step in stage]
    return previous[0]
