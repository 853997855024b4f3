"""The CP2K labeler's HF spin ladder: a wrong spin state is retried with the next ordering, every rung recorded.

Fault injection: the "replay" runner stands in for ``cp2k.psmp`` (no run would land in the wrong state on demand):
it copies the real CP2K 2023.1 output of AFM-II FeO (``tests/test_data/cp2k/feo_hf_afm``, Fe ±3.3 μB) into every
attempt's run dir. Asked for a ferromagnetic start, that output is a flipped spin state; asked for AFM, it is the
intended one. Input writing, the SCF and spin ladders, parsing and the quality gates run for real.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from mfal.label.cp2k import Cp2kLabeler

GOLDEN = Path(__file__).resolve().parents[1] / "test_data" / "cp2k" / "feo_hf_afm"


def feo_afm(a0: float = 4.33) -> Structure:
    """Rock-salt FeO, 4-atom rhombohedral AFM-II cell (the cell of the golden run)."""
    lat = Lattice([[a0, a0 / 2, a0 / 2], [a0 / 2, a0, a0 / 2], [a0 / 2, a0 / 2, a0]])
    return Structure(lat, ["Fe", "Fe", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25] * 3, [0.75] * 3])


def replay(calls: list[Path]):
    def run(run_dir: Path, cmd: list[str], env: dict[str, str], timeout_s: float) -> float:
        calls.append(run_dir)
        shutil.copy(GOLDEN / "cp2k.out", run_dir / "cp2k.out")
        return 2.0

    return run


def test_flipped_fm_start_is_retried_as_afm_and_both_rungs_are_recorded(tmp_path, cp2k_ready):
    calls: list[Path] = []
    lab = Cp2kLabeler(ordering="fm", spin_ladder=["afm"], max_spin_attempts=3, runner=replay(calls))
    [doc] = lab.label([feo_afm()], "hf", workdir=tmp_path)
    assert doc.status == "ok", doc.status_reason
    rungs = doc.calc["attempts"]
    assert [r["ordering"] for r in rungs] == ["fm", "afm"]
    assert rungs[0]["status"] == "quarantined" and "flipped" in rungs[0]["reason"]
    assert rungs[1]["status"] == "ok" and rungs[1]["kept"]
    assert rungs[0]["initial_magmoms"][:2] == [4.0, 4.0] and rungs[1]["initial_magmoms"][:2] == [4.0, -4.0]
    assert doc.calc["magmom_init"] == [4.0, -4.0, 0.0, 0.0] and doc.calc["ordering"] == "afm"
    assert doc.cost == pytest.approx(sum(r["cost"] for r in rungs)) and doc.cost > rungs[1]["cost"]
    assert len(calls) == 2 and calls[0].parent != calls[1].parent  # each spin rung in its own task dir
    assert doc.calc["scf_attempts"][0]["status"] == "ok"  # the kept rung's SCF ladder


def test_every_rung_wrong_is_quarantined_naming_all(tmp_path, cp2k_ready):
    """fm and '--' both disagree with the AFM outcome: quarantined, both rungs named and charged; '++' = fm runs once."""
    calls: list[Path] = []
    lab = Cp2kLabeler(ordering="fm", spin_ladder=["++", "--"], max_spin_attempts=3, runner=replay(calls))
    [doc] = lab.label([feo_afm()], "hf", workdir=tmp_path)
    assert doc.status == "quarantined" and len(calls) == 2
    assert doc.status_reason.startswith("all 2 spin attempts rejected") and "--" in doc.status_reason
    assert [r["ordering"] for r in doc.calc["attempts"]] == ["fm", "--"]
    assert doc.cost == pytest.approx(2 * doc.calc["attempts"][0]["cost"])
    lab = Cp2kLabeler(ordering="fm", max_spin_attempts=1, runner=replay(calls := []))
    [doc] = lab.label([feo_afm()], "hf", workdir=tmp_path / "one")
    assert doc.status == "quarantined" and "flipped" in doc.status_reason and len(calls) == 1
