"""A rung that changes EPS_SCF: its input has the tolerance (inner and outer SCF), and the attempt record and
``FrameDoc.calc`` say which tolerance the accepted label actually reached.

Real CP2K outputs (tests/test_data/cp2k): the FeO LF run stopped at a 3-step SCF limit (attempt 0) and the
converged FeO LF run (attempt 1). The runner only copies them in; input writing, the ladder, parsing and the
gates run for real.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pymatgen.core import Lattice, Structure

from mfal.label.cp2k import Cp2kLabeler
from mfal.label.cp2k_input import write_cp2k_input
from mfal.label.cp2k_settings import DEFAULT_LADDER, Cp2kSettings

DATA = Path(__file__).resolve().parents[1] / "test_data" / "cp2k"
LOOSE = {"name": "ot-cg-eps1e-4", "restart_from_previous": True, "ot_minimizer": "CG", "ot_linesearch": "3PNT",
         "ot_energy_gap": 0.002, "eps_scf": 1e-4}  # fmt: skip


def feo_afm(a0: float = 4.33) -> Structure:
    """Rock-salt FeO, 4-atom rhombohedral AFM-II cell (the cell of the FeO test outputs)."""
    lat = Lattice([[a0, a0 / 2, a0 / 2], [a0 / 2, a0, a0 / 2], [a0 / 2, a0 / 2, a0]])
    return Structure(lat, ["Fe", "Fe", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25] * 3, [0.75] * 3])


def _eps(text: str) -> list[str]:
    return re.findall(r"^\s*EPS_SCF\s+(\S+)", text, re.M)


def test_loosened_rung_input_and_record(tmp_path, cp2k_ready):
    """strict rung unconverged → loosened rung converged: EPS_SCF 1e-4 in both SCF loops of its input, from
    the strict rung's wavefunction; attempts record 1e-5 then 1e-4; calc.eps_scf_reached = 1e-4."""
    calls: list[Path] = []

    def run(run_dir: Path, cmd: list[str], env: dict[str, str], timeout_s: float) -> float:
        src = DATA / ("feo_lf_unconverged" if not calls else "feo_lf")
        calls.append(run_dir)
        shutil.copy(src / "cp2k.out", run_dir / "cp2k.out")
        (run_dir / "CP2K-RESTART.wfn").write_text("placeholder: copied, never read\n")
        return 1.0

    lab = Cp2kLabeler(max_scf=3, outer_max_scf=1, ladder={"restricted": [{"name": "strict"}, LOOSE]}, runner=run)
    [doc] = lab.label([feo_afm()], "lf", workdir=tmp_path)
    first, second = ((c / "cp2k.inp").read_text() for c in calls)
    assert _eps(first) == ["1e-05", "1e-05"] and _eps(second) == ["0.0001", "0.0001"]
    assert "WFN_RESTART_FILE_NAME" in second and re.search(r"MINIMIZER\s+CG", second)
    assert doc.status == "ok", doc.status_reason
    assert [a["eps_scf"] for a in doc.calc["attempts"]] == [1e-5, 1e-4]
    assert [a["status"] for a in doc.calc["attempts"]] == ["retryable", "ok"]
    assert doc.calc["eps_scf_reached"] == 1e-4 and doc.calc["eps_scf"] == 1e-5  # base stays in the frame id
    assert doc.calc["scf_rung"] == "ot-cg-eps1e-4"


def test_default_restricted_ladder_keeps_the_strict_tolerance(tmp_path, cp2k_ready):
    """Measured (docs/labeling.md, third round): accepting OT gradient 1e-4 costs 21 meV/Å on LiFePO4 and
    ≥ 46–76 meV/Å on the creeping Mn/delithiated cells, so no default rung loosens EPS_SCF; every OT rung's
    input says 1e-5."""
    st = Cp2kSettings(omp_threads=1)
    assert all("eps_scf" not in r for rungs in DEFAULT_LADDER.values() for r in rungs)
    for rung in st.rungs("restricted"):
        if rung.settings.ot:
            text = write_cp2k_input(feo_afm(), "lf", rung.settings, tmp_path / rung.name).read_text()
            assert _eps(text) == ["1e-05", "1e-05"], rung.name
