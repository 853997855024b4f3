"""Batch scripts of a SLURM run: ``#SBATCH`` lines from a queue, quoting, job names, the step/driver commands.

Every value that reaches a batch script is either checked to be a plain token (``#SBATCH`` options, by
:mod:`flows.submit.config`) or ``shlex.quote``-d (paths, commands); job names are sanitised.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from flows.submit.config import ClusterConfig, QueueConfig
from mfal.errors import ConfigError


def slurm_job_name(prefix: str, name: str) -> str:
    """A SLURM job name built from a (possibly hostile) jobflow job name: only ``[A-Za-z0-9_.-]``, ≤ 64 chars."""
    return (prefix + "-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name))[:64]


def sbatch_options(queue: QueueConfig) -> list[str]:
    """``--option=value`` strings for one queue (values were checked to be plain tokens)."""
    opts = [f"--nodes={queue.nodes}", f"--ntasks={queue.ntasks}", f"--cpus-per-task={queue.cpus_per_task}"]
    for flag, value in (
        ("partition", queue.partition),
        ("account", queue.account),
        ("qos", queue.qos),
        ("time", queue.time),
        ("mem", queue.mem),
    ):
        if value is not None:
            opts.append(f"--{flag}={value}")
    if queue.gpus:
        opts.append(f"--gres=gpu:{queue.gpus}")
    return opts


def cli_command(cluster: ClusterConfig) -> list[str]:
    """``[python, -m, flows.cli]``: the mfal CLI by interpreter (``cluster.python``, else this one), no PATH."""
    return [cluster.python or sys.executable, "-m", "flows.cli"]


def render_script(
    *, options: list[str], command: list[str], setup: list[str], env: dict[str, str], workdir: Path
) -> str:
    """A batch script: ``#SBATCH`` resource lines, setup lines, env exports, then ``exec command`` (all quoted)."""
    for key in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"environment variable name {key!r} is not valid")
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH {opt}" for opt in options]
    lines += ["set -eo pipefail"]
    lines += list(setup)
    lines += ["set -u"]  # after the setup lines: module/conda scripts often read unset variables
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines += [f"cd {shlex.quote(str(workdir))}", "exec " + shlex.join(command), ""]
    return "\n".join(lines)


def step_script(cluster: ClusterConfig, command: list[str], run_dir: Path, key: str, queue_name: str,
                workdir: Path) -> str:
    """The batch script of one step: its queue's resources, ``<mfal> slurm-step --dir RUN --key KEY``.

    Run options (device) travel in the job's own arguments (``job.json``), not in the environment.
    """
    return render_script(
        options=sbatch_options(cluster.queues[queue_name]),
        command=[*command, "slurm-step", "--dir", str(run_dir), "--key", key],
        setup=cluster.setup,
        env={"MFAL_RUN_DIR": str(run_dir)},
        workdir=workdir,
    )


def driver_script(cluster: ClusterConfig, command: list[str], run_dir: Path, workdir: Path) -> str:
    """The batch script of a driver tick: ``<mfal> slurm-tick --dir RUN``."""
    return render_script(
        options=sbatch_options(cluster.driver),
        command=[*command, "slurm-tick", "--dir", str(run_dir)],
        setup=cluster.setup,
        env={"MFAL_RUN_DIR": str(run_dir)},
        workdir=workdir,
    )
