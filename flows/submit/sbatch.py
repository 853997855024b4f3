"""The SLURM commands a run uses: ``sbatch`` (submit, ``--test-only`` preflight), ``squeue``/``sacct``, ``scancel``."""

from __future__ import annotations

import shutil
import subprocess

from flows.submit.config import ClusterConfig
from flows.submit.scripts import sbatch_options
from flows.submit.security import redact
from mfal.errors import MfalError


class SubmitError(MfalError):
    """The scheduler refused a submission or cannot be reached."""


def find_sbatch() -> str:
    """Absolute path of ``sbatch`` or a SubmitError saying it is not on PATH."""
    path = shutil.which("sbatch")
    if path is None:
        raise SubmitError(
            "sbatch not found on PATH: run on a SLURM login node (or start scripts/start-slurm.sh)"
        )
    return path


def run_sbatch(args: list[str], what: str) -> str:
    """Run ``sbatch --parsable ...``; returns the job id, or a SubmitError with sbatch's last line (redacted)."""
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout).strip()
        raise SubmitError(f"sbatch refused {what}: {redact(out.splitlines()[-1] if out else '')}")
    return proc.stdout.strip().split(";")[0]


def preflight(cluster: ClusterConfig) -> None:
    """Check every queue with ``sbatch --test-only`` (partition, GPUs, account) before submitting anything."""
    sbatch = find_sbatch()
    for name, queue in {**cluster.queues, "driver": cluster.driver}.items():
        args = [sbatch, "--test-only", *sbatch_options(queue), "--output=/dev/null", "--wrap=true"]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            err = redact(" ".join(proc.stderr.strip().splitlines()[:2]))
            raise SubmitError(
                f"cluster queue {name!r} ({' '.join(sbatch_options(queue))}) is not accepted by SLURM: {err}"
            )


def slurm_state(slurm_id: str) -> str | None:
    """Final SLURM state of a finished job (``None`` while queued/running): accounting (``sacct``) when the
    cluster has it, else the job-completion log (``sacct -c``)."""
    q = subprocess.run(["squeue", "-h", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True, check=False)
    if q.returncode == 0 and q.stdout.strip():
        return None
    for extra in (["-X"], ["-c"]):
        s = subprocess.run(
            ["sacct", *extra, "-n", "-P", "-j", slurm_id, "-o", "State"], capture_output=True, text=True, check=False
        )
        if s.returncode == 0 and s.stdout.split():
            return s.stdout.split()[0]
    return "UNKNOWN"


def cancel_if_pending(slurm_id: str | None) -> None:
    """Cancel a (fallback driver) job if it is still waiting for its dependency; returns None (no pending id)."""
    if slurm_id is None:
        return None
    q = subprocess.run(["squeue", "-h", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True, check=False)
    if q.stdout.strip() == "PENDING":
        subprocess.run(["scancel", slurm_id], capture_output=True, check=False)
    return None
