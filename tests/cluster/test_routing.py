"""Cluster routing by job name and device (issue 15 #5): a CUDA job lands on a queue with GPUs, and a device that no
configured queue can serve is a one-line error at submit time, before anything is written (no scheduler needed)."""

from __future__ import annotations

import json

import pytest
from clusterutil import REPO, mfal, write_smoke
from jobflow import JobStore
from maggma.stores import MemoryStore

from flows.submit.config import ClusterConfig, QueueConfig, load_cluster_config
from flows.submit.routing import check_routing, job_device, job_device_for, route
from mfal.errors import ConfigError
from mfal.runopts import RunOptions

HPC = REPO / "configs/cluster/example-hpc.yaml"
LOCAL = REPO / "configs/cluster/local.yaml"
CPU_ONLY = ClusterConfig(queues={"label": QueueConfig(match=["label"]), "default": QueueConfig()})
FLOW = "flows.submit.smoke:smoke_flow"


def test_cuda_device_jobs_go_to_a_gpu_queue_labels_stay_on_cpu():
    cl = load_cluster_config(HPC)
    for name, expected in [("explore r0", "gpu"), ("score r0", "gpu"), ("evaluate r2", "gpu"),
                           ("train ensemble r0", "train"), ("label hf r0", "label"), ("select r0", "default")]:
        device = job_device_for(name, None, cl, "cuda")
        assert route(name, cl, device)[0] == expected, name
    assert route("explore r0", cl, "cpu")[0] == "default" and route("explore r0", cl, "auto")[0] == "default"
    local = load_cluster_config(LOCAL)  # no gpu_queue: the first queue with GPUs (train)
    assert route("score r1", local, "cuda")[0] == "train"


def test_a_device_no_queue_can_serve_is_one_config_error():
    with pytest.raises(ConfigError, match="runs on device 'cuda' but its queue 'default' has no GPU") as err:
        route("explore r0", CPU_ONLY, "cuda")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="no queue has gpus > 0"):
        check_routing(CPU_ONLY, "cuda")
    check_routing(CPU_ONLY, "cpu")
    check_routing(CPU_ONLY, "auto")
    with pytest.raises(ValueError, match="gpu_queue='label' is not a queue with gpus > 0"):
        ClusterConfig(queues=CPU_ONLY.queues, gpu_queue="label")


def test_job_device_is_read_from_the_jobs_own_arguments(tmp_path):
    from flows.submit.smoke import smoke_round, train

    assert job_device(train({"round": 1, "n_ok": 0}, device="cuda:1")) == "cuda:1"
    assert job_device(train({"round": 1, "n_ok": 0})) is None
    assert job_device(smoke_round(1, {}, "f", None, RunOptions(device="cuda"))) == "cuda"  # RunOptions anywhere
    assert job_device_for("my step", "cuda", CPU_ONLY, None) == "cuda"  # a carried device counts for any name


def _runtime_jobs(tmp_path, device):
    """The jobs the smoke flow's first round creates at run time (Response.replace), as a SLURM run sees them."""
    from flows.submit.smoke import smoke_flow

    flow = smoke_flow(write_smoke(tmp_path / "s.yaml"), tmp_path, device=device)
    store = JobStore(MemoryStore())
    store.connect()
    return flow.jobs[0].run(store).replace


def test_slurm_tick_routes_run_time_jobs_by_device(tmp_path):
    from flows.submit.slurm import prepare_run, tick

    jobs = _runtime_jobs(tmp_path, "cuda")
    run_dir = tmp_path / "run"
    prepare_run(jobs, run_dir, load_cluster_config(HPC), device="cuda")
    tick(run_dir, submit=False)  # writes the step scripts, submits nothing
    state = json.loads((run_dir / "slurm/state.json").read_text())
    assert {r["name"]: r["queue"] for r in state["jobs"].values()} == {"explore": "gpu"}
    (script,) = (run_dir / "slurm/jobs").glob("*/step.sh")
    text = script.read_text()
    assert "#SBATCH --gres=gpu:1" in text and "#SBATCH --partition=gpu" in text
    assert "MFAL_DEVICE" not in text  # the device travels in the job's arguments, not the environment


def test_fireworks_routes_run_time_jobs_by_device(tmp_path):
    from flows.submit.fireworks import route_flow
    from flows.submit.smoke import smoke_flow

    cl = load_cluster_config(HPC)
    flow = route_flow(smoke_flow(write_smoke(tmp_path / "s.yaml"), tmp_path, device="cuda"), cl, "cuda")
    store = JobStore(MemoryStore())
    store.connect()
    spec = {j.name: j.config.manager_config for j in flow.jobs[0].run(store).replace.jobs}
    assert spec["explore"]["_category"] == "gpu" and spec["explore"]["_queueadapter"]["gres"] == "gpu:1"
    assert spec["label t r1 #0"]["_category"] == "cpu" and spec["collect"]["_category"] == "default"
    assert spec["train r1"]["_queueadapter"]["queue"] == "gpu"


@pytest.mark.parametrize("backend", ["--slurm", "--fireworks"])
def test_submit_with_a_device_no_queue_serves_fails_before_anything_is_written(tmp_path, backend):
    cluster = tmp_path / "cpu.yaml"
    cluster.write_text("queues: {label: {match: [label]}, default: {}}\n")
    run_dir = tmp_path / "run"
    p = mfal("submit", write_smoke(tmp_path / "s.yaml"), backend, "--cluster", cluster, "--device", "cuda",
             "--flow", FLOW, "--dir", run_dir, "--launchpad", tmp_path / "lp.yaml")
    assert p.returncode == 2, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("mfal: error: cluster config: device 'cuda' needs a GPU") and "Traceback" not in p.stderr
    assert not run_dir.exists()


def test_dry_run_routes_the_campaign_s_cuda_jobs_to_the_gpu_queue(tmp_path):
    run_dir = tmp_path / "campaign"
    p = mfal("submit", REPO / "configs/demo.yaml", "--slurm", "--dry-run", "--cluster", HPC, "--device", "cuda",
             "--dir", run_dir)
    assert p.returncode == 0, p.stderr
    assert "step template [gpu] for jobs created at run time named like ['explore', 'score', 'evaluate']" in p.stdout
    assert "one at a time" in p.stderr  # the embedded store's single-writer default is announced
    assert not run_dir.exists()


def test_the_campaign_round_s_cuda_steps_go_to_the_gpu_queue(tmp_path):
    """The README's `--device cuda` example: the round's explore/score/evaluate jobs carry device=cuda in their
    RunOptions and used to be routed to the CPU default queue; now they land on a queue with GPUs."""
    from flows.campaign import campaign_flow
    from flows.submit.graph import iter_jobs

    flow = campaign_flow(REPO / "configs/demo.yaml", tmp_path / "run", options=RunOptions(device="cuda"))
    (first,) = list(iter_jobs(flow))
    store = JobStore(MemoryStore())
    store.connect()
    jobs = list(iter_jobs(first.run(store).replace))  # the round's steps, as created at run time
    cl = load_cluster_config(HPC)
    queues = {j.name: route(j.name, cl, job_device_for(j.name, job_device(j), cl, "cuda"))[0] for j in jobs}
    assert queues["explore r0"] == queues["score r0"] == queues["evaluate r0"] == "gpu"
    assert queues["train ensemble r0"] == "train" and queues["label hf r0"] == queues["label lf r0"] == "label"
    assert queues["select r0"] == queues["decide r0"] == "default"
    assert job_device(next(j for j in jobs if j.name == "explore r0")) == "cuda"
