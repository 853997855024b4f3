"""ASE calculator driving exploration MD with one ensemble member's head at one fidelity.

Uses ``mfal.model.MFCHGNetCalculator`` when the model package provides it, else a small wrapper over
``MFCHGNet.predict``. Energies eV, forces eV/Å, stress eV/Å³ (ASE convention).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes


class EnsembleMemberCalculator(Calculator):
    """Energy/forces/stress of an MF-CHGNet checkpoint ``{"path", "sha256"}`` at ``fidelity``."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, checkpoint: dict[str, str], fidelity: str = "hf", device: str = "cpu", **kwargs: Any):
        super().__init__(**kwargs)
        from mfal.model import MFCHGNet

        self.model = MFCHGNet.load(checkpoint["path"], sha256=checkpoint.get("sha256"), device=device)
        self.model.fidelity_tensor(fidelity, 1)  # unknown fidelity -> error now
        self.fidelity = fidelity

    def calculate(self, atoms: Any = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        from pymatgen.io.ase import AseAtomsAdaptor

        super().calculate(atoms, properties, system_changes)
        structure = AseAtomsAdaptor.get_structure(self.atoms)
        pred = self.model.predict(structure, self.fidelity, task="efs")
        n = len(structure)
        energy = float(pred["e"]) * n
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.asarray(pred["f"], dtype=float),
            # GPa in CHGNet's sign convention, which chgnet's own ASE calculator passes on unchanged -> eV/Å³
            "stress": _voigt(np.asarray(pred["s"], dtype=float).reshape(3, 3) / 160.21766208),
        }


def _voigt(s: np.ndarray) -> np.ndarray:
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
