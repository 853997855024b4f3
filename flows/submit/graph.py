"""The job graph of a SLURM run, as pure functions: readiness, skip and stop propagation, reset of the failed frontier.

No I/O and no scheduler: a run is a set of :class:`Node` (one per job run, key ``UUID_INDEX``) and the records of
``state.json`` (``{key: {"name", "state", ...}}``). :func:`plan_tick` says which jobs become skipped/stopped and
which are ready to submit; :func:`reset_frontier` says which records a resume forgets. The SLURM driver
(:mod:`flows.submit.slurm`) only reads files, calls these, and submits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: job states after which nothing more happens to that job run
TERMINAL = ("completed", "failed", "skipped", "stopped")
#: states that stop the children of a job that needs all its inputs
BROKEN = ("failed", "skipped")


@dataclass(frozen=True)
class Node:
    """One job run: ``key`` = ``UUID_INDEX``, its parents' uuids, and whether a missing input is an error."""

    key: str
    uuid: str
    index: int
    name: str
    parents: frozenset[str] = frozenset()
    needs_all_inputs: bool = True  # jobflow OnMissing.ERROR; False: runs with None for a failed parent


def node_of(job: Any) -> Node:
    """The :class:`Node` of a jobflow ``Job``."""
    from jobflow.core.reference import OnMissing

    parents = frozenset(ref.uuid for ref in job.input_references) - {job.uuid}
    return Node(
        key=job_key(job),
        uuid=job.uuid,
        index=job.index,
        name=job.name,
        parents=parents,
        needs_all_inputs=job.config.on_missing_references == OnMissing.ERROR,
    )


def iter_jobs(flow: Any) -> Iterator[Any]:
    """All jobs of a (nested) jobflow Flow, in the flow's order."""
    from jobflow import Flow, Job

    if isinstance(flow, Job):
        yield flow
        return
    for item in flow.jobs if isinstance(flow, Flow) else flow:
        yield from iter_jobs(item)


def job_key(job: Any) -> str:
    """``UUID_INDEX``: the file-safe identity of one job run."""
    return f"{job.uuid}_{job.index}"


def uuid_of(key: str) -> str:
    """The job uuid of a ``UUID_INDEX`` key."""
    return key.rsplit("_", 1)[0]


@dataclass
class TickPlan:
    """What one driver tick decides: new terminal records (skipped/stopped) and the keys to submit, in order."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    ready: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # ready, held back by ``max_running``


def plan_tick(
    nodes: Mapping[str, Node], records: Mapping[str, Mapping[str, Any]], *, max_running: int | None = None
) -> TickPlan:
    """Propagate stop/skip through the graph and list the jobs whose parents are done.

    A job is *stopped* when a parent asked to stop its children (or any job stopped the whole flow, or a parent
    is stopped), *skipped* when a parent failed or was skipped and the job needs all its inputs, and *ready* when
    every parent completed (or, for a job that tolerates missing inputs, every parent is terminal). Only the
    latest index of each uuid counts as the parent. ``max_running`` caps submitted-but-unfinished jobs (e.g. 1:
    a single writer of an embedded store); the rest are ``deferred`` to a later tick.
    """
    plan = TickPlan()
    latest: dict[str, int] = {}
    for node in nodes.values():
        latest[node.uuid] = max(latest.get(node.uuid, 0), node.index)

    def state_of(key: str) -> str | None:
        rec = plan.records.get(key) or records.get(key)
        return rec["state"] if rec else None

    def uuid_state(uuid: str) -> str:
        return state_of(f"{uuid}_{latest.get(uuid, 1)}") or "pending"

    stop_all = any(r.get("stop_jobflow") for r in records.values())
    stopped = {uuid_of(k) for k, r in records.items() if r.get("stop_children")}
    ready: list[str] = []
    changed = True
    while changed:
        changed = False
        for key, node in nodes.items():
            if state_of(key) is not None or key in ready:
                continue
            pstates = {p: uuid_state(p) for p in node.parents if p in latest}
            if stop_all or node.parents & stopped or "stopped" in pstates.values():
                plan.records[key] = {"name": node.name, "state": "stopped", "reason": "a parent stopped its children"}
                changed = True
            elif any(s in BROKEN for s in pstates.values()):
                if node.needs_all_inputs:
                    bad = sorted(p for p, s in pstates.items() if s in BROKEN)
                    names = [nodes[f"{p}_{latest[p]}"].name for p in bad]
                    plan.records[key] = {"name": node.name, "state": "skipped", "reason": f"parent failed: {names}"}
                    changed = True
                elif all(s in TERMINAL for s in pstates.values()):
                    ready.append(key)
            elif all(s == "completed" for s in pstates.values()):
                ready.append(key)
    if max_running is not None:
        running = sum(1 for r in records.values() if r["state"] == "submitted")
        room = max(0, max_running - running)
        ready, plan.deferred = ready[:room], ready[room:]
    plan.ready = ready
    return plan


def run_finished(records: Mapping[str, Mapping[str, Any]], plan: TickPlan) -> str | None:
    """``"completed"``/``"failed"`` when nothing is running, ready or deferred; else None (still running)."""
    if plan.ready or plan.deferred or any(r["state"] == "submitted" for r in records.values()):
        return None
    return "failed" if any(r["state"] in BROKEN for r in records.values()) else "completed"


def reset_frontier(
    nodes: Mapping[str, Node],
    records: Mapping[str, Mapping[str, Any]],
    added_flows: Iterable[Mapping[str, str]],
    flow_keys: Mapping[str, Iterable[str]],
) -> tuple[set[str], list[str]]:
    """Keys to forget for a resume, and the added-flow files to drop.

    Starts from every failed/skipped/stopped record and closes over children (by parent uuid) and over the jobs
    of flows that a forgotten job added at run time (``added_flows``: ``{"file", "by"}``; ``flow_keys``: file ->
    keys of its jobs). Completed jobs outside that set keep their outputs.
    """
    added = list(added_flows)
    reset: set[str] = set()
    dropped: list[str] = []
    frontier = {k for k, r in records.items() if r["state"] in ("failed", "skipped", "stopped")}
    while frontier:
        reset |= frontier
        uuids = {uuid_of(k) for k in frontier}
        frontier = {k for k, n in nodes.items() if k not in reset and n.parents & uuids}
        for rec in [f for f in added if f["by"] in reset and f["file"] not in dropped]:
            dropped.append(rec["file"])
            frontier |= set(flow_keys.get(rec["file"], ()))
        frontier -= reset
    return reset, dropped


def counts(records: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """``{state: number of job runs}``."""
    out: dict[str, int] = {}
    for rec in records.values():
        out[rec["state"]] = out.get(rec["state"], 0) + 1
    return out
