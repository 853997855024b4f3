"""``mfal label`` end to end: real teacher labels of a tiny FeO cell into a real embedded store; bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def run_mfal(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a subprocess: exit status and stderr as a user sees them."""
    code = "import sys; from flows.cli import main; sys.argv = ['mfal', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def feo_files(test_data, tmp_path):
    """The 4-atom FeO cell of the custodian run as POSCAR and as CIF."""
    from pymatgen.core import Structure

    s = Structure.from_file(test_data / "vasp" / "custodian_FeO_afm_ggaU_relax" / "POSCAR")
    poscar, cif = tmp_path / "POSCAR", tmp_path / "feo_strained.cif"
    s.to(filename=str(poscar), fmt="poscar")
    strained = s.copy()
    strained.apply_strain(0.02)
    strained.to(filename=str(cif))
    return poscar, cif


def test_label_teacher_into_store(feo_files, tmp_path):
    from mfal.store import open_store

    store = tmp_path / "store"
    args = ["label", "--labeler", "teacher", "--fidelity", "hf", *map(str, feo_files), "--store", str(store)]
    result = runner.invoke(app, [*args, "--round", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 ok, 0 failed, 0 quarantined; 2 new" in result.output and "surrogate" in result.output
    assert "cost 77 core-s" in result.output  # 2 labels × 270 core-s × (4 atoms / 28 atoms)
    with open_store(store, create=False) as fs:
        frames = fs.query_frames()
    assert len(frames) == 2 and {f.source for f in frames} == {"teacher"}
    assert all(f.fidelity == "hf" and f.magmoms is not None and f.round == 0 for f in frames)
    # labeling the same files again adds nothing
    again = runner.invoke(app, [*args, "--no-progress"])
    assert again.exit_code == 0 and "0 new" in again.output


def test_failure_injection_option(feo_files, tmp_path):
    store = tmp_path / "store"
    args = ["label", "--labeler", "teacher", "--fidelity", "lf", str(feo_files[0]), "--store", str(store)]
    result = runner.invoke(app, [*args, "-o", "fail_rate=1.0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "0 ok, 1 failed" in result.output and "injected failure" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--labeler", "gaussian", "--fidelity", "hf"],
            "--labeler 'gaussian' not in ['cp2k', 'replay', 'teacher', 'vasp']",
        ),
        (["--labeler", "teacher", "--fidelity", "mf"], "fidelity='mf' not in known fidelities ['lf', 'hf']"),
    ],
)
def test_unknown_labeler_or_fidelity(feo_files, tmp_path, args, message):
    proc = run_mfal("label", *args, str(feo_files[0]), "--store", str(tmp_path / "store"))
    assert proc.returncode == 2  # a usage/config error (ConfigError) exits 2
    assert proc.stderr.strip() == f"mfal: error: {message}"
    assert not (tmp_path / "store").exists()


def test_malformed_structure_file(feo_files, tmp_path):
    bad = tmp_path / "POSCAR_bad"
    bad.write_text("FeO\n1.0\nnot a lattice\n")
    proc = run_mfal(
        "label",
        "--labeler",
        "teacher",
        "--fidelity",
        "lf",
        str(feo_files[0]),
        str(bad),
        "--store",
        str(tmp_path / "store"),
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mfal: error: {bad}: not a readable structure file")
    assert not (tmp_path / "store").exists()  # nothing half-written
