"""Submit any jobflow Flow to a FireWorks LaunchPad, routed to CPU (labeling) and GPU (training) workers.

The LaunchPad file is found the way FireWorks' own ``lpad``/``qlaunch``/``rlaunch`` find it (``FW_CONFIG_FILE``
-> ``LAUNCHPAD_LOC``, or ``my_launchpad.yaml`` in the working directory or ``~/.fireworks``), so one
``FW_config.yaml`` (:func:`write_fw_config`) serves them all; ``--launchpad`` and ``$LAUNCHPAD_LOC`` still win.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from flows.submit.config import ClusterConfig, QueueConfig
from flows.submit.graph import iter_jobs
from flows.submit.routing import job_device, job_device_for, needs_gpu, route
from flows.submit.security import check_private, redact
from mfal.errors import ConfigError, MfalError

logger = logging.getLogger(__name__)

DEFAULT_LAUNCHPAD = Path("configs/fireworks/my_launchpad.yaml")


def queue_spec(queue: QueueConfig) -> dict[str, Any]:
    """FireWorks spec keys for one queue: ``_category``, ``_fworker`` and ``_queueadapter`` resources."""
    qa: dict[str, Any] = {"nodes": queue.nodes, "ntasks": queue.ntasks, "cpus_per_task": queue.cpus_per_task}
    for key, value in (
        ("queue", queue.partition),
        ("account", queue.account),
        ("qos", queue.qos),
        ("walltime", queue.time),
        ("mem", queue.mem),
    ):
        if value is not None:
            qa[key] = value
    if queue.gpus:
        qa["gres"] = f"gpu:{queue.gpus}"
    spec: dict[str, Any] = {"_category": queue.category, "_queueadapter": qa}
    if queue.fworker:
        spec["_fworker"] = queue.fworker
    return spec


def route_flow(flow: Any, cluster: ClusterConfig, device: str | None = None) -> Any:
    """Set each job's FireWorks spec from the queue its name (and device) routes it to; ``dynamic=True`` so jobs
    created at run time (recursive rounds via ``Response(replace=...)``) are routed the same way. With a CUDA
    ``device`` the ``device_jobs`` go to a queue with GPUs (ConfigError if there is none). Returns ``flow``."""
    def update(target: Any, queue: QueueConfig, **kw: Any) -> None:
        # pass_manager_config=False: jobflow would otherwise copy the parent's queue onto every job it creates
        target.update_config({"manager_config": queue_spec(queue), "pass_manager_config": False}, **kw)

    update(flow, cluster.queues["default"], dynamic=True)
    for name, queue in cluster.queues.items():
        if name == "default":
            continue
        for pattern in queue.match:
            update(flow, queue, name_filter=pattern, dynamic=True)
    if needs_gpu(device):
        for pattern in cluster.device_jobs:
            update(flow, route(pattern, cluster, device)[1], name_filter=pattern, dynamic=True)
    for job in iter_jobs(flow):  # a job that carries its own device goes where that device is served
        carried = job_device(job)
        if carried is not None:
            update(job, route(job.name, cluster, job_device_for(job.name, carried, cluster, device))[1], dynamic=False)
    return flow


def describe_workflow(flow: Any, cluster: ClusterConfig, device: str | None = None) -> list[str]:
    """What :func:`submit_flow` would add, one line per Firework (name, category, worker, resources); no DB."""
    from jobflow.managers.fireworks import flow_to_workflow

    route_flow(flow, cluster, device)
    wf = flow_to_workflow(flow, store=None)
    lines = [f"workflow {wf.name!r}: {len(wf.fws)} firework(s) now; rounds add theirs at run time"]
    for fw in wf.fws:
        spec = fw.spec
        lines.append(
            f"firework {fw.name!r}: _category={spec.get('_category')!r} _fworker={spec.get('_fworker')!r} "
            f"_queueadapter={spec.get('_queueadapter')}"
        )
    for qname, queue in cluster.queues.items():
        gpu = needs_gpu(device) and any(route(p, cluster, device)[0] == qname for p in cluster.device_jobs)
        names = [*queue.match, *(cluster.device_jobs if gpu else [])] or ["anything else"]
        lines.append(f"jobs created at run time named like {names} -> queue {qname!r} {queue_spec(queue)}")
    return lines


def fireworks_launchpad_loc() -> str | None:
    """The LaunchPad file FireWorks' own ``lpad``/``qlaunch`` use by default (``FW_CONFIG_FILE``'s
    ``LAUNCHPAD_LOC``, or a ``my_launchpad.yaml`` in the working directory or ``~/.fireworks``), or None."""
    from fireworks import fw_config

    return fw_config.LAUNCHPAD_LOC


def launchpad_path(path: str | Path | None) -> Path:
    """``path``, else ``$LAUNCHPAD_LOC``, else the one FireWorks would use, else ``configs/fireworks/my_launchpad.yaml``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("LAUNCHPAD_LOC") or fireworks_launchpad_loc() or DEFAULT_LAUNCHPAD)


def write_fw_config(launchpad: str | Path, out: str | Path) -> Path:
    """Write a FireWorks ``FW_config.yaml`` whose ``LAUNCHPAD_LOC`` is ``launchpad`` (absolute): with
    ``FW_CONFIG_FILE`` pointing at it, ``lpad``, ``qlaunch``, ``rlaunch`` and ``mfal submit`` use the same file."""
    from mfal.fileio import atomic_write_text

    lp = Path(launchpad).expanduser().resolve()
    if not lp.is_file():
        raise ConfigError(f"launchpad file {lp} does not exist")
    check_private(lp, "launchpad file")
    out = Path(out).expanduser()
    return atomic_write_text(out, yaml.safe_dump({"LAUNCHPAD_LOC": str(lp)}))


def load_launchpad(path: str | Path | None = None, *, timeout_ms: int = 3000):
    """Open and ping the LaunchPad of a YAML file; every problem is one ConfigError/MfalError line."""
    from fireworks import LaunchPad

    path = launchpad_path(path)
    if not path.is_file():
        raise ConfigError(f"launchpad file {path} does not exist (set --launchpad or LAUNCHPAD_LOC)")
    check_private(path, "launchpad file")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"launchpad file {path} is not valid YAML") from err
    except OSError as err:
        raise ConfigError(f"launchpad file {path}: cannot read ({err.strerror})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"launchpad file {path} must be a YAML mapping (host, port, name, ...)")
    allowed = set(inspect.signature(LaunchPad.__init__).parameters) - {"self"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"launchpad file {path}: unknown or wrong key {unknown} (allowed: {sorted(allowed)})")
    kwargs = dict(raw.get("mongoclient_kwargs") or {})
    kwargs.setdefault("serverSelectionTimeoutMS", timeout_ms)
    raw["mongoclient_kwargs"] = kwargs
    try:
        lp = LaunchPad.from_dict(raw)
    except TypeError as err:
        raise ConfigError(f"launchpad file {path}: unknown or wrong key ({redact(str(err))})") from err
    except Exception as err:
        raise MfalError(
            f"launchpad file {path}: cannot open the database: {redact(str(err)).splitlines()[0]}"
        ) from err
    try:
        lp.db.list_collection_names()
    except Exception as err:
        raise MfalError(
            f"MongoDB of launchpad file {path} is unreachable: {redact(str(err)).split(' (configured')[0][:200]}"
        ) from err
    if lp.fw_id_assigner.count_documents({}) == 0:
        raise MfalError(f"LaunchPad of {path} is not initialised: run `lpad -l {path} reset` once")
    return lp


def flush_mongomock(lp: Any) -> None:
    """In FireWorks' mongomock mode write the store file now and never again from this process."""
    store = getattr(getattr(lp, "connection", None), "_store", None)
    if store is not None and hasattr(store, "_to_file"):
        store._to_file()
        store._finalizer.detach()


def submit_flow(
    flow: Any, lp: Any, cluster: ClusterConfig, *, device: str | None = None, name: str | None = None
) -> list[int]:
    """Route, convert with ``flow_to_workflow(flow, store=None)`` (no store credentials in any spec) and add
    it to the LaunchPad. Returns the new Firework ids."""
    from jobflow.managers.fireworks import flow_to_workflow

    route_flow(flow, cluster, device)
    wf = flow_to_workflow(flow, store=None, **({"name": name} if name else {}))
    mapping = lp.add_wf(wf)
    logger.info("added workflow %s with %d fireworks", wf.name, len(mapping))
    return sorted(mapping.values())
