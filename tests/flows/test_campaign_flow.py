"""The campaign as jobflow objects: Makers are data, a round expands into its steps, the recursion ends on stop,
and the flow converts to a FireWorks workflow / routes to cluster queues by job name (no job is executed here)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from jobflow import Flow, Response

from flows.campaign import CampaignMaker, RoundMaker, campaign_flow, next_round_job, round_job
from mfal.campaign.artifacts import Evaluation
from mfal.runopts import RunOptions


@pytest.fixture
def campaign_dir(tmp_path: Path) -> Path:
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s.to(filename=str(tmp_path / "cell.cif"))
    demo = yaml.safe_load((Path(__file__).parents[2] / "configs" / "demo.yaml").read_text())
    demo["start_structures"] = [{"path": "cell.cif"}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(demo))
    return tmp_path


def test_campaign_flow_starts_at_the_state_round(campaign_dir):
    flow = campaign_flow(campaign_dir / "c.yaml", campaign_dir / "run")
    assert isinstance(flow, Flow) and [j.name for j in flow.jobs] == ["campaign round 0"]
    assert (campaign_dir / "run" / "campaign.yaml").is_file()
    from mfal.campaign.state import CampaignDir

    cd = CampaignDir(campaign_dir / "run")
    st = cd.load_state()
    cd.save_state(st.model_copy(update={"round": 2}))
    flow = CampaignMaker().make(cd.root)
    assert [j.name for j in flow.jobs] == ["campaign round 2"]
    assert flow.jobs[0].function_args[:2] == (str(cd.root), 2)


def test_makers_do_not_mutate_and_round_expands(campaign_dir):
    maker = RoundMaker(options=RunOptions(progress=False))
    before = copy.deepcopy(maker)
    job_a = maker.make(campaign_dir / "run", 1)
    job_b = maker.make(campaign_dir / "run", 1)
    assert maker == before and job_a.uuid != job_b.uuid
    resp = round_job.original(str(campaign_dir / "run"), 1, maker)
    assert isinstance(resp, Response) and isinstance(resp.replace, Flow)
    names = [j.name for j in resp.replace.jobs]
    assert names == [
        "explore r1",
        "score r1",
        "select r1",
        "label lf r1",
        "label hf r1",
        "train ensemble r1",
        "evaluate r1",
        "decide r1",
    ]
    decide = resp.replace.jobs[-1]
    assert resp.replace.output.uuid == decide.uuid  # the round's output is the decision's
    # the train job waits for both label jobs
    train = resp.replace.jobs[5]
    deps = {r.uuid for r in train.input_references}
    assert {resp.replace.jobs[3].uuid, resp.replace.jobs[4].uuid} <= deps


def test_recursion_ends_on_stop(campaign_dir):
    maker = RoundMaker()
    done = next_round_job.original("d", 3, Evaluation(round=3, stop=True, reason="max_rounds=4 reached"), maker)
    assert done == {"last_round": 3, "stop_reason": "max_rounds=4 reached"}
    more = next_round_job.original("d", 3, Evaluation(round=3, stop=False), maker)
    assert isinstance(more, Response) and [j.name for j in more.replace.jobs] == ["campaign round 4"]


def test_flow_to_fireworks_and_queue_routing(campaign_dir):
    from jobflow.managers.fireworks import flow_to_workflow

    from flows.submit.config import ClusterConfig

    flow = campaign_flow(campaign_dir / "c.yaml", campaign_dir / "run")
    wf = flow_to_workflow(flow)
    assert [fw.name for fw in wf.fws] == ["campaign round 0"]
    resp = round_job.original(str(campaign_dir / "run"), 0, RoundMaker())
    cluster = ClusterConfig()
    queues = {j.name: cluster.queue_for(j.name)[0] for j in resp.replace.jobs}
    assert queues["label lf r0"] == queues["label hf r0"] == "label"
    assert queues["train ensemble r0"] == "train"
    assert queues["explore r0"] == "default"


def test_device_reaches_the_training_config(campaign_dir, monkeypatch):
    """``campaign_flow(device=...)`` travels in the round jobs' RunOptions and overrides ``train.device``;
    ``$MFAL_DEVICE`` is not read any more (run options are passed explicitly). torch.cuda.is_available is
    patched to False so the cuda-without-GPU error is checked the same on any machine."""
    import torch

    from mfal.campaign.context import Campaign
    from mfal.campaign.train import train_round
    from mfal.errors import ConfigError

    run = campaign_dir / "run"
    with pytest.raises(ConfigError, match="'tpu' not in"):
        campaign_flow(campaign_dir / "c.yaml", run, device="tpu")
    assert not run.exists()  # nothing written for a bad device
    flow = campaign_flow(campaign_dir / "c.yaml", run, device="auto")
    maker = flow.jobs[0].function_kwargs["maker"]
    assert maker.options.device == "auto"
    resp = round_job.original(str(run), 0, maker)
    by_name = {j.name: j for j in resp.replace.jobs}
    for name in ("explore r0", "score r0", "train ensemble r0", "evaluate r0"):
        assert by_name[name].function_kwargs["options"].device == "auto", name
    for name in ("select r0", "label lf r0", "label hf r0"):  # no model: no device, so no GPU queue
        assert by_name[name].function_kwargs["options"].device is None, name

    assert Campaign(run).config.train.device == "cpu"  # demo.yaml, no override
    c = Campaign(run, RunOptions(device="auto"))
    assert (c.config.device, c.config.train.device) == ("auto", "auto")
    monkeypatch.setenv("MFAL_DEVICE", "cuda")
    assert Campaign(run).config.train.device == "cpu"  # the environment is not a run option
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"device='cuda' requested but no CUDA device"):
        train_round(run, 0, RunOptions(device="cuda"))


def test_flow_round_is_the_library_round(campaign_dir):
    """The flow's round and ``mfal.campaign.round.run_round`` use one step list (same names, same order)."""
    from mfal.campaign.round import round_stages
    from mfal.fidelity import Fidelities

    campaign_flow(campaign_dir / "c.yaml", campaign_dir / "run")
    resp = round_job.original(str(campaign_dir / "run"), 2, RoundMaker())
    names = [j.name for j in resp.replace.jobs][:-1]
    assert names == [f"{s.name} r2" for stage in round_stages(Fidelities()) for s in stage]
