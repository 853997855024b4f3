"""Helpers of `mfal bench model` (the full benchmark takes minutes and runs from the CLI, not in tests)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from mfal.bench.model import _calibration, _timed


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_timed_ratios_cpu_and_wall():
    out = _timed(
        {"base": lambda: _spin(0.02), "slow": lambda: _spin(0.06), "idle": lambda: time.sleep(0.05)},
        "base",
        repeats=3,
    )
    assert 2.0 < out["slow"]["ratio_cpu"] < 5.0
    assert out["idle"]["ratio_cpu"] < 0.5  # sleeping costs wall time, no CPU
    assert out["idle"]["ratio_wall"] > out["idle"]["ratio_cpu"]
    assert out["base"]["ratio_cpu"] == 1.0


def test_calibration_rho_is_one_for_perfectly_ranked_std():
    ref = [np.zeros((3, 3)), np.zeros((2, 3))]
    forces = [np.array([[0.1, 0, 0], [0.3, 0, 0], [0.2, 0, 0]]), np.array([[0.5, 0, 0], [0.05, 0, 0]])]
    std = [np.linalg.norm(f, axis=1) * 0.5 for f in forces]  # ranked exactly like the errors
    out = {"forces": forces, "forces_std": std, "force_std_max": np.array([s.max() for s in std])}
    cal = _calibration(out, ref)
    assert cal["rho_per_atom"] == pytest.approx(1.0)
    assert cal["force_mae_vs_reference"] == pytest.approx(np.mean([0.1, 0.3, 0.2, 0.5, 0.05]))


def test_cli_rejects_bad_arguments():
    from flows.cli import app

    result = CliRunner().invoke(app, ["bench", "model", "--json", "--k", "1"])
    assert result.exit_code != 0
    assert "k >= 2" in str(result.exception)
