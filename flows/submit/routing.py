"""Which queue serves a job: by name, then by device (a CUDA job must land on a queue with GPUs). Pure.

A job's device is the one it carries in its own arguments (a ``RunOptions`` or a ``device=`` keyword), else the
flow's device for the jobs named in ``ClusterConfig.device_jobs`` (explore, score, train, evaluate: the torch
steps). A job that needs a GPU and whose name-matched queue has none goes to the GPU queue; when no configured
queue has a GPU, that is a one-line ConfigError at submit time, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flows.submit.config import ClusterConfig, QueueConfig
from mfal.errors import ConfigError


def needs_gpu(device: str | None) -> bool:
    """True for ``cuda`` and ``cuda:N`` (``auto`` falls back to the CPU; ``cpu`` never needs a GPU)."""
    return device is not None and device.startswith("cuda")


def _device_in(value: Any) -> str | None:
    from mfal.runopts import RunOptions

    if isinstance(value, RunOptions):
        return value.device
    if isinstance(value, dict) and str(value.get("@class")) == "RunOptions":
        return value.get("device")
    return None


def job_device(job: Any) -> str | None:
    """The device a jobflow job carries in its arguments (``RunOptions`` or ``device=``), else None."""
    kwargs = getattr(job, "function_kwargs", None) or {}
    for value in [*(getattr(job, "function_args", None) or ()), *kwargs.values()]:
        dev = _device_in(value)
        if dev is not None:
            return dev
    dev = kwargs.get("device")
    return dev if isinstance(dev, str) else None


def is_device_job(name: str, cluster: ClusterConfig) -> bool:
    """True if ``name`` contains one of ``cluster.device_jobs`` (jobs that run torch on the flow's device)."""
    return any(pattern in name for pattern in cluster.device_jobs)


def gpu_queue(cluster: ClusterConfig) -> tuple[str, QueueConfig] | None:
    """The queue for device jobs that need a GPU: ``gpu_queue`` if set, else the first queue with ``gpus > 0``."""
    if cluster.gpu_queue is not None:
        return cluster.gpu_queue, cluster.queues[cluster.gpu_queue]
    return next(((k, q) for k, q in cluster.queues.items() if q.gpus > 0), None)


def job_device_for(name: str, carried: str | None, cluster: ClusterConfig, flow_device: str | None) -> str | None:
    """The device a job runs on: the one it carries, else the flow's for a device job, else None."""
    if carried is not None:
        return carried
    return flow_device if is_device_job(name, cluster) else None


def route(name: str, cluster: ClusterConfig, device: str | None = None) -> tuple[str, QueueConfig]:
    """(queue name, queue) of a job named ``name`` that runs on ``device`` (None: no device needed).

    Raises ConfigError when the job needs a GPU and no configured queue has one.
    """
    qname, queue = cluster.queue_for(name)
    if not needs_gpu(device) or queue.gpus > 0:
        return qname, queue
    found = gpu_queue(cluster)
    if found is None:
        raise ConfigError(
            f"cluster config: job {name!r} runs on device {device!r} but its queue {qname!r} has no GPU and no "
            "queue has gpus > 0 (give a queue gpus: 1, or use --device cpu/auto)"
        )
    return found


def check_routing(cluster: ClusterConfig, flow_device: str | None, jobs: Iterable[tuple[str, str | None]] = ()) -> None:
    """Every job that the flow has or will create can be served: raise ConfigError before anything is written.

    ``jobs``: ``(name, carried device)`` of the jobs known at submit time; the jobs created at run time are
    covered by ``device_jobs`` with the flow's device.
    """
    if needs_gpu(flow_device) and gpu_queue(cluster) is None:
        raise ConfigError(
            f"cluster config: device {flow_device!r} needs a GPU for the {cluster.device_jobs} jobs but no queue "
            "has gpus > 0 (give a queue gpus: 1, or use --device cpu/auto)"
        )
    for name, carried in jobs:
        route(name, cluster, job_device_for(name, carried, cluster, flow_device))
