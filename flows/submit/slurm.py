"""Run any jobflow Flow on SLURM without a database: the driver (files + sbatch); decisions in ``graph``.

Design (all state lives in files under ``RUN_DIR/slurm``; nothing needs MongoDB):

* ``prepare_run`` writes the flow (``flows/root.json``), the cluster config and an empty ``state.json``.
* A short **driver tick** job (``mfal slurm-tick --dir RUN_DIR``) reads the finished steps, records failures
  with their reason, adds the jobs that finished steps created (``Response(replace/addition/detour)``:
  recursive rounds), asks :func:`flows.submit.graph.plan_tick` which jobs are ready, submits each as its **own
  sbatch job** on the queue :func:`flows.submit.routing.route` gives it (by name and device), and submits a
  fallback tick with ``--dependency=afternotok:<those steps>``. No process polls; a tick runs for about a second.
* A **step** job (``mfal slurm-step --dir RUN_DIR --key UUID_INDEX``, :mod:`flows.submit.step`) runs one job and
  writes its outputs as JSON files (one writer per file), then ticks.

Every value that reaches a batch script is a checked plain token or ``shlex.quote``-d (:mod:`.scripts`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.submit import graph
from flows.submit.config import ClusterConfig
from flows.submit.routing import job_device, job_device_for, needs_gpu, route
from flows.submit.sbatch import (
    SubmitError,
    cancel_if_pending,
    find_sbatch,
    preflight,
    run_sbatch,
    slurm_state,
)
from flows.submit.scripts import (
    cli_command,
    driver_script,
    render_script,
    sbatch_options,
    slurm_job_name,
    step_script,
)
from mfal.errors import ConfigError, MfalError
from mfal.fileio import atomic_write_json, read_json

__all__ = ["Run", "State", "SubmitError", "dry_run_scripts", "find_sbatch", "preflight", "prepare_run",
           "render_script", "reset_failed", "run_status", "sbatch_options", "slurm_job_name", "submit_tick", "tick"]

logger = logging.getLogger(__name__)

SUBDIR = "slurm"
job_key = graph.job_key
iter_jobs = graph.iter_jobs


# ----------------------------------------------------------------------------- (de)serialisation
def dump(obj: Any, path: Path) -> None:
    """Atomically write ``obj`` (MSONable/jsanitisable) as strict JSON."""
    from monty.json import jsanitize

    atomic_write_json(path, jsanitize(obj, strict=True, enum_values=True, allow_bson=True))


def load_obj(path: Path) -> Any:
    """The decoded (MSON) object of a JSON file written by :func:`dump`."""
    from monty.json import MontyDecoder

    return MontyDecoder().process_decoded(read_json(path))


# ----------------------------------------------------------------------------- run directory
@dataclass
class Run:
    """Paths and config of one SLURM run directory; ``device``: the flow's device (for routing)."""

    run_dir: Path
    cluster: ClusterConfig
    command: list[str]
    device: str | None = None

    @property
    def root(self) -> Path:
        return self.run_dir / SUBDIR

    def step_dir(self, key: str) -> Path:
        return self.root / "jobs" / key

    @classmethod
    def open(cls, run_dir: Path) -> Run:
        root = Path(run_dir).resolve() / SUBDIR
        if not (root / "run.json").exists():
            raise ConfigError(f"{run_dir} is not an mfal SLURM run directory (no {SUBDIR}/run.json)")
        meta = read_json(root / "run.json")
        command = meta.get("command") or [meta["mfal"]]  # runs prepared before flows.cli: the console script
        cluster = ClusterConfig.model_validate(meta["cluster"])
        return cls(Path(run_dir).resolve(), cluster, list(command), meta.get("device"))

    def step_script(self, key: str, queue_name: str) -> str:
        return step_script(self.cluster, self.command, self.run_dir, key, queue_name, self.step_dir(key))

    def driver_script(self) -> str:
        return driver_script(self.cluster, self.command, self.run_dir, self.root)

    def queue_of(self, job: Any) -> str:
        """The queue a job goes to (name, then device); ConfigError when none can serve its device."""
        device = job_device_for(job.name, job_device(job), self.cluster, self.device)
        return route(job.name, self.cluster, device)[0]


@dataclass
class State:
    """``state.json``: one entry per job run (``UUID_INDEX``) plus the flows added at run time."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    added_flows: list[dict[str, str]] = field(default_factory=list)  # {"file", "by", "kind"}
    ticks: list[str] = field(default_factory=list)
    pending_tick: str | None = None
    status: str = "running"

    @classmethod
    def load(cls, path: Path) -> State:
        return cls(**read_json(path, {}))

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.__dict__)


def prepare_run(
    flow: Any, run_dir: Path, cluster: ClusterConfig, *, device: str | None = None, write: bool = True
) -> Run:
    """Create ``RUN_DIR/slurm`` with the flow, config and an empty state (``write=False``: only compute).

    Every job of the flow is routed first: a job whose device no queue can serve is a ConfigError before any
    file is written.
    """
    from jobflow import Flow

    run_dir = Path(run_dir).resolve()
    if "\n" in str(run_dir):
        raise ConfigError(f"run directory {str(run_dir)!r} contains a newline")
    run = Run(run_dir, cluster, cli_command(cluster), device)
    for job in iter_jobs(flow):
        run.queue_of(job)
    if write:
        if (run.root / "run.json").exists():
            raise ConfigError(f"{run_dir} already holds a SLURM run; use --resume to continue it")
        for sub in ("jobs", "flows", "outputs"):
            (run.root / sub).mkdir(parents=True, exist_ok=True)
        dump((flow if isinstance(flow, Flow) else Flow(flow)).as_dict(), run.root / "flows" / "root.json")
        State().save(run.root / "state.json")
        dump({"cluster": cluster.model_dump(), "command": run.command, "device": device}, run.root / "run.json")
    return run


def _lock(run: Run):
    from filelock import FileLock

    return FileLock(str(run.root / "driver.lock"), timeout=120)


def _flow_files(run: Run, state: State) -> list[Path]:
    return [run.root / "flows" / "root.json"] + [run.root / "flows" / f["file"] for f in state.added_flows]


def _all_jobs(run: Run, state: State) -> dict[str, Any]:
    return {job_key(job): job for path in _flow_files(run, state) for job in iter_jobs(load_obj(path))}


# ----------------------------------------------------------------------------- driver tick
def _collect(run: Run, state: State, key: str, rec: dict[str, Any]) -> None:
    """Update one submitted step from its files (done / error) or SLURM's record."""
    sdir = run.step_dir(key)
    if (sdir / "done.json").exists():
        rec["state"] = "completed"
        resp = read_json(sdir / "response.json")
        for kind in ("replace", "detour", "addition"):
            if resp.get(kind):
                name = f"{key}-{kind}.json"
                shutil.copyfile(sdir / f"{kind}.json", run.root / "flows" / name)
                state.added_flows.append({"file": name, "by": key, "kind": kind})
        rec["stop_children"] = bool(resp.get("stop_children"))
        rec["stop_jobflow"] = bool(resp.get("stop_jobflow"))
        return
    if (sdir / "error.json").exists():
        rec["state"] = "failed"
        rec["reason"] = read_json(sdir / "error.json")["reason"]
        return
    final = slurm_state(rec["slurm_id"])
    if final is not None:
        rec["state"] = "failed"
        rec["reason"] = f"SLURM job {rec['slurm_id']} ended {final} without writing an output"


def _submit_step(run: Run, key: str, job: Any, submit: bool) -> dict[str, Any]:
    """Write the step's job and script and sbatch it; a job no queue can serve is recorded failed."""
    try:
        qname = run.queue_of(job)
    except ConfigError as err:
        return {"name": job.name, "state": "failed", "reason": str(err)}
    sdir = run.step_dir(key)
    sdir.mkdir(parents=True, exist_ok=True)
    dump(job.as_dict(), sdir / "job.json")
    script = sdir / "step.sh"
    script.write_text(run.step_script(key, qname))
    rec: dict[str, Any] = {"name": job.name, "queue": qname, "state": "submitted"}
    if submit:
        rec["slurm_id"] = run_sbatch(
            [find_sbatch(), "--parsable", f"--job-name={slurm_job_name(run.cluster.name, job.name)}",
             f"--output={sdir / 'slurm-%j.out'}", str(script)],
            f"step {job.name!r}",
        )
    return rec


def tick(run_dir: Path, *, submit: bool = True) -> dict[str, Any]:
    """One driver step: collect finished steps, submit the ready ones and the next tick. Returns a summary."""
    run = Run.open(run_dir)
    with _lock(run):
        state_path = run.root / "state.json"
        state = State.load(state_path)
        for key, rec in state.jobs.items():
            if rec["state"] == "submitted":
                _collect(run, state, key, rec)
        jobs = _all_jobs(run, state)
        nodes = {k: graph.node_of(j) for k, j in jobs.items()}
        submitted: list[str] = []
        while True:  # again when a ready job was refused at once (no queue for its device): its children skip
            plan = graph.plan_tick(nodes, state.jobs, max_running=run.cluster.max_running_steps)
            state.jobs.update(plan.records)
            for key in plan.ready:
                state.jobs[key] = _submit_step(run, key, jobs[key], submit)
            submitted += plan.ready
            if all(state.jobs[k]["state"] == "submitted" for k in plan.ready):
                break
        finished = graph.run_finished(state.jobs, graph.TickPlan(deferred=plan.deferred))
        if finished is not None:
            state.status = finished
            state.pending_tick = cancel_if_pending(state.pending_tick)
        elif submit:
            state.status = "running"
            waiting = [r["slurm_id"] for r in state.jobs.values() if r["state"] == "submitted" and "slurm_id" in r]
            if any(state.jobs[k].get("slurm_id") for k in submitted) or state.pending_tick is None:
                cancel_if_pending(state.pending_tick)
                state.pending_tick = submit_tick(run, after=waiting)
                state.ticks.append(state.pending_tick)
        state.save(state_path)
        summary = {
            "status": state.status,
            "submitted": [state.jobs[k]["name"] for k in submitted],
            "counts": graph.counts(state.jobs),
        }
        logger.info("tick %s: %s", run.run_dir, summary)
        return summary


def submit_tick(run: Run, after: list[str]) -> str:
    """Submit a driver tick; with ``after`` it is a fallback that runs only if one of those steps ends
    *not ok* (killed, timed out, crashed): steps tick themselves when they finish. Returns the SLURM id."""
    script = run.root / "driver.sh"
    script.write_text(run.driver_script())
    args = [
        find_sbatch(),
        "--parsable",
        f"--job-name={slurm_job_name(run.cluster.name, 'driver')}",
        f"--output={run.root / 'driver-%j.out'}",
    ]
    if after:
        args.append("--dependency=" + "?".join(f"afternotok:{jid}" for jid in after))
    return run_sbatch([*args, str(script)], "the driver job")


def reset_failed(run_dir: Path) -> list[str]:
    """Forget failed/skipped/stopped jobs and everything downstream of them so the next tick reruns them.

    Completed jobs that are not downstream keep their outputs (they are not run again). Returns the names reset.
    """
    run = Run.open(run_dir)
    with _lock(run):
        state_path = run.root / "state.json"
        state = State.load(state_path)
        jobs = _all_jobs(run, state)
        flow_keys = {
            f["file"]: [job_key(j) for j in iter_jobs(load_obj(run.root / "flows" / f["file"]))]
            for f in state.added_flows
        }
        nodes = {k: graph.node_of(j) for k, j in jobs.items()}
        reset, dropped = graph.reset_frontier(nodes, state.jobs, state.added_flows, flow_keys)
        state.added_flows = [f for f in state.added_flows if f["file"] not in dropped]
        for name in dropped:
            (run.root / "flows" / name).unlink(missing_ok=True)
        names = []
        for key in sorted(reset):
            rec = state.jobs.pop(key, None)
            if rec is not None:
                names.append(rec["name"])
            if run.step_dir(key).exists():
                shutil.rmtree(run.step_dir(key))
            for out in (run.root / "outputs").glob(f"{key}*.json"):
                out.unlink()
        state.status = "running"
        state.save(state_path)
        return names


# ----------------------------------------------------------------------------- read-only views
def run_status(run_dir: Path) -> dict[str, Any]:
    """``{"status", "counts", "jobs": [{"key", "name", "queue", "state", "slurm_id", "reason"}]}``."""
    run = Run.open(run_dir)
    state = State.load(run.root / "state.json")
    rows = [
        {"key": k, **{f: r.get(f) for f in ("name", "queue", "state", "slurm_id", "reason")}}
        for k, r in state.jobs.items()
    ]
    return {"status": state.status, "counts": graph.counts(state.jobs), "jobs": rows}


def dry_run_scripts(
    flow: Any, run_dir: Path, cluster: ClusterConfig, *, device: str | None = None
) -> list[tuple[str, str]]:
    """``[(title, script)]`` for the driver and the steps the first tick would submit; writes nothing."""
    run = prepare_run(flow, run_dir, cluster, device=device, write=False)
    out = [("driver (first tick; later a fallback tick with --dependency=afternotok:<steps>)", run.driver_script())]
    used: set[str] = set()
    for job in iter_jobs(flow):
        qname = run.queue_of(job)
        when = "first tick" if not graph.node_of(job).parents else "after its parents completed"
        out.append(
            (f"step {slurm_job_name(cluster.name, job.name)} [{qname}] ({when})", run.step_script(job_key(job), qname))
        )
        used.add(qname)
    for qname, queue in cluster.queues.items():
        if qname not in used:
            moved = [p for p in cluster.device_jobs if needs_gpu(device) and route(p, cluster, device)[0] == qname]
            like = [*queue.match, *(p for p in moved if p not in queue.match)] or "anything else"
            title = f"step template [{qname}] for jobs created at run time named like {like}"
            out.append((title, run.step_script("UUID_INDEX", qname)))
    return out


def read_output(run_dir: Path, uuid: str) -> Any:
    """Output of the last run of job ``uuid`` (after replacements), decoded."""
    from monty.json import MontyDecoder

    out = Path(run_dir).resolve() / SUBDIR / "outputs"
    docs = [json.loads(p.read_text()) for p in out.glob(f"{uuid}_*.json")]
    if not docs:
        raise MfalError(f"no output for job {uuid} in {out}")
    return MontyDecoder().process_decoded(max(docs, key=lambda d: d["index"])["output"])
