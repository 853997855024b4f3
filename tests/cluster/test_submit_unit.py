"""Cluster layer without a scheduler: config validation, quoting, redaction, routing of dynamic jobs, dry run."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest
from clusterutil import BIN, REPO, mfal, write_smoke

from flows.submit.config import ClusterConfig, QueueConfig, load_cluster_config
from flows.submit.security import check_private, redact
from flows.submit.slurm import render_script, slurm_job_name
from mfal.errors import ConfigError

FLOW = "flows.submit.smoke:smoke_flow"


def test_shipped_cluster_configs_load_and_route_by_job_name():
    for path in (REPO / "configs/cluster").glob("*.yaml"):
        cfg = load_cluster_config(path)
        assert cfg.queue_for("label lf r1 #0")[0] == "label"
        assert cfg.queue_for("train ensemble r3")[0] == "train"
        assert cfg.queue_for("select")[0] == "default"
    assert load_cluster_config(REPO / "configs/cluster/local.yaml").queues["train"].gpus == 1


@pytest.mark.parametrize(
    ("text", "field"),
    [("queues: {default: {partition: 'debug; touch /tmp/x'}}", "queues.default.partition"),
     ("queues: {label: {}}", "queues"), ("devise: cuda", "devise"), ("device: tpu", "device")],
)
def test_bad_cluster_config_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"{path}: field '{field}'"):
        load_cluster_config(path)


def test_scripts_quote_paths_and_env(tmp_path):
    evil = str(tmp_path / "a $(touch x) `touch y`; touch z")
    script = render_script(options=["--partition=debug"], command=["mfal", "slurm-step", "--dir", evil],
                           setup=[], env={"MFAL_RUN_DIR": evil}, workdir=Path(evil))
    path = tmp_path / "s.sh"
    path.write_text(script.replace("exec ", "echo "))  # run it for real, printing instead of exec'ing
    os.makedirs(evil)
    out = subprocess.run(["bash", str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"mfal slurm-step --dir {evil}"
    assert not list(tmp_path.rglob("x")) and not list(tmp_path.rglob("y")) and not list(tmp_path.rglob("z"))
    assert slurm_job_name("mfal", "label $(rm -rf ~)") == "mfal-label_rm_-rf_"
    with pytest.raises(ConfigError, match="environment variable name"):
        render_script(options=[], command=["x"], setup=[], env={"A;B": "1"}, workdir=tmp_path)


def test_redact_and_private_file_warning(tmp_path, caplog):
    assert redact("mongodb+srv://mfal:pa$$w@host/db?x=1") == "mongodb+srv://mfal:***@host/db?x=1"
    assert "hunter2" not in redact("{'password': 'hunter2', 'user': 'u'}")
    f = tmp_path / "lp.yaml"
    f.write_text("password: x\n")
    f.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert "chmod 600" in check_private(f)
    f.chmod(0o600)
    assert check_private(f) is None


def test_routing_reaches_jobs_created_at_run_time(tmp_path):
    """The round job replaces itself; the jobs it creates must carry the label/train queues (FireWorks spec)."""
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    from flows.submit.fireworks import route_flow
    from flows.submit.smoke import smoke_flow

    cluster = ClusterConfig(queues={"label": QueueConfig(match=["label"], category="cpu", fworker="c"),
                                    "train": QueueConfig(match=["train"], category="gpu", gpus=2),
                                    "default": QueueConfig(category="light")})
    flow = route_flow(smoke_flow(write_smoke(tmp_path / "s.yaml"), tmp_path), cluster)
    store = JobStore(MemoryStore())
    store.connect()
    response = flow.jobs[0].run(store)
    spec = {j.name: j.config.manager_config for j in response.replace.jobs}
    assert spec["label t r1 #0"]["_category"] == "cpu" and spec["label t r1 #0"]["_fworker"] == "c"
    assert spec["train r1"]["_category"] == "gpu" and spec["train r1"]["_queueadapter"]["gres"] == "gpu:2"
    assert spec["explore"]["_category"] == "light"


def test_dry_run_prints_scripts_and_submits_nothing(tmp_path):
    run_dir = tmp_path / "run $(touch pwned)"
    p = mfal("submit", write_smoke(tmp_path / "s.yaml"), "--slurm", "--dry-run", "--cluster",
             REPO / "configs/cluster/local.yaml", "--flow", FLOW, "--dir", run_dir, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("#!/bin/bash") >= 3 and "--gres=gpu:1" in p.stdout and "dry run: nothing submitted" in p.stdout
    assert f"--dir '{run_dir}'" in p.stdout  # quoted
    assert not run_dir.exists() and not (tmp_path / "pwned").exists()


def test_sbatch_missing_is_one_line_and_nothing_written(tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, PATH=str(BIN))  # no /usr/bin: no sbatch
    p = mfal("submit", write_smoke(tmp_path / "s.yaml"), "--slurm", "--flow", FLOW, "--dir", run_dir, env=env)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        "mfal: error: sbatch not found on PATH: run on a SLURM login node (or start scripts/start-slurm.sh)"
    ]
    assert not run_dir.exists()


def test_needs_exactly_one_backend(tmp_path):
    p = mfal("submit", write_smoke(tmp_path / "s.yaml"), "--flow", FLOW)
    assert p.returncode == 2 and "choose exactly one of --fireworks or --slurm" in p.stderr  # usage error: exit 2


def test_jobflow_config_is_rendered_private_and_never_printed(tmp_path):
    from clusterutil import SECRET

    out = tmp_path / "private" / "jobflow.yaml"
    env = dict(os.environ, MFAL_MONGO_URI=f"mongodb://mfal:{SECRET}@127.0.0.1:27017/mfal")
    p = mfal("jobflow-config", REPO / "configs/jobflow/jobflow.yaml", "--out", out, env=env)
    assert p.returncode == 0, p.stderr
    assert SECRET not in p.stdout + p.stderr
    assert (out.stat().st_mode & 0o777) == 0o600 and SECRET in out.read_text()
    env.pop("MFAL_MONGO_URI")
    p = mfal("jobflow-config", REPO / "configs/jobflow/jobflow.yaml", "--out", tmp_path / "x.yaml", env=env)
    assert p.returncode == 2 and "environment variable MFAL_MONGO_URI is not set" in p.stderr  # config error
    assert not (tmp_path / "x.yaml").exists()


def test_dry_run_of_the_real_campaign_writes_nothing(tmp_path):
    run_dir = tmp_path / "campaign"
    p = mfal("submit", REPO / "configs/demo.yaml", "--slurm", "--dry-run", "--cluster",
             REPO / "configs/cluster/example-hpc.yaml", "--dir", run_dir)
    assert p.returncode == 0, p.stderr
    assert "[label]" in p.stdout and "[train]" in p.stdout and "--gres=gpu:1" in p.stdout
    assert "#SBATCH --account=my_project" in p.stdout and "module load vasp/6.4" in p.stdout
    assert not run_dir.exists()


def test_printed_export_hints_are_shell_quoted(tmp_path):
    """Issue 15 #13: a hostile output path in a printed hint must not run when the hint is pasted."""
    from clusterutil import SECRET, run

    evil = tmp_path / "cfg $(touch pwned) `touch pwned2`"
    env = dict(os.environ, MFAL_MONGO_URI=f"mongodb://mfal:{SECRET}@127.0.0.1:27017/mfal")
    p = mfal("jobflow-config", REPO / "configs/jobflow/jobflow.yaml", "--out", evil / "jobflow.yaml", env=env,
             cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    export = p.stdout.split("; ", 1)[1].strip()
    shown = run(["bash", "-c", f"{export}; echo \"$JOBFLOW_CONFIG_FILE\""], cwd=tmp_path)
    assert shown.stdout.strip() == str(evil / "jobflow.yaml")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
