"""Warm start from the pretrained CHGNet weights that ship in the chgnet wheel (no download).

The pretrained readout is copied to every fidelity's head (R), the pretrained AtomRef to every fidelity's row
(C); E and M start at zero, so every fidelity reproduces the pretrained model exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mfal.errors import ConfigError, DataError
from mfal.model.components import MAX_Z

if TYPE_CHECKING:
    from mfal.model.mfchgnet import MFCHGNet

#: pretrained versions -> file inside the chgnet package
PRETRAINED_FILES = {
    "0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
    "0.2.0": "pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
    "r2scan": "pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
}


def pretrained_state(version: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """chgnet constructor kwargs and state dict of pretrained CHGNet ``version`` (safe loading)."""
    import chgnet

    if version not in PRETRAINED_FILES:
        raise ConfigError(f"version={version!r} not in pretrained CHGNet versions {list(PRETRAINED_FILES)}")
    path = Path(chgnet.__file__).parent / PRETRAINED_FILES[version]
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    kwargs = dict(state["model_args"])
    kwargs.pop("version", None)
    kwargs["mlp_out_bias"] = version == "0.2.0"  # as chgnet's CHGNet.load
    return kwargs, state["state_dict"]


def load_chgnet_state(model: MFCHGNet, chgnet_state: dict[str, Tensor]) -> None:
    """Load a CHGNet state dict into ``model``: readout -> every head, AtomRef -> every row, E/M kept (zero)."""
    own = model.state_dict()
    new: dict[str, Tensor] = {}
    for key, value in chgnet_state.items():
        if key.startswith("mlp.") and "R" in model.components:
            for i in range(len(model.fidelities)):
                new[f"readouts.{i}.{key[4:]}"] = value
        elif key == "composition_model.fc.weight":
            new["atom_ref"] = value.view(1, MAX_Z).expand_as(own["atom_ref"]).clone()
        else:
            new[key] = value
    missing = set(own) - set(new)
    unexpected = set(new) - set(own)
    allowed_missing = {k for k in own if k.startswith(("fidelity_embedding", "fidelity_columns"))}
    if unexpected or missing - allowed_missing:
        raise DataError(
            f"pretrained state does not match the architecture: missing {sorted(missing - allowed_missing)}, "
            f"unexpected {sorted(unexpected)}"
        )
    for key in missing:
        new[key] = own[key]  # zero-initialised fidelity parameters
    model.load_state_dict(new)
