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
