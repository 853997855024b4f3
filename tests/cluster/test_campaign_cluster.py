"""The real active-learning campaign (surrogate teacher labels) through `mfal submit --fireworks`.

FireWorks runs in its mongomock mode: no MongoDB server exists on these machines. Everything else is real:
the campaign flow (flows.campaign), teacher labels from the pretrained CHGNet weights in the wheel, ensemble
training, jobflow detours for the recursive rounds, a montydb JobStore shared by the processes.
"""

from __future__ import annotations

import json

import pytest
from clusterutil import REPO, SECRET, fw_states, mfal, wait_run

TINY = """
name: tinyfw
seed: 3
device: cpu
start_structures:
  - builtin: lifepo4
explore:
  rattle: {n: 2, stdev: 0.04}
  strain: {n: 1, max_strain: 0.02}
  max_candidates: 3
ensemble: {k: 3, bootstrap: true}
train: {epochs: 0, batch_size: 4, device: cpu}   # orchestration test: AtomRef fit only
labelers:
  lf: {kind: teacher}
  hf: {kind: teacher}
budget:
  per_round: {lf: 0.2, hf: 0.1}
  total: {lf: 1.0, hf: 0.5}
trust:
  lf: {lo: 0.0, hi: 5.0, max_per_round: 2}
  hf: {lo: 0.0, hi: 5.0, max_per_round: 1}
initial: {n_lf: 2, n_hf: 2}
stop: {max_rounds: 2}
allow_teacher_warm_start: true   # orchestration test: the default warm start is the HF teacher
"""


@pytest.mark.slow
def test_two_round_teacher_campaign_under_fireworks_rapidfire(fw_env):
    cfg = fw_env.dir / "tiny.yaml"
    cfg.write_text(TINY)
    run_dir = fw_env.dir / "campaign"
    p = mfal("submit", cfg, "--fireworks", "--launchpad", fw_env.launchpad, "--cluster",
             REPO / "configs/cluster/local.yaml", "--dir", run_dir, env=fw_env.env)
    assert p.returncode == 0, p.stderr
    workers = [REPO / f"configs/fireworks/my_fworker_{w}.yaml" for w in ("default", "cpu", "gpu")]
    states = fw_states(fw_env, *workers, timeout=1100)
    assert {s["state"] for s in states} == {"COMPLETED"}, states
    names = {s["name"]: s for s in states}
    assert {"label lf r1", "label hf r1", "train ensemble r1"} <= set(names)  # round 1 was created at run time
    assert names["label hf r1"]["category"] == "cpu" and names["train ensemble r1"]["category"] == "gpu"
    p = mfal("status", "--dir", run_dir, "--json", env=fw_env.env)
    assert p.returncode == 0, p.stderr
    status = json.loads(p.stdout)
    assert [r["round"] for r in status["rounds"]] == [0, 1]
    assert sum(r["n_lf_labeled"] + r["n_hf_labeled"] for r in status["rounds"]) > 0  # frames in the store
    assert SECRET not in p.stdout + fw_env.store_file.read_text()


@pytest.mark.slow
@pytest.mark.slurm
def test_two_round_teacher_campaign_through_mfal_submit_slurm(slurm_cluster, tmp_path):
    """The same tiny campaign straight to the real local SLURM cluster (no database): every step is its own
    sbatch job, training on the fake-GPU queue; frames land in the campaign's embedded store."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY.replace("name: tinyfw", "name: tinyslurm"))
    run_dir = tmp_path / "campaign"
    p = mfal("submit", cfg, "--slurm", "--cluster", REPO / "configs/cluster/local.yaml", "--device", "cpu",
             "--dir", run_dir)
    assert p.returncode == 0, p.stderr
    st = wait_run(run_dir, timeout=1500)
    assert st["status"] == "completed", st
    queues = {r["name"]: r["queue"] for r in st["jobs"]}
    assert queues["label hf r1"] == "label" and queues["train ensemble r1"] == "train"  # round 1 made at run time
    p = mfal("status", "--dir", run_dir, "--json")
    assert p.returncode == 0, p.stderr
    status = json.loads(p.stdout)
    assert [r["round"] for r in status["rounds"]] == [0, 1]
    n_labeled = sum(r["n_lf_labeled"] + r["n_hf_labeled"] for r in status["rounds"])
    p = mfal("query", "--dir", run_dir, "--status", "ok", "--format", "json")
    assert p.returncode == 0, p.stderr
    assert n_labeled > 0 and len(json.loads(p.stdout)) == n_labeled  # every label is in the store, once
