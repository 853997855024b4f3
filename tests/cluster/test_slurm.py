"""`mfal submit --slurm` and FireWorks `qlaunch` on a real single-node SLURM cluster (scripts/start-slurm.sh).

The node advertises one fake GPU (a /dev/null clone): GPU requests are scheduled for real, CUDA is never used.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from clusterutil import BIN, REPO, SECRET, fw_states, mfal, run, wait_run, write_smoke

pytestmark = pytest.mark.slurm
CLUSTER = REPO / "configs/cluster/local.yaml"
FLOW = "flows.submit.smoke:smoke_flow"


def _outputs(run_dir: Path, name_prefix: str) -> list[dict]:
    from flows.submit.slurm import read_output

    st = json.loads((run_dir / "slurm" / "state.json").read_text())
    keys = [k for k, r in st["jobs"].items() if r["name"].startswith(name_prefix)]
    return [read_output(run_dir, k.rsplit("_", 1)[0]) for k in keys]


def test_recursive_flow_on_slurm_with_gpu_training_hostile_names_and_no_secrets(slurm_cluster, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run $(touch pwned) `touch pwned`"
    cfg = write_smoke(tmp_path / "smoke.yaml", tag=f"$(touch {marker}); touch {marker}")
    env = dict(__import__("os").environ, MFAL_MONGO_URI=f"mongodb://mfal:{SECRET}@127.0.0.1:27017/mfal")
    p = mfal("submit", cfg, "--slurm", "--cluster", CLUSTER, "--device", "cpu", "--flow", FLOW, "--dir", run_dir,
             env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    # the printed "follow it with" hint is shell-quoted (issue 15 #13): pasting it runs nothing from --dir
    hint = p.stdout.split("follow it with: ", 1)[1].strip()
    assert shlex.split(hint) == ["mfal", "cluster-status", "--dir", str(run_dir)]
    echoed = run(["bash", "-c", "echo " + hint.removeprefix("mfal ")], cwd=tmp_path)
    assert echoed.stdout.strip() == f"cluster-status --dir {run_dir}" and not marker.exists()
    st = wait_run(run_dir)
    assert st["status"] == "completed", st
    assert st["counts"] == {"completed": 14}  # 2 rounds created at run time by Response(replace=...)
    queues = {r["name"]: r["queue"] for r in st["jobs"]}
    assert queues["train r2"] == "train" and queues[f"label $(touch {marker}); touch {marker} r2 #1"] == "label"
    trains = _outputs(run_dir, "train")
    assert len(trains) == 2
    # --gres=gpu:1 was scheduled on the fake GPU, and --device reached the training job
    assert all(t["cuda_visible_devices"] == "0" and t["device"] == "cpu" for t in trains)
    assert len(list((run_dir / "frames").glob("*.json"))) == 4
    assert not marker.exists() and not list(tmp_path.rglob("pwned"))  # nothing in a name or path was executed
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="ignore"), f
    step = next((run_dir / "slurm" / "jobs").glob("*/step.sh")).read_text()
    assert "#SBATCH --partition=" in step and "exec " in step


def test_crashed_label_step_is_recorded_campaign_goes_on_resume_relabels_only_it(slurm_cluster, tmp_path):
    crash = tmp_path / "CRASH"
    crash.write_text("1")
    run_dir = tmp_path / "run"
    cfg = write_smoke(tmp_path / "smoke.yaml", n_rounds=1, n_frames=3, fail_if_exists=str(crash))
    p = mfal("submit", cfg, "--slurm", "--cluster", CLUSTER, "--flow", FLOW, "--dir", run_dir)
    assert p.returncode == 0, p.stderr
    st = wait_run(run_dir)
    failed = [r for r in st["jobs"] if r["state"] == "failed"]
    assert [r["name"] for r in failed] == ["label t r1 #0"]
    assert "RuntimeError: injected crash" in failed[0]["reason"]
    assert st["counts"]["completed"] == len(st["jobs"]) - 1  # collect, train, ... ran without that frame
    assert len(list((run_dir / "frames").glob("*.json"))) == 2
    sacct = run(["sacct", "-c", "-n", "-P", "-j", failed[0]["slurm_id"], "-o", "State"]).stdout.split()
    assert sacct[:1] == ["FAILED"]
    before = {f.name: f.stat().st_mtime_ns for f in (run_dir / "frames").glob("*.json")}
    ids_before = {r["name"]: r["slurm_id"] for r in st["jobs"]}

    crash.unlink()
    p = mfal("submit", cfg, "--slurm", "--cluster", CLUSTER, "--flow", FLOW, "--dir", run_dir, "--resume")
    assert p.returncode == 0, p.stderr
    assert "label t r1 #0" in p.stdout
    st = wait_run(run_dir)
    assert st["status"] == "completed" and set(st["counts"]) == {"completed"}
    after = {f.name: f.stat().st_mtime_ns for f in (run_dir / "frames").glob("*.json")}
    assert len(after) == 3 and {k: after[k] for k in before} == before
    ids_after = {r["name"]: r["slurm_id"] for r in st["jobs"]}
    # only the crashed label job (and what consumes it) ran again; the other label jobs kept their results
    assert [n for n in ids_after if n.startswith("label") and ids_after[n] != ids_before[n]] == ["label t r1 #0"]
    (collected,) = _outputs(run_dir, "collect")
    assert collected["n_ok"] == 3 and collected["n_failed"] == 0


def test_fireworks_qlaunch_runs_a_labeling_job_on_slurm(slurm_cluster, fw_env):
    """FireWorks (mongomock mode: no MongoDB server here) -> qlaunch -> SLURM job -> rlaunch (absolute path)."""
    run_dir = fw_env.dir / "run"
    cfg = write_smoke(fw_env.dir / "smoke.yaml", n_rounds=1, n_frames=1)
    p = mfal("submit", cfg, "--fireworks", "--launchpad", fw_env.launchpad, "--cluster", CLUSTER,
             "--flow", FLOW, "--dir", run_dir, env=fw_env.env)
    assert p.returncode == 0, p.stderr
    states = fw_states(fw_env, REPO / "configs/fireworks/my_fworker_default.yaml")  # round 1 + explore
    assert {s["name"]: s["state"] for s in states}["label t r1 #0"] == "READY"
    cpu_worker = REPO / "configs/fireworks/my_fworker_cpu.yaml"
    qa = fw_env.dir / "my_qadapter.yaml"
    qa.write_text(
        "_fw_name: CommonAdapter\n_fw_q_type: SLURM\nqueue: debug\nnodes: 1\nntasks: 1\nwalltime: '00:05:00'\n"
        f"job_name: mfal-fw-label\nrocket_launch: {BIN}/rlaunch -l {fw_env.launchpad} -w {cpu_worker} singleshot\n"
    )
    launch_dir = fw_env.dir / "launches"
    launch_dir.mkdir()
    p = run([BIN / "qlaunch", "-l", fw_env.launchpad, "-w", cpu_worker, "-q", qa, "singleshot"], env=fw_env.env,
            cwd=launch_dir)
    assert p.returncode == 0, p.stderr
    deadline = time.time() + 120
    while time.time() < deadline:
        q = subprocess.run(["squeue", "-h", "--name", "mfal-fw-label"], capture_output=True, text=True)
        outs = list(launch_dir.rglob("mfal-fw-label-*.out"))
        if not q.stdout.strip() and outs:
            break
        time.sleep(0.5)
    time.sleep(1)
    states = {s["name"]: s for s in fw_states(fw_env)}  # no worker with _fworker=cpu_worker: runs nothing
    assert states["label t r1 #0"]["state"] == "COMPLETED", outs and outs[0].read_text()
    (frame,) = [json.loads(f.read_text()) for f in (run_dir / "frames").glob("*.json")]
    assert frame["slurm_job_id"]  # labeled inside the SLURM job


def test_partition_that_does_not_exist_is_refused_before_anything_is_submitted(slurm_cluster, tmp_path):
    bad = tmp_path / "cluster.yaml"
    bad.write_text(CLUSTER.read_text().replace("partition: gpu", "partition: nope"))
    run_dir = tmp_path / "run"
    p = mfal("submit", write_smoke(tmp_path / "s.yaml"), "--slurm", "--cluster", bad, "--flow", FLOW, "--dir", run_dir)
    assert p.returncode == 1
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("mfal: error: cluster queue 'train'") and "--partition=nope" in line and "invalid partition" in line.lower()
    assert not run_dir.exists()


def test_killed_step_is_caught_by_the_fallback_driver(slurm_cluster, tmp_path):
    """A step that dies without a word (here: scancel) is recorded by the afternotok driver job."""
    hang = tmp_path / "HANG"
    hang.write_text("1")
    run_dir = tmp_path / "run"
    cfg = write_smoke(tmp_path / "smoke.yaml", n_rounds=1, n_frames=2, hang_if_exists=str(hang))
    assert mfal("submit", cfg, "--slurm", "--cluster", CLUSTER, "--flow", FLOW, "--dir", run_dir).returncode == 0
    deadline = time.time() + 120
    victim = None
    while time.time() < deadline and victim is None:
        state = run_dir / "slurm" / "state.json"
        jobs = json.loads(state.read_text())["jobs"] if state.exists() else {}
        rec = next((r for r in jobs.values() if r["name"] == "label t r1 #1" and r.get("slurm_id")), None)
        if rec and "RUNNING" in run(["squeue", "-h", "-j", rec["slurm_id"], "-o", "%T"]).stdout:
            victim = rec["slurm_id"]
        time.sleep(0.5)
    assert victim, "label job never started"
    run(["scancel", victim])
    st = wait_run(run_dir)
    hang.unlink()
    (rec,) = [r for r in st["jobs"] if r["name"] == "label t r1 #1"]
    assert rec["state"] == "failed" and f"SLURM job {victim} ended CANCELLED" in rec["reason"]
    assert {r["name"]: r["state"] for r in st["jobs"]}["train r1"] == "completed"  # the flow went on
