"""Quality gates as pure functions (thresholds from QualityConfig)."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.label.quality import (
    QualityConfig,
    apply_quality,
    check_electronic,
    check_forces,
    check_frame,
    check_hf_moments,
    check_lf_nonmagnetic,
)
from mfal.store.docs import FrameDoc


def test_electronic_at_nelm_is_unconverged():
    assert check_electronic(59, 60) is None
    assert check_electronic(60, 60, step=3) == "electronic SCF hit NELM=60 in ionic step 3 (not converged)"


def test_forces():
    assert check_forces(np.zeros((2, 3))) == ("ok", None)
    assert check_forces([[np.nan, 0, 0]])[0] == "quarantined"
    status, reason = check_forces([[0, 0, 60.0]])
    assert status == "quarantined" and "60.0" in reason
    assert check_forces([[0, 0, 60.0]], QualityConfig(max_force=100))[0] == "ok"


def test_hf_moments():
    species = ["Fe", "Fe", "O"]
    assert check_hf_moments([4.0, -4.0, 0.1], species, [5, -5, 0.6]) is None
    assert "low-spin" in check_hf_moments([4.0, 0.3, 0.1], species, [5, -5, 0.6])
    assert "flipped" in check_hf_moments([4.0, 4.0, 0.1], species, [5, -5, 0.6])
    # no intended moments: only the magnitudes are checked
    assert check_hf_moments([4.0, 4.0, 0.1], species) is None
    # total moment far from the guess: second Fe started almost non-magnetic and ended high-spin
    assert "total moment" in check_hf_moments([4.0, 4.0, 0.0], species, [5, 0.2, 0], QualityConfig())
    assert "no site moments" in check_hf_moments(None, species)
    assert check_hf_moments(None, ["Li", "O"]) is None


def test_lf_really_non_magnetic():
    assert check_lf_nonmagnetic(1, None) is None
    assert "ISPIN=2" in check_lf_nonmagnetic(2, None)
    assert "0.50" in check_lf_nonmagnetic(None, [0.0, 0.5])


@pytest.fixture
def fe_frame(lifepo4):
    n = len(lifepo4)
    magmoms = [4.0 if s.specie.symbol == "Fe" else 0.0 for s in lifepo4]
    return FrameDoc.from_structure(
        lifepo4, fidelity="hf", source="import", energy=-190.0, forces=np.zeros((n, 3)), magmoms=magmoms
    )


def test_check_frame_combines_reasons(fe_frame):
    assert check_frame(fe_frame) == ("ok", None)
    status, reason = check_frame(
        fe_frame, electronic_converged="electronic SCF hit NELM=60", walltime_hit=True
    )
    assert status == "quarantined" and "NELM=60" in reason and "walltime" in reason
    assert check_frame(fe_frame, ionic_converged=False)[0] == "ok"
    cfg = QualityConfig(quarantine_ionic_unconverged=True)
    assert check_frame(fe_frame, ionic_converged=False, config=cfg)[0] == "quarantined"
    low = fe_frame.model_copy(update={"magmoms": [0.0] * fe_frame.nsites})
    out = apply_quality(low)
    assert out.status == "quarantined" and "Fe" in out.status_reason and low.status == "ok"


def test_config_rejects_typos():
    with pytest.raises(ValueError, match="max_forces"):
        QualityConfig(max_forces=3)
