"""The first force scale of a campaign comes from the per-component fit when the max-atom statistic has too few
pairs (round 0 often has a single HF validation frame)."""

from __future__ import annotations

import numpy as np

from mfal.campaign.recalibrate import seed_force_scale
from mfal.uncertainty.calibration import atom_calibration_stats, calibration_stats


def test_force_scale_starts_from_the_component_fit_until_max_atom_pairs_exist():
    rng = np.random.default_rng(0)
    sigma = np.full((28, 3), 0.01)  # raw spread 5x too small: errors have std 0.05 eV/Å
    err = rng.normal(0.0, 0.05, size=(28, 3))
    stats = {
        "hf": {"forces": calibration_stats([0.02], [0.1]), "forces_atoms": atom_calibration_stats(sigma, err)},
        "lf": {"forces": calibration_stats([0.02, 0.03], [0.1, 0.2]), "forces_atoms": atom_calibration_stats(sigma, err)},
    }
    assert stats["hf"]["forces"].scale is None and stats["hf"]["forces_atoms"].scale is not None
    scale = {f: {"forces": 1.0, "forces_atoms": stats[f]["forces_atoms"].scale} for f in stats}
    scale["lf"]["forces"] = stats["lf"]["forces"].scale
    fitted = {"hf": {"forces": False, "forces_atoms": True}, "lf": {"forces": True, "forces_atoms": True}}
    new_scale, new_fitted = seed_force_scale(stats, scale, fitted)
    assert new_scale["hf"]["forces"] == scale["hf"]["forces_atoms"] and 3 < new_scale["hf"]["forces"] < 8
    assert new_fitted["hf"]["forces"]
    assert new_scale["lf"] == scale["lf"]  # fitted on its own pairs: kept
    assert scale["hf"]["forces"] == 1.0  # inputs untouched
    # once the max-atom scale has been fitted, it is never replaced by the component fit
    again, _ = seed_force_scale(stats, new_scale | {"hf": {"forces": 2.0, "forces_atoms": 9.0}}, new_fitted)
    assert again["hf"]["forces"] == 2.0
