"""Running CP2K (custodian's ``Cp2kJob`` with a hard timeout) and judging one attempt's output."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mfal.fileio import atomic_write_text
from mfal.label.cp2k_env import _environ
from mfal.label.cp2k_io import Cp2kOutput, error_tail, parse_cp2k_output
from mfal.label.cp2k_settings import Cp2kSettings

logger = logging.getLogger(__name__)

#: a Runner runs CP2K in ``run_dir`` (cp2k.inp present) writing cp2k.out; returns the wall seconds it took.
Runner = Callable[[Path, list[str], dict[str, str], float], float]


def run_cp2k_custodian(run_dir: Path, cmd: list[str], env: dict[str, str], timeout_s: float) -> float:
    """Run CP2K in ``run_dir`` with custodian's ``Cp2kJob``; kill it after ``timeout_s``. Returns wall s."""
    from custodian.cp2k.jobs import Cp2kJob

    job = Cp2kJob(cmd, input_file="cp2k.inp", output_file="cp2k.out", stderr_file="std_err.txt")
    t0 = time.perf_counter()
    with _environ(env):
        job.setup(str(run_dir))
        proc = job.run(str(run_dir))
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("CP2K in %s exceeded %.0f s: killed", run_dir, timeout_s)
        proc.kill()
        proc.wait()
        atomic_write_text(run_dir / "mfal_killed.txt", f"killed after {timeout_s:.0f} s\n")
    job.postprocess(str(run_dir))
    return time.perf_counter() - t0


def _cmd(settings: Cp2kSettings) -> list[str]:
    if settings.mpi_ranks > 1:
        return ["mpirun", "--allow-run-as-root", "-np", str(settings.mpi_ranks), "-x", "OMP_NUM_THREADS",
                settings.cp2k_exe]  # fmt: skip
    return [settings.cp2k_exe]


#: name of the wavefunction a restarted attempt starts from (copied into its run dir)
RESTART_WFN = "mfal-restart.wfn"


def latest_wfn(run_dir: Path) -> Path | None:
    """The newest CP2K wavefunction restart file (``*-RESTART.wfn``) in ``run_dir``, or None."""
    files = sorted(run_dir.glob("*-RESTART.wfn"), key=lambda f: f.stat().st_mtime)
    return files[-1] if files else None


class Attempt(BaseModel):
    """Outcome of one CP2K run of one frame (one rung of the SCF ladder)."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str
    output: Cp2kOutput | None = None
    wall_s: float = 0.0
    killed: bool = False
    crash: str | None = Field(None, description="why no usable output: CP2K abort text or output tail")
    retryable: str | None = Field(None, description="SCF/step-limit/wall-time reason that a retry may fix")
    walltime: bool = Field(False, description="stopped by the wall-time limit (CP2K's or ours)")
    rung: str = Field("base", description="name of the SCF rung run")
    changes: dict[str, Any] = Field(default_factory=dict, description="settings the rung changed")
    restart_from: str | None = Field(None, description="wavefunction file the SCF started from")
    cores: int = 1
    eps_scf: float | None = Field(None, description="EPS_SCF the rung ran with (OT: max orbital gradient, Ha)")
    custodian: list[str] = Field(
        default_factory=list, description="custodian CP2K handlers whose check() fired on this output"
    )

    @property
    def cost_core_s(self) -> float:
        """core-seconds: CP2K's own wall time (or the measured one if CP2K did not print it) × cores."""
        out = self.output
        t = out.cp2k_time_s if out is not None and out.cp2k_time_s else self.wall_s
        return float(t) * self.cores

    def record(self) -> dict[str, Any]:
        """JSON-able summary for ``FrameDoc.calc['attempts']`` (rung, outcome, reason, SCF steps, cost)."""
        out = self.output
        ok = not self.crash and not self.retryable
        return {
            "rung": self.rung,
            "changes": self.changes,
            "status": "ok" if ok else ("crash" if self.crash else "retryable"),
            "reason": (self.crash or self.retryable or "")[-300:] or None,
            "scf_steps": out.scf_steps if out is not None else None,
            "eps_scf": self.eps_scf,
            "cp2k_time_s": out.cp2k_time_s if out is not None else None,
            "wall_s": round(self.wall_s, 2),
            "cost_core_s": round(self.cost_core_s, 3),
            "restart_from": self.restart_from,
            "custodian": self.custodian,
            "run_dir": self.run_dir,
        }


def _assess(run_dir: Path, wall_s: float, settings: Cp2kSettings) -> Attempt:
    killed = (run_dir / "mfal_killed.txt").is_file()
    try:
        out = parse_cp2k_output(run_dir)
    except Exception as err:  # noqa: BLE001 - any unreadable output is a crash of this calculation
        return Attempt(
            run_dir=str(run_dir), wall_s=wall_s, killed=killed, crash=f"{err}; {error_tail(run_dir)}"
        )
    att = Attempt(run_dir=str(run_dir), output=out, wall_s=wall_s, killed=killed)
    att.custodian = custodian_checks(run_dir)
    if killed or out.walltime_exceeded:
        att.retryable = f"wall-time limit {settings.wall_time_limit_s:.0f} s reached"
        att.walltime = True
    elif out.error:
        att.crash = f"CP2K aborted: {out.error}"
    elif not out.completed:
        att.crash = f"CP2K did not finish (no 'PROGRAM ENDED'): {error_tail(run_dir)}"
    elif not out.scf_converged and out.scf_steps is not None:
        limit = settings.scf_limit
        what = "SCF step limit reached" if out.scf_steps >= limit else "SCF not converged"
        att.retryable = f"{what} ({out.scf_steps} steps, limit {limit}, eps_scf {settings.eps_scf:g})"
    elif out.energy is None or out.forces is None:
        att.crash = f"CP2K stopped without energy/forces: {error_tail(run_dir)}"
    return att


def _nonfinite(out: Cp2kOutput) -> list[str]:
    bad = []
    for name in ("stress", "magmoms_hirshfeld", "magmoms_mulliken"):  # energy/forces: check_frame
        value = getattr(out, name)
        if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=float))):
            bad.append(f"{name} not finite in {Path(out.path).name}")
    return bad


def custodian_checks(run_dir: Path) -> list[str]:
    """Names of custodian's CP2K handlers whose ``check()`` fires on ``run_dir`` (detection only).

    Used: ``UnconvergedScfErrorHandler`` (SCF not converged) and ``WalltimeHandler`` (CP2K stopped at its
    WALLTIME). Not run as custodian's correction loop, because mfal's SCF ladder replaces it: the corrections
    edit cp2k.inp in place (the frame's input would no longer follow from its settings and frame id), each
    step is not recorded with its cost, and its diagonalisation branch (Broyden α 0.1 → smearing 300 K,
    ADDED_MOS 1000) oscillated on restricted LMFP cells here. The ladder's OT rungs follow custodian's OT
    order (DIIS → CG → 3-point line search) and restart from the saved wavefunction as its ``restart()`` does.
    ``FrozenJobErrorHandler``: our hard timeout (WALLTIME + 120 s) kills a frozen run. ``NumericalPrecision``:
    EPS_DEFAULT is a setting. A handler that cannot read the output is reported as ``<name>: error``.
    """
    import warnings

    from custodian.cp2k.handlers import UnconvergedScfErrorHandler, WalltimeHandler

    fired = []
    for handler in (
        UnconvergedScfErrorHandler(output_file="cp2k.out"),
        WalltimeHandler(output_file="cp2k.out"),
    ):
        name = type(handler).__name__
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "at least one unconverged SCF cycle": what we ask
                hit = handler.check(str(run_dir))
            if hit:
                fired.append(name)
        except Exception as err:  # noqa: BLE001 - pymatgen's parser may choke on an output we can read
            logger.debug("custodian %s on %s: %s", name, run_dir, err)
            fired.append(f"{name}: error")
    return fired
