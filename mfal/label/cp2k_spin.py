"""The HF spin-state ladder of the CP2K labeler: each ordering / moment guess runs the whole SCF ladder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from mfal.label import ladder as L
from mfal.store.docs import FrameDoc, make_frame_id


def label_spin_states(
    labeler: Any,
    structure: Structure,
    new: Structure,
    fidelity: str,
    root: Path,
    data_dir: Path,
    treatment: str,
    common: dict[str, Any],
) -> FrameDoc:
    """HF: a collapsed/flipped/unconverged spin state is retried with the next ordering or moment guess
    (:mod:`mfal.label.ladder`); each spin rung runs the whole SCF ladder in its own task dir, and its SCF
    attempts are kept as ``calc["scf_attempts"]`` (``calc["attempts"]`` lists the spin rungs)."""
    s = labeler.settings
    rungs = L.rungs_for(s, structure)

    def moments(rung: L.Rung, k: int) -> tuple[list[float], dict[str, Any]]:
        return L.rung_moments(structure, rung, k, s.initial_moments, default=0.0)

    def run(magmoms: list[float], record: dict[str, Any], retry: bool, k: int) -> FrameDoc:
        record = {key: v for key, v in record.items() if key != "initial_magmoms"}  # = magmom_init
        calc = labeler.calc_summary(structure, fidelity, magmoms, record)
        frame_id = make_frame_id(structure, fidelity, calc)
        task_dir = root / f"{fidelity}_{frame_id}"
        attempts = labeler._climb(structure, fidelity, task_dir, data_dir, magmoms, True, treatment)
        own = {**common, "task_dir": str(task_dir), "frame_id": frame_id}
        doc = labeler._frame(new, fidelity, {**calc, "scf_treatment": treatment}, attempts, magmoms, own)
        scf = {key: v for key, v in doc.calc.items() if key != "attempts"}
        return doc.model_copy(update={"calc": {**scf, "scf_attempts": doc.calc["attempts"]}})

    return L.run_ladder(
        rungs, moments=moments, run=run, keep_lowest_energy=s.keep_lowest_energy, scf_retry=False
    )
