"""The per-fidelity components E, M, R, C of MFCHGNet (arXiv 2511.11361): creation, use and fitting.

- **E** ``fidelity_embedding`` ``[n_fid, atom_dim]`` (zero-init) added to the element embedding;
- **M** ``fidelity_columns[key]`` ``[out, n_fid]`` (zero-init): the one-hot fidelity columns of the first linear
  layer of each gated MLP, applied as a per-row bias (see :mod:`mfal.model.layers`);
- **R** ``readouts``: one readout MLP per fidelity (the first is the pretrained one, the others reset);
- **C** ``atom_ref`` ``[n_fid, 94]`` eV per atom of each element (one shared row without C), frozen, fitted by
  least squares.

Zero-initialised E/M and copies of the pretrained readout/AtomRef reproduce the pretrained CHGNet exactly.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from chgnet.model.composition_model import AtomRef
from pymatgen.core import Structure
from torch import Tensor, nn

from mfal.errors import ConfigError, DataError
from mfal.model.layers import Extra, first_linear, gated_layers

if TYPE_CHECKING:
    from chgnet.graph import CrystalGraph

    from mfal.model.mfchgnet import MFCHGNet

logger = logging.getLogger(__name__)

VALID_COMPONENTS = "EMRC"
#: largest atomic number of CHGNet's element embedding and AtomRef
MAX_Z = 94


def validate_components(components: str) -> str:
    """Return ``components`` if it is a subset string of ``"EMRC"`` (each letter at most once)."""
    if not isinstance(components, str):
        raise ConfigError(f"components={components!r} must be a string of letters from {VALID_COMPONENTS!r}")
    bad = [c for c in components if c not in VALID_COMPONENTS]
    if bad or len(set(components)) != len(components):
        raise ConfigError(
            f"components={components!r} invalid: use each of the letters {list(VALID_COMPONENTS)} at most once "
            "(E embedding, M one-hot in message MLPs, R readout per fidelity, C AtomRef per fidelity; '' = none)"
        )
    return components


def add_components(model: MFCHGNet, composition_model: str | None) -> None:
    """Create the fidelity parameters of ``model.components`` on a model holding chgnet's layers.

    ``composition_model`` ("MPtrj", "MPF", "MP-r2SCAN") initialises every AtomRef row from chgnet's fit; None
    zeroes them.
    """
    n_fid = len(model.fidelities)
    if "E" in model.components:
        model.fidelity_embedding = nn.Embedding(n_fid, model.atom_fea_dim)
        nn.init.zeros_(model.fidelity_embedding.weight)
    if "M" in model.components:
        cols: dict[str, nn.Parameter] = {}
        for kind, layers in gated_layers(model.atom_conv_layers, model.bond_conv_layers, model.angle_layers):
            for i, gmlp in layers:
                for half in ("core", "gate"):
                    out = first_linear(getattr(gmlp, f"mlp_{half}")).out_features
                    cols[f"{kind}{i}_{half}"] = nn.Parameter(torch.zeros(out, n_fid))
        model.fidelity_columns = nn.ParameterDict(cols)
    if "R" in model.components:
        readouts = [model.mlp]
        for _ in range(1, n_fid):
            head = copy.deepcopy(model.mlp)
            for module in head.modules():
                if isinstance(module, nn.Linear):
                    module.reset_parameters()
            readouts.append(head)
        model.readouts = nn.ModuleList(readouts)
        model.mlp = None
    n_ref = n_fid if "C" in model.components else 1
    ref = torch.zeros(n_ref, MAX_Z)
    if composition_model is not None:
        atom_ref = AtomRef(is_intensive=model.is_intensive)
        try:
            atom_ref.initialize_from(composition_model)
        except NotImplementedError as err:
            raise ConfigError(
                f"composition_model={composition_model!r} unknown (use 'MPtrj', 'MPF', 'MP-r2SCAN' or None)"
            ) from err
        ref[:] = atom_ref.fc.weight.detach().view(1, MAX_Z)
    model.atom_ref = nn.Parameter(ref, requires_grad=False)  # [n_ref, 94] eV (per atom of element)


def m_extras(model: MFCHGNet, key: str, centre: Tensor, f_single: int | None, fid_atom: Tensor) -> Extra:
    """M-component biases ``(core, gate)`` of gated MLP ``key`` for rows centred on atoms ``centre``."""
    if "M" not in model.components:
        return None, None
    core, gate = model.fidelity_columns[f"{key}_core"], model.fidelity_columns[f"{key}_gate"]
    if f_single is not None:
        return core[:, f_single], gate[:, f_single]  # [out] broadcast over rows
    rows = fid_atom[centre]  # [n_rows]
    return core.t()[rows], gate.t()[rows]  # [n_rows, out]


def readout(model: MFCHGNet, feas: Tensor, fid_rows: Tensor, f_single: int | None) -> Tensor:
    """Readout MLP (per fidelity under R) on rows of ``feas`` -> [n_rows, 1] eV."""
    if "R" not in model.components:
        return model.mlp(feas)
    if f_single is not None:
        return model.readouts[f_single](feas)
    out = feas.new_zeros(feas.shape[0], 1)
    for f in torch.unique(fid_rows).tolist():
        rows = (fid_rows == f).nonzero().view(-1)
        out = out.index_copy(0, rows, model.readouts[f](feas.index_select(0, rows)))
    return out


def composition_energy(
    model: MFCHGNet, atomic_numbers: Tensor, owners: Tensor, atoms_per_graph: Tensor, fid_graph: Tensor
) -> Tensor:
    """AtomRef energy [n_graphs] (eV/atom if intensive, else eV) of each graph at its fidelity."""
    weights = model.atom_ref[fid_graph if "C" in model.components else torch.zeros_like(fid_graph)]
    site = weights[owners, atomic_numbers.long() - 1]  # [n_atoms] eV
    energy = torch.zeros(len(fid_graph), dtype=site.dtype, device=site.device).index_add(0, owners, site)
    return energy / atoms_per_graph if model.is_intensive else energy


def fidelity_only_parameters(model: MFCHGNet, f: int) -> dict[str, Tensor]:
    """Name -> view of the parameters (or slices) that only fidelity position ``f`` (0-based) uses."""
    out: dict[str, Tensor] = {}
    if "E" in model.components:
        out[f"fidelity_embedding.weight[{f}]"] = model.fidelity_embedding.weight[f]
    if "M" in model.components:
        for key, param in model.fidelity_columns.items():
            out[f"fidelity_columns.{key}[:, {f}]"] = param[:, f]
    if "R" in model.components:
        for name, param in model.readouts[f].named_parameters():
            out[f"readouts.{f}.{name}"] = param
    if "C" in model.components:
        out[f"atom_ref[{f}]"] = model.atom_ref[f]
    return out


def fit_composition(
    model: MFCHGNet,
    structures_or_graphs: Sequence[Structure | CrystalGraph],
    energies_per_atom: Sequence[float],
    f: int,
) -> None:
    """Least-squares AtomRef row of fidelity position ``f`` from energies in eV/atom (the shared row without
    C); only elements present in the data are refitted, as the minimum-norm correction of the current row (so
    an under-determined fit, e.g. one composition, moves the row only along the compositions it saw)."""
    energies = np.asarray(energies_per_atom, dtype=float)
    if energies.ndim != 1 or len(energies) != len(structures_or_graphs) or len(energies) == 0:
        raise DataError(
            f"fit_composition: need one energy per structure, got {energies.shape} for "
            f"{len(structures_or_graphs)} structures"
        )
    if not np.all(np.isfinite(energies)):
        raise DataError(
            f"fit_composition: non-finite energies at {np.where(~np.isfinite(energies))[0].tolist()}"
        )
    feats = np.zeros((len(energies), MAX_Z))
    for i, item in enumerate(structures_or_graphs):
        if isinstance(item, Structure):
            z = np.array([site.specie.Z for site in item])
        else:
            z = item.atomic_number.cpu().numpy()
        if len(z) == 0 or z.min() < 1 or z.max() > MAX_Z:
            raise DataError(f"fit_composition: structure {i} has elements outside Z = 1..{MAX_Z} or no sites")
        counts = np.bincount(z - 1, minlength=MAX_Z)
        feats[i] = counts / len(z) if model.is_intensive else counts
    cols = np.where(feats.any(axis=0))[0]
    row = f if "C" in model.components else 0
    # least-squares correction of the current row, minimum norm: compositions the frames do not pin down (all
    # frames LiFePO4, say) keep the prior's split between elements instead of an arbitrary one
    prior = model.atom_ref.detach().cpu().numpy()[row, cols].astype(float)
    delta, *_ = np.linalg.lstsq(feats[:, cols], energies - feats[:, cols] @ prior, rcond=None)
    weights = prior + delta
    with torch.no_grad():
        model.atom_ref[row, torch.as_tensor(cols)] = torch.as_tensor(weights, dtype=model.atom_ref.dtype).to(
            model.device
        )
    logger.info(
        "fitted AtomRef of %s on %d frames (%d elements)", model.fidelities[f], len(energies), len(cols)
    )
