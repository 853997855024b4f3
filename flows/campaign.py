"""The active-learning campaign as jobflow jobs and Makers (thin wrappers over :mod:`mfal.campaign.steps`).

One round = explore -> score -> select -> label LF | label HF -> train ensemble -> evaluate -> next round; the
round is a recursive job that returns ``Response(replace=Flow([...], output=next_round.output))`` and the
recursion ends when the stop rule fires. Jobs pass only the campaign directory, the round number and small
summaries; checkpoints travel as ``{"path", "sha256"}`` references, frames live in the store. Job names start with
the stage ("label lf", "train ensemble", ...) so cluster submission can route them to queues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import Flow, Maker, Response, job

from mfal.campaign import steps


@job
def explore_job(
    campaign_dir: str, round: int, progress: bool = False, device: str | None = None
) -> dict[str, Any]:
    """Generate round candidates (``device``: MD device overriding the config, see ``RoundMaker.device``)."""
    return steps.explore_round(campaign_dir, round, progress=progress, device=device)


@job
def score_job(
    campaign_dir: str, round: int, after: Any = None, progress: bool = False, device: str | None = None
) -> dict[str, Any]:
    """Ensemble scores per fidelity (``after``: output of the previous step, for ordering only)."""
    return steps.score_round(campaign_dir, round, progress=progress, device=device)


@job
def select_job(campaign_dir: str, round: int, after: Any = None, progress: bool = False) -> dict[str, Any]:
    """Budgeted per-fidelity selection."""
    return steps.select_round(campaign_dir, round, progress=progress)


@job
def label_job(
    campaign_dir: str, round: int, fidelity: str, after: Any = None, progress: bool = False
) -> dict[str, Any]:
    """Label the picks of one fidelity and store them."""
    return steps.label_round(campaign_dir, round, fidelity, progress=progress)


@job
def train_job(
    campaign_dir: str, round: int, after: Any = None, progress: bool = False, device: str | None = None
) -> dict[str, Any]:
    """Failed-ratio guard, then train the ensemble; returns checkpoint references."""
    return steps.train_round(campaign_dir, round, progress=progress, device=device)


@job
def evaluate_job(
    campaign_dir: str,
    round: int,
    train_out: dict[str, Any],
    progress: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Validation gate, calibration, RoundDoc, stop decision."""
    return steps.evaluate_round(campaign_dir, round, train_out, progress=progress, device=device)


@dataclass
class RoundMaker(Maker):
    """One campaign round; its job replaces itself by the round's steps and the next round.

    ``device`` (auto|cpu|cuda) overrides the config's ``device``/``train.device`` in the explore, score, train and
    evaluate jobs; None leaves it to ``$MFAL_DEVICE`` (set by SLURM GPU/train jobs) or the config. It is resolved
    where the job runs, so a GPU job may be built on a login node without one.
    """

    name: str = "campaign round"
    progress: bool = False
    device: str | None = None
    fidelities: tuple[str, ...] = field(default=("lf", "hf"))

    def make(self, campaign_dir: str | Path, round: int = 0) -> Any:
        return round_job(str(campaign_dir), round, maker=self)


@job
def round_job(campaign_dir: str, round: int, maker: RoundMaker) -> Response:
    """Expand round ``round`` into its steps; the last one decides whether the next round follows."""
    p, dev = maker.progress, maker.device
    ex = explore_job(campaign_dir, round, progress=p, device=dev)
    ex.name = f"explore r{round}"
    sc = score_job(campaign_dir, round, after=ex.output, progress=p, device=dev)
    sc.name = f"score r{round}"
    se = select_job(campaign_dir, round, after=sc.output, progress=p)
    se.name = f"select r{round}"
    labels = []
    for fid in maker.fidelities:
        lj = label_job(campaign_dir, round, fid, after=se.output, progress=p)
        lj.name = f"label {fid} r{round}"
        labels.append(lj)
    tr = train_job(campaign_dir, round, after=[lj.output for lj in labels], progress=p, device=dev)
    tr.name = f"train ensemble r{round}"
    ev = evaluate_job(campaign_dir, round, tr.output, progress=p, device=dev)
    ev.name = f"evaluate r{round}"
    nxt = next_round_job(campaign_dir, round, ev.output, maker)
    nxt.name = f"decide r{round}"
    return Response(
        replace=Flow([ex, sc, se, *labels, tr, ev, nxt], output=nxt.output, name=f"round {round}")
    )


@job
def next_round_job(campaign_dir: str, round: int, evaluation: dict[str, Any], maker: RoundMaker) -> Any:
    """End the recursion when the stop rule fired, else replace this job by the next round."""
    if evaluation.get("stop"):
        return {"last_round": round, "stop_reason": evaluation.get("reason")}
    nxt = maker.make(campaign_dir, round + 1)
    nxt.name = f"campaign round {round + 1}"
    return Response(replace=Flow([nxt], output=nxt.output))


@dataclass
class CampaignMaker(Maker):
    """The whole campaign from the round the state file says is next (0 for a new campaign)."""

    name: str = "campaign"
    round_maker: RoundMaker = field(default_factory=RoundMaker)

    def make(self, campaign_dir: str | Path) -> Flow:
        from mfal.campaign.state import CampaignDir

        state = CampaignDir(campaign_dir).load_state()
        first = self.round_maker.make(str(CampaignDir(campaign_dir).root), state.round)
        first.name = f"campaign round {state.round}"
        return Flow([first], output=first.output, name=f"{self.name} {state.campaign}")


def campaign_flow(
    config: str | Path, run_dir: str | Path, *, progress: bool = False, device: str | None = None
) -> Flow:
    """Validate ``config``, set up (or resume) the campaign in ``run_dir`` and return its flow.

    Used by ``mfal submit`` (FireWorks / SLURM). ``device`` (auto|cpu|cuda) overrides the config's
    ``device``/``train.device`` for exploration MD, scoring, training and evaluation (see ``RoundMaker.device``);
    None leaves it to ``$MFAL_DEVICE`` or the config. An unknown name is a ConfigError before anything is written.
    """
    steps.device_override(device)  # validate the name only; CUDA is checked where the job runs
    steps.prepare(config, run_dir)
    return CampaignMaker(round_maker=RoundMaker(progress=progress, device=device)).make(run_dir)


def run_campaign(
    config: str | Path, run_dir: str | Path, *, progress: bool = False, device: str | None = None
) -> dict[str, Any]:
    """Run (or resume) the campaign locally with jobflow; returns the final state as a dict.

    ``device`` as in :func:`campaign_flow`."""
    import os
    import tempfile

    from jobflow.managers.local import run_locally

    from mfal.campaign.state import CampaignDir

    cd = CampaignDir(run_dir)
    steps.device_override(device)
    steps.prepare(config, run_dir)
    state = cd.load_state()
    if state.state in ("done", "stopped"):
        return state.model_dump(mode="json")
    flow = CampaignMaker(round_maker=RoundMaker(progress=progress, device=device)).make(cd.root)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="jobflow-", dir=cd.root) as tmp:
        try:
            run_locally(flow, root_dir=tmp, ensure_success=True, raise_immediately=True, log=False)
        finally:
            os.chdir(cwd)
    return cd.load_state().model_dump(mode="json")
