"""MFCHGNet's trunk: CHGNet's embeddings and message passing with the E and M components, up to the atom
features the readouts take. Reproduces chgnet's ``CHGNet.forward`` up to the readout when E and M are zero."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from chgnet.graph import CrystalGraph
from chgnet.model.model import BatchedGraph
from torch import Tensor

from mfal.model.components import m_extras
from mfal.model.layers import Extra, angle_update, atom_conv, bond_conv

if TYPE_CHECKING:
    from mfal.model.mfchgnet import MFCHGNet


def run_trunk(
    model: MFCHGNet,
    graphs: Sequence[CrystalGraph],
    fid_graph: Tensor,
    f_single: int | None,
    *,
    compute_stress: bool,
    compute_magmom: bool,
) -> dict[str, Any]:
    """Batched graph and message passing of ``model`` up to the (normalised) atom features before the readout.

    ``fid_graph`` [n_graphs] 0-based fidelity positions; ``f_single`` their common position, or None if mixed.

    Returns "bg" (chgnet BatchedGraph), "owners" [n_atoms], "atoms_per_graph" [n_graphs], "fid_atom"
    [n_atoms] (0-based), "atom_feas" [n_atoms, atom_dim] and, with ``compute_magmom``, "m" list of [n_i] μB.
    """
    bg = BatchedGraph.from_graphs(
        graphs,
        bond_basis_expansion=model.bond_basis_expansion,
        angle_basis_expansion=model.angle_basis_expansion,
        compute_stress=compute_stress,
    )
    owners = bg.atom_owners.long()  # [n_atoms]
    atoms_per_graph = torch.bincount(owners, minlength=len(graphs))  # [n_graphs]
    fid_atom = fid_graph[owners]  # [n_atoms]
    out: dict[str, Any] = {
        "bg": bg,
        "owners": owners,
        "atoms_per_graph": atoms_per_graph,
        "fid_atom": fid_atom,
    }

    atom_feas = model.atom_embedding(bg.atomic_numbers - 1)  # [n_atoms, 64]
    if "E" in model.components:
        atom_feas = atom_feas + model.fidelity_embedding(fid_atom)
    bond_feas = model.bond_embedding(bg.bond_bases_ag)  # [n_bonds, 64]
    bond_weights_ag = model.bond_weights_ag(bg.bond_bases_ag)
    bond_weights_bg = model.bond_weights_bg(bg.bond_bases_bg)
    has_angles = len(bg.angle_bases) != 0
    if has_angles:
        angle_feas = model.angle_embedding(bg.angle_bases)  # [n_angles, 64]
        bond_centre = bg.batched_bond_graph[:, 0]
    atom_graph = bg.batched_atom_graph
    d2u = bg.directed2undirected

    def extras(key: str, centre: Tensor) -> Extra:
        return m_extras(model, key, centre, f_single, fid_atom)

    for idx in range(model.n_conv):
        if idx == model.n_conv - 1:
            out["last_layer_inputs"] = (atom_feas, bond_feas)
        atom_feas = atom_conv(
            model.atom_conv_layers[idx],
            atom_feas,
            bond_feas,
            bond_weights_ag,
            atom_graph,
            d2u,
            extras(f"atom_conv{idx}", atom_graph[:, 0]),
        )
        if idx == model.n_conv - 1:
            break
        if has_angles and model.bond_conv_layers is not None:
            bond_feas = bond_conv(
                model.bond_conv_layers[idx],
                atom_feas,
                bond_feas,
                bond_weights_bg,
                angle_feas,
                bg.batched_bond_graph,
                extras(f"bond_conv{idx}", bond_centre),
            )
            if model.angle_layers is not None:
                angle_feas = angle_update(
                    model.angle_layers[idx],
                    atom_feas,
                    bond_feas,
                    angle_feas,
                    bg.batched_bond_graph,
                    extras(f"angle{idx}", bond_centre),
                )
        if idx == model.n_conv - 2 and compute_magmom:
            magmom = torch.abs(model.site_wise(atom_feas)).view(-1)  # [n_atoms] μB
            out["m"] = list(torch.split(magmom, atoms_per_graph.tolist()))

    if model.readout_norm is not None:
        atom_feas = model.readout_norm(atom_feas)
    out["atom_feas"] = atom_feas  # [n_atoms, 64]

    def last_layer(atom_in: Tensor, bond_in: Tensor) -> Tensor:
        """The last AtomConv (+ readout norm) on given inputs; its bond weights stay tied to the positions."""
        idx = model.n_conv - 1
        feas = atom_conv(
            model.atom_conv_layers[idx], atom_in, bond_in, bond_weights_ag, atom_graph, d2u,
            extras(f"atom_conv{idx}", atom_graph[:, 0]),
        )  # fmt: skip
        return model.readout_norm(feas) if model.readout_norm is not None else feas

    out["last_layer"] = last_layer
    return out
