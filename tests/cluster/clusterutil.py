"""Helpers shared by the cluster tests (imported by name: tests/cluster is on sys.path under pytest)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET = "Sup3r-S3cret-pw"


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run a command; returns the CompletedProcess (text)."""
    return subprocess.run(
        [str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def mfal(*args, env=None, cwd=None, timeout: float = 300):
    """The mfal CLI (``python -m flows.cli`` = the console script) in a subprocess."""
    return run([sys.executable, "-m", "flows.cli", *args], env=env, cwd=cwd, timeout=timeout)


def write_smoke(path: Path, **kw) -> Path:
    cfg = {"n_rounds": 2, "n_frames": 2, "tag": "t", **kw}
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def fw_states(fw: SimpleNamespace, *workers: Path, timeout: float = 300) -> list[dict]:
    """Launch everything READY (in one process, worker by worker) and return the Fireworks' states."""
    p = run([sys.executable, Path(__file__).parent / "fw_rapidfire.py", fw.launchpad, *workers], env=fw.env,
            cwd=fw.dir, timeout=timeout)  # rapidfire makes its launcher_* directories in the working directory
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


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
