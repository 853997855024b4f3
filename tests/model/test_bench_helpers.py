"""Helpers of `mfal bench model` (the full benchmark takes minutes and runs from the CLI, not in tests)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from mfal.bench.model import _calibration, _paired


def test_paired_ratio_orders_and_medians():
    ta, tb, ratio = _paired(lambda: time.sleep(0.02), lambda: time.sleep(0.01), repeats=3)
    assert ta > tb and 1.2 < ratio < 4.0


def test_calibration_rho_is_one_for_perfectly_ranked_std():
    ref = [np.zeros((3, 3)), np.zeros((2, 3))]
    forces = [np.array([[0.1, 0, 0], [0.3, 0, 0], [0.2, 0, 0]]), np.array([[0.5, 0, 0], [0.05, 0, 0]])]
    std = [np.linalg.norm(f, axis=1) * 0.5 for f in forces]  # ranked exactly like the errors
    out = {"forces": forces, "forces_std": std, "force_std_max": np.array([s.max() for s in std])}
    cal = _calibration(out, ref)
    assert cal["rho_per_atom"] == pytest.approx(1.0)
    assert cal["force_mae_vs_reference"] == pytest.approx(np.mean([0.1, 0.3, 0.2, 0.5, 0.05]))


def test_cli_rejects_bad_arguments():
    from mfal.cli import app

    result = CliRunner().invoke(app, ["bench", "model", "--json", "--k", "1"])
    assert result.exit_code != 0
    assert "k >= 2" in str(result.exception)
