"""Run any jobflow Flow on SLURM without a database.

Design (all state lives in files under ``RUN_DIR/slurm``; nothing needs MongoDB):

* ``prepare_run`` writes the flow (``flow.json``), the cluster config and an empty ``state.json``.
* A short **driver tick** job (``mfal slurm-tick --dir RUN_DIR``) reads the finished steps, records failures
  with their reason, adds the jobs that finished steps created (``Response(replace/addition/detour)``:
  recursive rounds), submits every job whose parents are done as its **own sbatch job** (labeling jobs to the
  CPU queue, training jobs with ``--gres=gpu:N``), and submits the next tick with
  ``--dependency=afterany:<those steps>``. No process polls; a tick runs for about a second.
* A **step** job (``mfal slurm-step --dir RUN_DIR --key UUID_INDEX``) resolves its inputs from the output files
  of earlier steps, runs the job, and writes its output documents as JSON files (one writer per file).

Every value that reaches a batch script is either checked to be a plain token (``#SBATCH`` options) or
``shlex.quote``-d (paths); job names travel as sbatch arguments (no shell), sanitised.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.submit.config import ClusterConfig, QueueConfig
from flows.submit.security import redact
from mfal.errors import ConfigError, MfalError

logger = logging.getLogger(__name__)

SUBDIR = "slurm"
TERMINAL = ("completed", "failed", "skipped", "stopped")


class SubmitError(MfalError):
    """The scheduler refused a submission or cannot be reached."""


# ----------------------------------------------------------------------------- (de)serialisation
def _dump(obj: Any, path: Path) -> None:
    """Atomically write ``obj`` (MSONable/jsanitisable) as JSON."""
    from monty.json import jsanitize

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsanitize(obj, strict=True, enum_values=True, allow_bson=True), default=str))
    os.replace(tmp, path)


def _load_obj(path: Path) -> Any:
    from monty.json import MontyDecoder

    return MontyDecoder().process_decoded(json.loads(path.read_text()))


def _iter_jobs(flow: Any) -> Iterator[Any]:
    """All jobs of a (nested) Flow, in the flow's order."""
    from jobflow import Flow, Job

    if isinstance(flow, Job):
        yield flow
        return
    for item in flow.jobs if isinstance(flow, Flow) else flow:
        yield from _iter_jobs(item)


def job_key(job: Any) -> str:
    """``UUID_INDEX``: the file-safe identity of one job run."""
    return f"{job.uuid}_{job.index}"


def slurm_job_name(prefix: str, name: str) -> str:
    """A SLURM job name built from a (possibly hostile) jobflow job name: only ``[A-Za-z0-9_.-]``, ≤ 64 chars."""
    return (prefix + "-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name))[:64]


# ----------------------------------------------------------------------------- sbatch
def find_sbatch() -> str:
    """Absolute path of ``sbatch`` or a SubmitError saying it is not on PATH."""
    path = shutil.which("sbatch")
    if path is None:
        raise SubmitError(
            "sbatch not found on PATH: run on a SLURM login node (or start scripts/start-slurm.sh)"
        )
    return path


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


def _run_sbatch(args: list[str], what: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = redact(
            (proc.stderr or proc.stdout).strip().splitlines()[-1] if (proc.stderr or proc.stdout) else ""
        )
        raise SubmitError(f"sbatch refused {what}: {msg}")
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


# ----------------------------------------------------------------------------- scripts
def mfal_executable() -> str:
    """The ``mfal`` console script of this interpreter (absolute path)."""
    candidate = Path(sys.executable).parent / "mfal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("mfal")
    if found is None:
        raise ConfigError("cannot find the 'mfal' executable next to python or on PATH (pip install -e .)")
    return found


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


@dataclass
class Run:
    """Paths and config of one SLURM run directory."""

    run_dir: Path
    cluster: ClusterConfig
    mfal: str

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
        meta = json.loads((root / "run.json").read_text())
        return cls(Path(run_dir).resolve(), ClusterConfig.model_validate(meta["cluster"]), meta["mfal"])

    def step_env(self, queue_name: str) -> dict[str, str]:
        env = {"MFAL_RUN_DIR": str(self.run_dir)}
        if queue_name == "train" or self.cluster.queues[queue_name].gpus:
            env["MFAL_DEVICE"] = self.cluster.device
        return env

    def step_script(self, key: str, queue_name: str) -> str:
        queue = self.cluster.queues[queue_name]
        return render_script(
            options=sbatch_options(queue),
            command=[self.mfal, "slurm-step", "--dir", str(self.run_dir), "--key", key],
            setup=self.cluster.setup,
            env=self.step_env(queue_name),
            workdir=self.step_dir(key),
        )

    def driver_script(self) -> str:
        return render_script(
            options=sbatch_options(self.cluster.driver),
            command=[self.mfal, "slurm-tick", "--dir", str(self.run_dir)],
            setup=self.cluster.setup,
            env={"MFAL_RUN_DIR": str(self.run_dir)},
            workdir=self.root,
        )


# ----------------------------------------------------------------------------- state
@dataclass
class State:
    """``state.json``: one entry per job run (``UUID_INDEX``) plus the flows added at run time."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    added_flows: list[dict[str, str]] = field(default_factory=list)  # {"file", "by"}
    ticks: list[str] = field(default_factory=list)
    pending_tick: str | None = None
    status: str = "running"

    @classmethod
    def load(cls, path: Path) -> State:
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, path: Path) -> None:
        _dump(self.__dict__, path)


def prepare_run(flow: Any, run_dir: Path, cluster: ClusterConfig, *, write: bool = True) -> Run:
    """Create ``RUN_DIR/slurm`` with the flow, config and an empty state (``write=False``: only compute)."""
    from jobflow import Flow

    run_dir = Path(run_dir).resolve()
    if "\n" in str(run_dir):
        raise ConfigError(f"run directory {str(run_dir)!r} contains a newline")
    run = Run(run_dir, cluster, mfal_executable())
    if write:
        if (run.root / "run.json").exists():
            raise ConfigError(f"{run_dir} already holds a SLURM run; use --resume to continue it")
        (run.root / "jobs").mkdir(parents=True, exist_ok=True)
        (run.root / "flows").mkdir(exist_ok=True)
        (run.root / "outputs").mkdir(exist_ok=True)
        flow = flow if isinstance(flow, Flow) else Flow(flow)
        _dump(flow.as_dict(), run.root / "flows" / "root.json")
        State().save(run.root / "state.json")
        _dump({"cluster": cluster.model_dump(), "mfal": run.mfal}, run.root / "run.json")
    return run


def _lock(run: Run):
    from filelock import FileLock

    return FileLock(str(run.root / "driver.lock"), timeout=120)


def _all_jobs(run: Run, state: State) -> dict[str, Any]:
    flows = [run.root / "flows" / "root.json"] + [run.root / "flows" / f["file"] for f in state.added_flows]
    jobs: dict[str, Any] = {}
    for path in flows:
        for job in _iter_jobs(_load_obj(path)):
            jobs[job_key(job)] = job
    return jobs


def _parents(job: Any) -> set[str]:
    return {ref.uuid for ref in job.input_references} - {job.uuid}


def _slurm_state(slurm_id: str) -> str | None:
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


def _collect(run: Run, state: State, key: str, rec: dict[str, Any]) -> None:
    """Update one submitted step from its files (done / error) or SLURM's record."""
    sdir = run.step_dir(key)
    if (sdir / "done.json").exists():
        rec["state"] = "completed"
        resp = json.loads((sdir / "response.json").read_text())
        for kind in ("replace", "detour", "addition"):
            if resp.get(kind):
                name = f"{key}-{kind}.json"
                (run.root / "flows" / name).write_text((sdir / f"{kind}.json").read_text())
                state.added_flows.append({"file": name, "by": key, "kind": kind})
        rec["stop_children"] = bool(resp.get("stop_children"))
        rec["stop_jobflow"] = bool(resp.get("stop_jobflow"))
        return
    if (sdir / "error.json").exists():
        rec["state"] = "failed"
        rec["reason"] = json.loads((sdir / "error.json").read_text())["reason"]
        return
    final = _slurm_state(rec["slurm_id"])
    if final is not None:
        rec["state"] = "failed"
        rec["reason"] = f"SLURM job {rec['slurm_id']} ended {final} without writing an output"


def tick(run_dir: Path, *, submit: bool = True) -> dict[str, Any]:
    """One driver step: collect finished steps, submit the ready ones and the next tick. Returns a summary."""
    from jobflow.core.reference import OnMissing

    run = Run.open(run_dir)
    with _lock(run):
        state_path = run.root / "state.json"
        state = State.load(state_path)
        for key, rec in state.jobs.items():
            if rec["state"] == "submitted":
                _collect(run, state, key, rec)
        jobs = _all_jobs(run, state)
        latest: dict[str, int] = {}
        for job in jobs.values():
            latest[job.uuid] = max(latest.get(job.uuid, 0), job.index)

        def uuid_state(uuid: str) -> str:
            rec = state.jobs.get(f"{uuid}_{latest.get(uuid, 1)}")
            return rec["state"] if rec else "pending"

        stop_all = any(r.get("stop_jobflow") for r in state.jobs.values())
        stopped = {k.rsplit("_", 1)[0] for k, r in state.jobs.items() if r.get("stop_children")}
        ready: list[str] = []
        changed = True
        while changed:  # propagate skipped/stopped through the graph
            changed = False
            for key, job in jobs.items():
                if key in state.jobs:
                    continue
                parents = _parents(job)
                pstates = {p: uuid_state(p) for p in parents if p in latest}
                if stop_all or parents & stopped or any(s == "stopped" for s in pstates.values()):
                    state.jobs[key] = {
                        "name": job.name,
                        "state": "stopped",
                        "reason": "a parent stopped its children",
                    }
                    changed = True
                elif any(s in ("failed", "skipped") for s in pstates.values()):
                    if job.config.on_missing_references == OnMissing.ERROR:
                        bad = sorted(p for p, s in pstates.items() if s in ("failed", "skipped"))
                        names = [jobs[f"{p}_{latest[p]}"].name for p in bad]
                        state.jobs[key] = {
                            "name": job.name,
                            "state": "skipped",
                            "reason": f"parent failed: {names}",
                        }
                        changed = True
                    elif all(s in TERMINAL for s in pstates.values()) and key not in ready:
                        ready.append(key)
                elif all(s == "completed" for s in pstates.values()) and key not in ready:
                    ready.append(key)
        new_ids: list[str] = []
        for key in ready:
            job = jobs[key]
            qname, _ = run.cluster.queue_for(job.name)
            sdir = run.step_dir(key)
            sdir.mkdir(parents=True, exist_ok=True)
            _dump(job.as_dict(), sdir / "job.json")
            script = sdir / "step.sh"
            script.write_text(run.step_script(key, qname))
            rec: dict[str, Any] = {"name": job.name, "queue": qname, "state": "submitted"}
            if submit:
                rec["slurm_id"] = _run_sbatch(
                    [
                        find_sbatch(),
                        "--parsable",
                        f"--job-name={slurm_job_name(run.cluster.name, job.name)}",
                        f"--output={sdir / 'slurm-%j.out'}",
                        str(script),
                    ],
                    f"step {job.name!r}",
                )
                new_ids.append(rec["slurm_id"])
            state.jobs[key] = rec
        waiting = [
            r["slurm_id"] for r in state.jobs.values() if r["state"] == "submitted" and "slurm_id" in r
        ]
        if not waiting and not ready:
            bad = any(r["state"] in ("failed", "skipped") for r in state.jobs.values())
            state.status = "failed" if bad else "completed"
            _cancel_pending_tick(state)
        elif submit:
            state.status = "running"
            if new_ids or state.pending_tick is None:
                _cancel_pending_tick(state)
                state.pending_tick = submit_tick(run, after=waiting)
                state.ticks.append(state.pending_tick)
        state.save(state_path)
        summary = {
            "status": state.status,
            "submitted": [state.jobs[k]["name"] for k in ready],
            "counts": _counts(state),
        }
        logger.info("tick %s: %s", run.run_dir, summary)
        return summary


def _counts(state: State) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rec in state.jobs.values():
        counts[rec["state"]] = counts.get(rec["state"], 0) + 1
    return counts


def _cancel_pending_tick(state: State) -> None:
    """Cancel the fallback driver job if it is still waiting for its dependency."""
    jid, state.pending_tick = state.pending_tick, None
    if jid is None:
        return
    q = subprocess.run(["squeue", "-h", "-j", jid, "-o", "%T"], capture_output=True, text=True, check=False)
    if q.stdout.strip() == "PENDING":
        subprocess.run(["scancel", jid], capture_output=True, check=False)


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
    return _run_sbatch([*args, str(script)], "the driver job")


def reset_failed(run_dir: Path) -> list[str]:
    """Forget failed/skipped/stopped jobs and everything downstream of them so the next tick reruns them.

    Completed jobs that are not downstream keep their outputs (they are not run again). Returns the names reset.
    """
    run = Run.open(run_dir)
    with _lock(run):
        state_path = run.root / "state.json"
        state = State.load(state_path)
        jobs = _all_jobs(run, state)
        bad = {k for k, r in state.jobs.items() if r["state"] in ("failed", "skipped", "stopped")}
        reset: set[str] = set()
        frontier = set(bad)
        while frontier:
            reset |= frontier
            uuids = {k.rsplit("_", 1)[0] for k in frontier}
            frontier = {k for k, j in jobs.items() if k not in reset and _parents(j) & uuids}
            # flows added by a reset job go away with it
            for flow_rec in [f for f in state.added_flows if f["by"] in reset]:
                state.added_flows.remove(flow_rec)
                for j in _iter_jobs(_load_obj(run.root / "flows" / flow_rec["file"])):
                    frontier.add(job_key(j))
                (run.root / "flows" / flow_rec["file"]).unlink(missing_ok=True)
            frontier -= reset
        names = []
        for key in sorted(reset):
            rec = state.jobs.pop(key, None)
            if rec is not None:
                names.append(rec["name"])
            sdir = run.step_dir(key)
            if sdir.exists():
                shutil.rmtree(sdir)
            for out in (run.root / "outputs").glob(f"{key}*.json"):
                out.unlink()
        state.status = "running"
        state.save(state_path)
        return names


# ----------------------------------------------------------------------------- step
def _seeded_store(run: Run, job: Any):
    """A JobStore in memory holding every output written so far (docs + additional stores)."""
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    out = run.root / "outputs"
    names = set(getattr(job, "_kwargs", {}) or {}) | {p.name for p in out.iterdir() if p.is_dir()}
    store = JobStore(MemoryStore(), additional_stores={n: MemoryStore() for n in sorted(names)})
    store.connect()
    docs = [json.loads(p.read_text()) for p in out.glob("*.json")]
    if docs:
        store.docs_store.update(docs, key=["uuid", "index"])
    for name in names:
        blobs = (
            [json.loads(p.read_text()) for p in (out / name).glob("*.json")] if (out / name).is_dir() else []
        )
        if blobs:
            store.additional_stores[name].update(blobs, key="blob_uuid")
    return store


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_id"}


def run_step(run_dir: Path, key: str, *, then_tick: bool = True) -> None:
    """Run one job (inside its SLURM step), then tick so the next steps start at once.

    A failed job is recorded with its reason and re-raised (the SLURM job ends FAILED); a failed tick also
    ends the step non-zero, which starts the fallback driver job (``afternotok``).
    """
    try:
        _run_step(run_dir, key)
    finally:
        if then_tick:
            tick(run_dir)


def _run_step(run_dir: Path, key: str) -> None:
    run = Run.open(run_dir)
    sdir = run.step_dir(key)
    job = _load_obj(sdir / "job.json")
    store = _seeded_store(run, job)
    cwd = Path.cwd()
    try:
        os.chdir(sdir)
        response = job.run(store=store)
    except Exception as err:
        reason = redact(f"{type(err).__name__}: {err}")
        _dump({"reason": reason, "traceback": redact(traceback.format_exc())}, sdir / "error.json")
        raise
    finally:
        os.chdir(cwd)
    out = run.root / "outputs"
    for doc in store.docs_store.query({"uuid": job.uuid, "index": job.index}):
        _dump(_clean(doc), out / f"{key}.json")
    for name, add in store.additional_stores.items():
        for doc in add.query({"job_uuid": job.uuid, "job_index": job.index}):
            (out / name).mkdir(exist_ok=True)
            _dump(_clean(doc), out / name / f"{key}_{doc['blob_uuid']}.json")
    resp: dict[str, Any] = {"stop_children": response.stop_children, "stop_jobflow": response.stop_jobflow}
    for kind in ("replace", "detour", "addition"):
        new = getattr(response, kind)
        resp[kind] = new is not None
        if new is not None:
            _dump(new.as_dict(), sdir / f"{kind}.json")
    _dump(resp, sdir / "response.json")
    _dump({"key": key}, sdir / "done.json")


def read_output(run_dir: Path, uuid: str) -> Any:
    """Output of the last run of job ``uuid`` (after replacements), decoded."""
    from monty.json import MontyDecoder

    out = Path(run_dir).resolve() / SUBDIR / "outputs"
    docs = [json.loads(p.read_text()) for p in out.glob(f"{uuid}_*.json")]
    if not docs:
        raise MfalError(f"no output for job {uuid} in {out}")
    return MontyDecoder().process_decoded(max(docs, key=lambda d: d["index"])["output"])


def run_status(run_dir: Path) -> dict[str, Any]:
    """``{"status", "counts", "jobs": [{"key", "name", "queue", "state", "slurm_id", "reason"}]}``."""
    run = Run.open(run_dir)
    state = State.load(run.root / "state.json")
    rows = [
        {"key": k, **{f: r.get(f) for f in ("name", "queue", "state", "slurm_id", "reason")}}
        for k, r in state.jobs.items()
    ]
    return {"status": state.status, "counts": _counts(state), "jobs": rows}


def dry_run_scripts(flow: Any, run_dir: Path, cluster: ClusterConfig) -> list[tuple[str, str]]:
    """``[(title, script)]`` for the driver and the steps the first tick would submit; writes nothing."""
    run = prepare_run(flow, run_dir, cluster, write=False)
    out = [("driver (first tick; later a fallback tick with --dependency=afternotok:<steps>)", run.driver_script())]
    used: set[str] = set()
    for job in _iter_jobs(flow):
        parents = _parents(job)
        qname, _ = cluster.queue_for(job.name)
        when = "first tick" if not parents else "after its parents completed"
        out.append(
            (
                f"step {slurm_job_name(cluster.name, job.name)} [{qname}] ({when})",
                run.step_script(job_key(job), qname),
            )
        )
        used.add(qname)
    for qname, queue in cluster.queues.items():
        if qname not in used:
            title = f"step template [{qname}] for jobs created at run time named like {queue.match or 'anything else'}"
            out.append((title, run.step_script("UUID_INDEX", qname)))
    return out

