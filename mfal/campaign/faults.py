"""Fault injection for resume tests: ``MFAL_FAULT="after_label:3"`` SIGKILLs the process at the 3rd hit.

Points: ``after_explore`` / ``after_score`` (after the step's artifact is saved), ``after_select`` (selection
saved, before the running RoundDoc is written), ``during_label`` (before the n-th labeler call), ``after_label``
(after the n-th label is persisted in its task file, before the store write), ``during_train`` (after the n-th
ensemble member finished), ``before_state_save`` (the round's RoundDoc is stored, state.json not yet updated).
A skipped (already done) step does not count. Comma-separated entries are allowed. Only for tests (the kill -9
fault matrix); no effect when the variable is unset.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Count a hit of ``name``; SIGKILL this process when the count reaches the configured number."""
    spec = os.environ.get("MFAL_FAULT")
    if not spec:
        return
    _hits[name] = _hits.get(name, 0) + 1
    for entry in spec.split(","):
        point, _, n = entry.strip().partition(":")
        if point == name and _hits[name] == int(n or 1):
            log.warning("MFAL_FAULT: killing the process at %s #%d", name, _hits[name])
            os.kill(os.getpid(), signal.SIGKILL)
