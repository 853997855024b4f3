"""Fixtures for cluster tests: FireWorks in mongomock mode and a real single-node SLURM cluster.

No MongoDB server can be installed on these machines, so FireWorks runs in its mongomock mode
(``MONGOMOCK_SERVERSTORE_FILE``); that variable is set only in the environment of the subprocesses
these tests start, so other tests never import fireworks with it.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET = "Sup3r-S3cret-pw"


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run a command; returns the CompletedProcess (text)."""
    return subprocess.run(
        [str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def mfal(*args, env=None, cwd=None, timeout: float = 300):
    return run([BIN / "mfal", *args], env=env, cwd=cwd, timeout=timeout)


def write_smoke(path: Path, **kw) -> Path:
    cfg = {"n_rounds": 2, "n_frames": 2, "tag": "t", **kw}
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


@pytest.fixture
def fw_env(tmp_path: Path) -> SimpleNamespace:
    """A fresh mongomock LaunchPad (reset), a montydb JobStore shared by all processes, their env."""
    store_file = tmp_path / "mongomock.json"
    store_file.write_text("{}")
    lp = tmp_path / "my_launchpad.yaml"
    lp.write_text(f"host: localhost\nport: 27017\nname: mfal_fw\nusername: mfal\npassword: {SECRET}\n")
    lp.chmod(0o600)
    jf = tmp_path / "jobflow.yaml"
    jf.write_text(
        "JOB_STORE:\n  docs_store:\n    type: MontyStore\n"
        f"    database_path: {tmp_path / 'jobstore'}\n    database_name: jobflow\n    collection_name: outputs\n"
    )
    env = dict(
        os.environ,
        MONGOMOCK_SERVERSTORE_FILE=str(store_file),
        JOBFLOW_CONFIG_FILE=str(jf),
        MFAL_MONGO_URI=f"mongodb://mfal:{SECRET}@127.0.0.1:27017/mfal",
    )
    env.pop("LAUNCHPAD_LOC", None)
    p = run([BIN / "lpad", "-l", lp, "reset", "--password", datetime.date.today().isoformat()], env=env)
    assert p.returncode == 0, p.stderr
    return SimpleNamespace(env=env, launchpad=lp, dir=tmp_path, store_file=store_file)


def fw_states(fw: SimpleNamespace, *workers: Path) -> list[dict]:
    """Launch everything READY (in one process, worker by worker) and return the Fireworks' states."""
    p = run([sys.executable, Path(__file__).parent / "fw_rapidfire.py", fw.launchpad, *workers], env=fw.env)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ SLURM
@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """A real single-node SLURM cluster (slurm-wlm + munge; installed with apt-get if missing) with one
    fake GPU (a /dev/null clone: scheduling only, CUDA is never touched). Stopped at the end."""
    home = os.environ.get("MFAL_TEST_SLURM_HOME", "/tmp/mfal-slurm-pytest")  # munged wants a+x parents
    env = dict(os.environ, SLURM_HOME=home, SLURM_FAKE_GPUS="1")
    p = run(["bash", REPO / "scripts/start-slurm.sh"], env=env, timeout=600)
    if p.returncode != 0:
        pytest.fail(f"scripts/start-slurm.sh failed: {p.stderr[-2000:]}")
    conf = p.stdout.strip().split("=", 1)[1]
    os.environ["SLURM_CONF"] = conf
    try:
        yield {"SLURM_CONF": conf, "SLURM_HOME": home}
    finally:
        os.environ.pop("SLURM_CONF", None)
        run(["bash", REPO / "scripts/stop-slurm.sh"], env=env, timeout=120)


def wait_run(run_dir: Path, timeout: float = 240) -> dict:
    """Poll ``mfal cluster-status --json`` until the SLURM run is no longer running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = run_dir / "slurm" / "state.json"
        if state.exists():
            st = json.loads(state.read_text())
            if st["status"] != "running":
                p = mfal("cluster-status", "--dir", run_dir, "--json")
                assert p.returncode == 0, p.stderr
                return json.loads(p.stdout)
        time.sleep(0.5)
    raise AssertionError(f"SLURM run {run_dir} still running after {timeout} s: {mfal('cluster-status', '--dir', run_dir).stdout}")
