"""One step of a SLURM run (inside its sbatch job): resolve inputs from earlier outputs, run the job, write outputs.

Outputs are JSON files under ``RUN_DIR/slurm/outputs`` (one writer per file); the job's response (replace/detour/
addition flows, stop flags) goes to its step directory, where the next driver tick reads it.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

from flows.submit.security import redact
from flows.submit.slurm import Run, dump, load_obj, tick
from mfal.fileio import read_json


def _seeded_store(run: Run, job: Any):
    """A JobStore in memory holding every output written so far (docs + additional stores)."""
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    out = run.root / "outputs"
    names = set(getattr(job, "_kwargs", {}) or {}) | {p.name for p in out.iterdir() if p.is_dir()}
    store = JobStore(MemoryStore(), additional_stores={n: MemoryStore() for n in sorted(names)})
    store.connect()
    docs = [read_json(p) for p in out.glob("*.json")]
    if docs:
        store.docs_store.update(docs, key=["uuid", "index"])
    for name in names:
        blobs = [read_json(p) for p in (out / name).glob("*.json")] if (out / name).is_dir() else []
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
    job = load_obj(sdir / "job.json")
    store = _seeded_store(run, job)
    cwd = Path.cwd()
    try:
        os.chdir(sdir)
        response = job.run(store=store)
    except Exception as err:
        reason = redact(f"{type(err).__name__}: {err}")
        dump({"reason": reason, "traceback": redact(traceback.format_exc())}, sdir / "error.json")
        raise
    finally:
        os.chdir(cwd)
    out = run.root / "outputs"
    for doc in store.docs_store.query({"uuid": job.uuid, "index": job.index}):
        dump(_clean(doc), out / f"{key}.json")
    for name, add in store.additional_stores.items():
        for doc in add.query({"job_uuid": job.uuid, "job_index": job.index}):
            (out / name).mkdir(exist_ok=True)
            dump(_clean(doc), out / name / f"{key}_{doc['blob_uuid']}.json")
    resp: dict[str, Any] = {"stop_children": response.stop_children, "stop_jobflow": response.stop_jobflow}
    for kind in ("replace", "detour", "addition"):
        new = getattr(response, kind)
        resp[kind] = new is not None
        if new is not None:
            dump(new.as_dict(), sdir / f"{kind}.json")
    dump(resp, sdir / "response.json")
    dump({"key": key}, sdir / "done.json")
