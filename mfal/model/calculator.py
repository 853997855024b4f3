"""ASE calculator around an MFCHGNet at one fidelity (for MD and relaxations)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mfal.errors import ConfigError
from mfal.model.mfchgnet import GPA_PER_EV_A3, MFCHGNet


class MFCHGNetCalculator(Calculator):
    """ASE calculator: energy (eV, total), forces (eV/Å), stress (ASE convention, eV/Å^3, Voigt), magmoms (μB).

    Args:
        model_or_path: an :class:`MFCHGNet` or the path of a checkpoint written by :meth:`MFCHGNet.save`.
        fidelity: fidelity name the calculator evaluates; None = the model's last (target) fidelity.
        device: "auto" | "cpu" | "cuda".
        sha256: expected checkpoint sha256 when ``model_or_path`` is a path.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress", "magmoms")

    def __init__(
        self,
        model_or_path: MFCHGNet | str | os.PathLike,
        fidelity: str | None = None,
        device: str = "auto",
        *,
        sha256: str | None = None,
        **kwargs: Any,
    ) -> None:
        from mfal.device import resolve_device

        super().__init__(**kwargs)
        dev = resolve_device(device)
        if isinstance(model_or_path, MFCHGNet):
            self.model = model_or_path.to(dev)
        elif isinstance(model_or_path, str | os.PathLike):
            self.model = MFCHGNet.load(model_or_path, sha256=sha256, device=dev)
        else:
            raise ConfigError(
                f"model_or_path must be an MFCHGNet or a checkpoint path, got {type(model_or_path)}"
            )
        fidelity = self.model.fidelities[-1] if fidelity is None else fidelity
        self.model.fidelity_tensor(fidelity, 1)  # UnknownFidelityError lists the known ones
        self.fidelity = fidelity
        self.model.eval()

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        """Evaluate the model on ``atoms`` (all implemented properties in one pass)."""
        from pymatgen.io.ase import AseAtomsAdaptor

        super().calculate(atoms, properties or ["energy"], system_changes)
        structure = AseAtomsAdaptor.get_structure(self.atoms)
        pred = self.model.predict(structure, self.fidelity, task="efsm")
        n_atoms = len(structure)
        energy = pred["e"] * n_atoms if self.model.is_intensive else pred["e"]
        self.results = {
            "energy": float(energy),
            "free_energy": float(energy),
            "forces": np.asarray(pred["f"], dtype=float),
            "stress": full_3x3_to_voigt_6_stress(np.asarray(pred["s"], dtype=float) / GPA_PER_EV_A3),
            "magmoms": np.asarray(pred["m"], dtype=float),
        }
