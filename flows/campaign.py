"""The active-learning campaign as jobflow jobs and Makers: thin wrappers over the round of
:mod:`mfal.campaign.round` (the one place the order of the steps is written).

One round = explore -> score -> select -> label <f> (one job per fidelity) -> train ensemble -> evaluate ->
decide; the round is a recursive job that returns ``Response(replace=Flow([...], output=decide.output))`` and
the recursion ends when the stop rule fires. Each step job runs one :class:`mfal.campaign.round.Step` and
returns its typed artifact (Candidates, RoundScores, Selection, TrainOutput, Evaluation); frames live in the
store, checkpoints travel as relative CheckpointRefs. Job names start with the step's name ("label lf",
"train ensemble", ...) so cluster submission can route them to queues. Run options (device, progress) are
carried by the Makers and passed to every job explicitly (``options`` keyword of each step job).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import Flow, Maker, Response, job

from mfal.campaign.artifacts import Evaluation
from mfal.campaign.prepare import prepare
from mfal.campaign.round import round_stages, step_by_name
from mfal.campaign.state import CampaignDir
from mfal.fidelity import DEFAULT, Fidelities
from mfal.runopts import RunOptions


@job
def step_job(
    campaign_dir: str,
    round: int,
    step: str,
    options: RunOptions,
    fidelities: Fidelities = DEFAULT,
    after: Any = None,
) -> Any:
    """Run the round step ``step`` (e.g. ``"label hf"``); ``after``: outputs of the previous stage (evaluate
    takes the train output from it, the others only wait for it)."""
    return step_by_name(step, fidelities)(campaign_dir, round, options, list(after or []))


@dataclass
class RoundMaker(Maker):
    """One campaign round; its job replaces itself by the round's steps and the next round.

    ``options`` (device auto|cpu|cuda[:N] overriding the config's ``device``/``train.device``, progress bars)
    go to every step job; the device is resolved where the job runs, so a GPU job may be built on a login node
    without one.
    """

    name: str = "campaign round"
    options: RunOptions = field(default_factory=RunOptions)
    fidelities: Fidelities = field(default_factory=Fidelities)  # the campaign config's (set by campaign_flow)

    def make(self, campaign_dir: str | Path, round: int = 0) -> Any:
        return round_job(str(campaign_dir), round, maker=self)


@job
def round_job(campaign_dir: str, round: int, maker: RoundMaker) -> Response:
    """Expand round ``round`` into its step jobs (stages in order); the last decides whether the next follows."""
    jobs: list[Any] = []
    previous: list[Any] | None = None
    for stage in round_stages(maker.fidelities):
        stage_jobs = []
        for step in stage:
            opts = step.options_for(maker.options)  # the device only where the model runs (queue routing)
            j = step_job(campaign_dir, round, step.name, options=opts, fidelities=maker.fidelities, after=previous)
            j.name = f"{step.name} r{round}"
            stage_jobs.append(j)
        jobs.extend(stage_jobs)
        previous = [j.output for j in stage_jobs]
    nxt = next_round_job(campaign_dir, round, jobs[-1].output, maker)
    nxt.name = f"decide r{round}"
    return Response(replace=Flow([*jobs, nxt], output=nxt.output, name=f"round {round}"))


@job
def next_round_job(campaign_dir: str, round: int, evaluation: Evaluation, maker: RoundMaker) -> Any:
    """End the recursion when the stop rule fired, else replace this job by the next round."""
    if evaluation.stop:
        return {"last_round": round, "stop_reason": evaluation.reason}
    nxt = maker.make(campaign_dir, round + 1)
    nxt.name = f"campaign round {round + 1}"
    return Response(replace=Flow([nxt], output=nxt.output))


@dataclass
class CampaignMaker(Maker):
    """The whole campaign from the round the state file says is next (0 for a new campaign)."""

    name: str = "campaign"
    round_maker: RoundMaker = field(default_factory=RoundMaker)

    def make(self, campaign_dir: str | Path) -> Flow:
        cd = CampaignDir(campaign_dir)
        state = cd.load_state()
        first = self.round_maker.make(str(cd.root), state.round)
        first.name = f"campaign round {state.round}"
        return Flow([first], output=first.output, name=f"{self.name} {state.campaign}")


def _options(options: RunOptions | None, progress: bool, device: str | None) -> RunOptions:
    """``options``, or one built from the ``progress``/``device`` keywords (an unknown device name is a
    ConfigError naming it, before anything is written)."""
    if options is not None:
        return options
    from pydantic import ValidationError

    from mfal.errors import ConfigError
    from mfal.runopts import check_device_name

    if device is not None:
        check_device_name(device)
    try:
        return RunOptions(device=device, progress=progress)
    except ValidationError as err:  # pragma: no cover - check_device_name raised first
        raise ConfigError(str(err.errors()[0]["msg"])) from None


def campaign_flow(
    config: str | Path,
    run_dir: str | Path,
    *,
    options: RunOptions | None = None,
    progress: bool = False,
    device: str | None = None,
) -> Flow:
    """Validate ``config`` and every input, set up (or resume) the campaign in ``run_dir`` and return its flow.

    Used by ``mfal submit`` (FireWorks / SLURM). ``options`` (or ``progress``/``device``) go to every job;
    device *names* are checked here, CUDA availability where the jobs run.
    """
    opts = _options(options, progress, device)
    cfg = prepare(config, run_dir, opts, check_devices_here=False)
    return CampaignMaker(round_maker=RoundMaker(options=opts, fidelities=cfg.fidelities)).make(run_dir)


def run_campaign(
    config: str | Path,
    run_dir: str | Path,
    *,
    options: RunOptions | None = None,
    progress: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the campaign locally with jobflow; returns the final state as a dict.

    Every input, including CUDA availability for the requested device, is checked before any work."""
    import os
    import tempfile

    from jobflow.managers.local import run_locally

    opts = _options(options, progress, device)
    cd = CampaignDir(run_dir)
    cfg = prepare(config, run_dir, opts)
    state = cd.load_state()
    if state.state in ("done", "stopped"):
        return state.model_dump(mode="json")
    flow = CampaignMaker(round_maker=RoundMaker(options=opts, fidelities=cfg.fidelities)).make(cd.root)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="jobflow-", dir=cd.root) as tmp:
        try:
            run_locally(flow, root_dir=tmp, ensure_success=True, raise_immediately=True, log=False)
        finally:
            os.chdir(cwd)
    return cd.load_state().model_dump(mode="json")
