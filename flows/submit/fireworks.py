"""Submit any jobflow Flow to a FireWorks LaunchPad, routed to CPU (labeling) and GPU (training) workers."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from flows.submit.config import ClusterConfig, QueueConfig
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


def route_flow(flow: Any, cluster: ClusterConfig) -> Any:
    """Set each job's FireWorks spec from the queue its name matches; ``dynamic=True`` so jobs created at run
    time (recursive rounds via ``Response(replace=...)``) are routed the same way. Returns ``flow``."""
    # pass_manager_config=False: jobflow would otherwise copy the parent's queue onto every job it creates
    flow.update_config(
        {"manager_config": queue_spec(cluster.queues["default"]), "pass_manager_config": False}, dynamic=True
    )
    for name, queue in cluster.queues.items():
        if name == "default":
            continue
        for pattern in queue.match:
            flow.update_config(
                {"manager_config": queue_spec(queue), "pass_manager_config": False},
                name_filter=pattern,
                dynamic=True,
            )
    return flow


def launchpad_path(path: str | Path | None) -> Path:
    """``path``, else ``$LAUNCHPAD_LOC``, else ``configs/fireworks/my_launchpad.yaml``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("LAUNCHPAD_LOC") or DEFAULT_LAUNCHPAD)


def load_launchpad(path: str | Path | None = None, *, timeout_ms: int = 3000):
    """Open and ping the LaunchPad of a YAML file; every problem is one ConfigError/MfalError line."""
    from fireworks import LaunchPad

    path = launchpad_path(path)
    if not path.is_file():
        raise ConfigError(f"launchpad file {path} does not exist (set --launchpad or LAUNCHPAD_LOC)")
    check_private(path, "launchpad file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"launchpad file {path} is not valid YAML") from err
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


def submit_flow(flow: Any, lp: Any, cluster: ClusterConfig, *, name: str | None = None) -> list[int]:
    """Route, convert with ``flow_to_workflow(flow, store=None)`` (no store credentials in any spec) and add
    it to the LaunchPad. Returns the new Firework ids."""
    from jobflow.managers.fireworks import flow_to_workflow

    route_flow(flow, cluster)
    wf = flow_to_workflow(flow, store=None, **({"name": name} if name else {}))
    mapping = lp.add_wf(wf)
    logger.info("added workflow %s with %d fireworks", wf.name, len(mapping))
    return sorted(mapping.values())
