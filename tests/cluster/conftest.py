"""Fixtures for cluster tests: FireWorks in mongomock mode and a real single-node SLURM cluster.

No MongoDB server can be installed on these machines, so FireWorks runs in its mongomock mode
(``MONGOMOCK_SERVERSTORE_FILE``); that variable is set only in the environment of the subprocesses
these tests start, so other tests never import fireworks with it.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from clusterutil import BIN, REPO, SECRET, run


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


