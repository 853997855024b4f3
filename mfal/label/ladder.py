"""HF retry ladder: which spin state to try next when a spin-polarized label collapses, flips or does not converge.

Small pure functions shared by the DFT labelers (VASP, CP2K); the labeler runs the calculations:

1. :func:`build_ladder` lists the rungs — (ordering, moment source) pairs: the configured one first, then the same
   ordering with the other moment guess (chemistry ⇄ model, when a model prediction is attached), then the other
   orderings (``fm``, ``afm``, ``afm-a|b|c``) — at most ``max_spin_attempts``;
2. after each run the labeler appends an :class:`Attempt` (ordering, initial moments μB, status, reason, energy
   eV, cost core-s) and asks :func:`next_step` whether to run the next rung (a spin-state problem named by
   :func:`mfal.label.quality.spin_problems`, or ``keep_lowest_energy``) or stop;
3. :func:`choose` picks the attempt to keep (the first ok one, or with ``keep_lowest_energy`` the lowest-energy
   ok one), :func:`total_cost` charges every attempt, :func:`ladder_reason` names all attempts when none is ok,
   and :func:`attempts_record` is what goes into ``FrameDoc.calc["attempts"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure

from mfal.label.magmoms import NAMED_ORDERINGS, initial_moments, predicted_magmoms
from mfal.label.quality import is_scf_problem, spin_problems
from mfal.store.docs import FrameDoc

log = logging.getLogger(__name__)

#: orderings the ladder tries after the configured one, in this order
DEFAULT_LADDER: tuple[str, ...] = NAMED_ORDERINGS


class Rung(BaseModel):
    """One spin-state guess: a collinear ordering and where |m| comes from."""

    model_config = ConfigDict(frozen=True)

    ordering: str
    source: str = Field(description="moment source: table, oxidation, chemistry, model or site_property")


class Attempt(BaseModel):
    """One finished run of the ladder (recorded in ``FrameDoc.calc["attempts"]``)."""

    model_config = ConfigDict(extra="forbid")

    ordering: str
    magmom_source: str
    initial_magmoms: list[float] = Field(description="initial moment per site (μB)")
    status: str = Field(description="ok, failed or quarantined")
    reason: str | None = None
    energy: float | None = Field(None, description="total energy of the final step (eV per cell)")
    cost: float = Field(0.0, description="core-seconds of this run")
    retry_incar: bool = Field(False, description="ran with the SCF retry settings")


def build_ladder(
    ordering: str,
    source: str,
    *,
    max_attempts: int,
    orderings: Sequence[str] = DEFAULT_LADDER,
    has_prediction: bool = False,
) -> list[Rung]:
    """The rungs in order: configured (ordering, source); the same ordering with the other guess (model → chemistry;
    chemistry/table/oxidation → model when ``has_prediction``); then each of ``orderings`` not yet tried with the
    configured source. Truncated to ``max_attempts`` (≥ 1)."""
    rungs = [Rung(ordering=ordering, source=source)]
    other = "chemistry" if source == "model" else ("model" if has_prediction else None)
    if other is not None:
        rungs.append(Rung(ordering=ordering, source=other))
    for o in orderings:
        rung = Rung(ordering=o, source=source)
        if rung not in rungs:
            rungs.append(rung)
    return rungs[: max(1, max_attempts)]


def rungs_for(options: Any, structure: Structure) -> list[Rung]:
    """:func:`build_ladder` from a labeler's options (``ordering``, ``magmom_source``, ``max_spin_attempts``,
    ``spin_ladder``; VASP and CP2K name them alike), with the model-moment rung when ``structure`` carries one."""
    return build_ladder(
        options.ordering, options.magmom_source, max_attempts=options.max_spin_attempts,
        orderings=options.spin_ladder, has_prediction=predicted_magmoms(structure) is not None,
    )  # fmt: skip


def retriable(attempt: Attempt) -> bool:
    """A quarantined spin state that another ordering / guess may fix (collapsed, flipped, unconverged)."""
    return attempt.status == "quarantined" and bool(spin_problems(attempt.reason))


def next_step(attempts: Sequence[Attempt], *, keep_lowest_energy: bool = False) -> bool:
    """Go on to the next rung (if one is left)? Yes if the last attempt is a spin-state problem; with
    ``keep_lowest_energy`` yes unless it failed outright (job crash, unusable output)."""
    if not attempts:
        return True
    last = attempts[-1]
    if keep_lowest_energy:
        return last.status != "failed"
    return retriable(last)


def choose(attempts: Sequence[Attempt], *, keep_lowest_energy: bool = False) -> int | None:
    """Index of the attempt to keep: first ok one, or the lowest-energy ok one; None if none is ok."""
    ok = [i for i, a in enumerate(attempts) if a.status == "ok" and a.energy is not None]
    if not ok:
        return None
    if keep_lowest_energy:
        return min(ok, key=lambda i: attempts[i].energy)  # type: ignore[arg-type, return-value]
    return ok[0]


def total_cost(attempts: Sequence[Attempt]) -> float:
    """Core-seconds of all attempts (every run is charged, kept or not)."""
    return float(sum(a.cost for a in attempts))


def describe(attempt: Attempt) -> str:
    """``afm (chemistry)`` — the rung of an attempt, for reasons and logs."""
    retry = ", SCF retry" if attempt.retry_incar else ""
    return f"{attempt.ordering} ({attempt.magmom_source}{retry})"


def ladder_reason(attempts: Sequence[Attempt], limit: int = 500) -> str:
    """One line naming every attempt and why it was rejected (≤ ``limit`` characters)."""
    parts = [f"{k + 1}. {describe(a)}: {a.reason or a.status}" for k, a in enumerate(attempts)]
    text = f"all {len(attempts)} spin attempts rejected: " + " | ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def attempts_record(attempts: Sequence[Attempt], kept: int | None) -> list[dict[str, Any]]:
    """JSON-able attempt list for ``FrameDoc.calc["attempts"]`` (``kept`` marks the chosen one)."""
    return [{**a.model_dump(), "kept": i == kept} for i, a in enumerate(attempts)]


def rung_moments(
    structure: Structure,
    rung: Rung,
    k: int,
    per_element: Mapping[str, float],
    *,
    default: float = 0.0,
) -> tuple[list[float], dict[str, Any]]:
    """Initial moments (μB) and calc record of rung ``k``: :func:`mfal.label.magmoms.initial_moments` with the
    rung's ordering and source; a hand-set ``magmom`` site property counts for the first rung only."""
    base = structure
    if k > 0 and "magmom" in structure.site_properties:
        base = structure.copy()
        base.remove_site_property("magmom")
    moments, record = initial_moments(
        base, per_element, default=default, source=rung.source, ordering=rung.ordering  # type: ignore[arg-type]
    )
    return moments, {**record, "initial_magmoms": moments}


def run_ladder(
    rungs: Sequence[Rung],
    *,
    moments: Callable[[Rung, int], tuple[list[float], dict[str, Any]]],
    run: Callable[[list[float], dict[str, Any], bool, int], FrameDoc],
    keep_lowest_energy: bool = False,
    scf_retry: bool = True,
    retry_note: str = "after 1 retry: ",
) -> FrameDoc:
    """Climb the ladder: ``moments(rung, k)`` gives the start of rung ``k`` (e.g. :func:`rung_moments`),
    ``run(magmoms, record, retry, k)`` runs and quality-checks one calculation and returns its FrameDoc.

    A rung whose initial moments equal an earlier one is skipped. An SCF problem (:func:`is_scf_problem`) gets one
    rerun with ``retry=True`` (``scf_retry``), and the robust settings stay on for later rungs. The kept frame
    (:func:`choose`) carries the cost of all attempts and ``calc["attempts"]``; none accepted -> the last frame,
    quarantined (failed if every attempt failed) with :func:`ladder_reason` (``retry_note`` + reason when only the
    SCF retry of one rung ran).
    """
    attempts: list[Attempt] = []
    frames: list[FrameDoc] = []
    tried: list[list[float]] = []
    robust = False
    for k, rung in enumerate(rungs):
        if not next_step(attempts, keep_lowest_energy=keep_lowest_energy):
            break
        magmoms, record = moments(rung, k)
        if magmoms in tried:  # the same start as an earlier rung (e.g. afm-c of a one-layer cell)
            continue
        tried.append(magmoms)
        for retry in (False, True):
            if retry and not (scf_retry and not robust and is_scf_problem(frames[-1].status_reason)):
                break
            robust = robust or retry
            frame = run(magmoms, record, robust, k)
            frames.append(frame)
            attempts.append(Attempt(
                ordering=str(record.get("ordering", rung.ordering)),
                magmom_source=str(record.get("magmom_source", rung.source)),
                initial_magmoms=list(magmoms), status=frame.status, reason=frame.status_reason,
                energy=frame.energy, cost=frame.cost, retry_incar=robust,
            ))  # fmt: skip
            if frame.status != "quarantined":
                break
        if attempts[-1].status != "ok":
            log.info("%s: %s rejected: %s", frame.formula, describe(attempts[-1]), attempts[-1].reason)
    kept = choose(attempts, keep_lowest_energy=keep_lowest_energy)
    chosen = frames[kept] if kept is not None else frames[-1]
    update: dict[str, Any] = {
        "cost": total_cost(attempts),
        "calc": {**chosen.calc, "attempts": attempts_record(attempts, kept)},
    }
    if kept is None and len(attempts) > 1:
        one_rung = len({(a.ordering, a.magmom_source) for a in attempts}) == 1
        reason = retry_note + str(chosen.status_reason) if one_rung else ladder_reason(attempts)
        failed = all(a.status == "failed" for a in attempts)
        update |= {"status": "failed" if failed else "quarantined", "status_reason": reason}
    return chosen.model_copy(update=update)


__all__ = [
    "DEFAULT_LADDER",
    "Attempt",
    "Rung",
    "attempts_record",
    "build_ladder",
    "choose",
    "describe",
    "ladder_reason",
    "next_step",
    "retriable",
    "rung_moments",
    "rungs_for",
    "run_ladder",
    "total_cost",
]
