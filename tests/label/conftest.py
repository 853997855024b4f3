"""Fixtures of the labeler tests: atomate2's mock-VASP harness wired to tests/test_data/vasp.

No VASP binary or POTCARs can exist here (licensed), so the one ``run_vasp`` call is monkeypatched by atomate2's
own harness (``atomate2.utils.testing.vasp.monkeypatch_vasp``): it checks the inputs our makers write against the
golden ``inputs/`` folder and copies the real ``outputs/`` in; everything else (input sets, jobflow, TaskDoc,
our parser) runs for real.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def mock_vasp(monkeypatch, test_data):
    """``mock_vasp(ref_paths, fake_run_vasp_kwargs)``: job name -> golden folder under tests/test_data/vasp."""
    from atomate2.utils.testing.vasp import monkeypatch_vasp

    yield from monkeypatch_vasp(monkeypatch, test_data / "vasp")


@pytest.fixture(scope="session")
def cp2k_ready():
    """CP2K + pymatgen data dir, set up with scripts/setup-cp2k.sh if missing (idempotent, ~20 s)."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from mfal.label.cp2k import Cp2kSettings, check_cp2k_ready, default_data_dir

    if shutil.which("cp2k.psmp") is None or not (default_data_dir() / "Fe").is_file():
        env = {**os.environ, "SKIP_SMOKE": "1"}
        repo = Path(__file__).resolve().parents[2]
        subprocess.run(["bash", str(repo / "scripts" / "setup-cp2k.sh")], check=True, env=env)
    return check_cp2k_ready(Cp2kSettings())
