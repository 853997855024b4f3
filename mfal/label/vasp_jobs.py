"""Run one atomate2 VASP job with jobflow in this process and say how it ended (the labeler parses the folder)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any


def _job_error_handler() -> tuple[logging.Handler, list[str]]:
    """Collect jobflow's 'failed with exception' messages (it logs them instead of raising)."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if "failed with exception" in msg:
                messages.append(msg)

    return _Collect(level=logging.INFO), messages


def _exception_message(traceback_text: str) -> str:
    """The final ``SomeError: message`` of a logged traceback, joined into one line."""
    lines = traceback_text.strip().splitlines()
    start = None
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line):
            start = i
    tail = lines[start:] if start is not None else lines[-1:]
    return " ".join(ln.strip() for ln in tail if ln.strip())


def run_job(job: Any, root: Path) -> tuple[bool, str | None, float, Path | None]:
    """Run ``job`` with ``run_locally`` in a new ``job_*`` folder under ``root`` (throwaway MemoryStore).

    Returns (finished, one-line error if not, wall time s, the job's folder or None).
    """
    from jobflow import JobStore, run_locally
    from maggma.stores import MemoryStore

    before = set(root.glob("job_*"))
    jf_log = logging.getLogger("jobflow.managers.local")
    handler, errors = _job_error_handler()
    jf_log.addHandler(handler)
    old_level = jf_log.level
    jf_log.setLevel(logging.INFO)
    t0 = time.perf_counter()
    try:
        responses = run_locally(
            job, store=JobStore(MemoryStore()), create_folders=True, root_dir=root, ensure_success=False, log=False
        )
    finally:
        jf_log.removeHandler(handler)
        jf_log.setLevel(old_level)
    wall = time.perf_counter() - t0
    new_dirs = sorted(set(root.glob("job_*")) - before)
    job_dir = new_dirs[-1] if new_dirs else None
    if job.uuid in responses:
        return True, None, wall, job_dir
    return False, _exception_message(errors[-1]) if errors else "VASP job did not finish", wall, job_dir
