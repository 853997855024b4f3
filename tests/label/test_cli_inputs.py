"""``mfal inputs``: a user checks the DFT inputs before spending core-hours; nothing runs."""

from __future__ import annotations

import subprocess
import sys

MFAL = [sys.executable, "-c", "from flows.cli import main; main()"]


def test_inputs_writes_vasp_files_and_one_line_per_structure(tmp_path, lifepo4):
    cif = tmp_path / "LiFePO4.cif"
    lifepo4.to(filename=str(cif))
    p = subprocess.run([*MFAL, "inputs", str(cif), "--labeler", "vasp", "--fidelity", "hf", "--ordering", "afm",
                        "--out", str(tmp_path / "hf")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "ISPIN=2" in p.stdout and "ordering=afm" in p.stdout and " -5" in p.stdout
    incar = next((tmp_path / "hf").glob("*/INCAR")).read_text()
    assert "ISPIN = 2" in incar and "MAGMOM" in incar
    p = subprocess.run([*MFAL, "inputs", str(cif), "--labeler", "vasp", "--fidelity", "lf", "--out",
                        str(tmp_path / "lf")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0 and "ISPIN=1" in p.stdout
    assert "MAGMOM" not in next((tmp_path / "lf").glob("*/INCAR")).read_text()


def test_inputs_refuses_a_missing_file_and_a_labeler_without_inputs(tmp_path):
    p = subprocess.run([*MFAL, "inputs", str(tmp_path / "nope.cif"), "--labeler", "vasp", "--fidelity", "hf",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "nope.cif" in p.stderr
    assert not (tmp_path / "o").exists()
