"""Cluster configuration: which queue (SLURM partition / FireWorks category) each job goes to.

Jobs are routed by name: the first queue whose ``match`` substrings occur in a job's name gets it
(labeling jobs -> CPU queue, training jobs -> GPU queue); all others go to the ``default`` queue. A job that runs
on a CUDA device goes to a queue with GPUs (:mod:`flows.submit.routing`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mfal.errors import ConfigError

#: characters allowed in values that end up in ``#SBATCH`` lines (partition, account, time, mem, ...)
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_.:,+=@/-]+$")


def check_token(value: str, what: str) -> str:
    """Return ``value`` if it is a plain token safe for an ``#SBATCH`` line, else raise ConfigError."""
    if not _SAFE_TOKEN.match(value):
        raise ConfigError(
            f"{what}={value!r} has characters not allowed in a batch-script option "
            "(allowed: letters, digits and _ . : , + = @ / -)"
        )
    return value


class QueueConfig(BaseModel):
    """Resources of one kind of job (CPU labeling, GPU training, default)."""

    model_config = ConfigDict(extra="forbid")

    match: list[str] = Field(default_factory=list, description="job-name substrings routed to this queue")
    partition: str | None = Field(None, description="SLURM partition (None: the cluster's default)")
    account: str | None = Field(None, description="SLURM account")
    qos: str | None = Field(None, description="SLURM QOS")
    time: str | None = Field(None, description="wall-time limit, SLURM format e.g. 02:00:00")
    nodes: int = Field(1, ge=1, description="nodes per job")
    ntasks: int = Field(1, ge=1, description="tasks (MPI ranks) per job")
    cpus_per_task: int = Field(1, ge=1, description="cores per task")
    mem: str | None = Field(None, description="memory per node, e.g. 8G (None: no --mem)")
    gpus: int = Field(0, ge=0, description="GPUs per job, requested as --gres=gpu:N")
    category: str = Field("default", description="FireWorks _category of jobs in this queue")
    fworker: str | None = Field(None, description="FireWorks _fworker name that must run these jobs")

    @field_validator("partition", "account", "qos", "time", "mem", "category", "fworker")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        return None if value is None else check_token(value, "queue option")


class ClusterConfig(BaseModel):
    """A cluster: queues for labeling / training / everything else, plus the driver job (SLURM)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("cluster", description="label used in job names")
    queues: dict[str, QueueConfig] = Field(
        default_factory=lambda: {
            "label": QueueConfig(match=["label"], category="cpu"),
            "train": QueueConfig(match=["train"], category="gpu", gpus=0),
            "default": QueueConfig(category="default"),
        },
        description="queue name -> resources; 'default' catches jobs no other queue matches",
    )
    driver: QueueConfig = Field(
        default_factory=lambda: QueueConfig(time="00:30:00"),
        description="resources of the short SLURM driver job that submits the next steps",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="torch device of the flow's device jobs when --device is not given (passed in their arguments)",
    )
    device_jobs: list[str] = Field(
        default_factory=lambda: ["explore", "score", "train", "evaluate"],
        description="job-name substrings of the jobs that run torch on the device; on cuda they need a GPU queue",
    )
    gpu_queue: str | None = Field(
        None, description="queue for device jobs that need a GPU (default: the first queue with gpus > 0)"
    )
    max_running_steps: int | None = Field(
        None, ge=1, description="SLURM: at most this many step jobs queued/running at once (None: no limit)"
    )
    setup: list[str] = Field(
        default_factory=list,
        description="shell lines run before every step (e.g. 'module load cuda'); written verbatim",
    )
    python: str | None = Field(None, description="python interpreter on the nodes (default: the submitter's)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_token(value, "name")

    @field_validator("queues")
    @classmethod
    def _has_default(cls, queues: dict[str, QueueConfig]) -> dict[str, QueueConfig]:
        if "default" not in queues:
            raise ValueError(f"queues needs a 'default' entry (got {sorted(queues)})")
        for key in queues:
            check_token(key, "queue name")
        return queues

    @model_validator(mode="after")
    def _gpu_queue(self) -> ClusterConfig:
        if self.gpu_queue is not None:
            queue = self.queues.get(self.gpu_queue)
            if queue is None or queue.gpus == 0:
                raise ValueError(f"gpu_queue={self.gpu_queue!r} is not a queue with gpus > 0 (got {sorted(self.queues)})")
        return self

    def queue_for(self, job_name: str) -> tuple[str, QueueConfig]:
        """The (name, queue) that a job with this name is routed to."""
        for key, queue in self.queues.items():
            if key != "default" and any(m in job_name for m in queue.match):
                return key, queue
        return "default", self.queues["default"]


def load_cluster_config(path: str | Path | None) -> ClusterConfig:
    """Read a cluster YAML (``None``: built-in defaults); errors name the file and field."""
    if path is None:
        return ClusterConfig()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"cluster config {path} does not exist") from err
    except OSError as err:
        raise ConfigError(f"cluster config {path}: cannot read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"cluster config {path}: not a text YAML file") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"cluster config {path} is not valid YAML: {err}".splitlines()[0]) from err
    try:
        return ClusterConfig.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "<top level>"
        msg = " ".join(str(first["msg"]).split())
        raise ConfigError(f"cluster config {path}: field {loc!r}: {msg}") from err
