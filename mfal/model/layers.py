"""CHGNet's message-passing layers run with the M-component injection (chgnet 0.4.2 layer objects, own forward).

Each function reproduces the matching chgnet ``forward`` exactly when its ``extra`` biases are None (or zero): the
M component appends a one-hot fidelity to the input of the first linear layer of every gated MLP, which equals
adding that layer's fidelity column as a bias after it. ``extra`` is ``(core, gate)``, each ``[out]`` (one
fidelity for all rows) or ``[n_rows, out]`` (per row), or ``(None, None)``.
"""

from __future__ import annotations

import torch
from chgnet.model.functions import MLP, GatedMLP
from torch import Tensor, nn

Extra = tuple[Tensor | None, Tensor | None]


def first_linear(mlp: MLP) -> nn.Linear:
    """The first ``nn.Linear`` of a chgnet MLP (the layer whose input the M component extends)."""
    return next(layer for layer in mlp.layers if isinstance(layer, nn.Linear))


def run_mlp(mlp: MLP, x: Tensor, extra: Tensor | None) -> Tensor:
    """``mlp(x)`` with ``extra`` (per-fidelity bias, [out] or [n_rows, out]) added after the first linear layer."""
    injected = extra is None
    for layer in mlp.layers:
        x = layer(x)
        if not injected and isinstance(layer, nn.Linear):
            x = x + extra
            injected = True
    return x


def run_gated(gmlp: GatedMLP, x: Tensor, extra_core: Tensor | None, extra_gate: Tensor | None) -> Tensor:
    """GatedMLP forward (identical to chgnet's) with the M-component bias injection."""
    core = run_mlp(gmlp.mlp_core, x, extra_core)
    gate = run_mlp(gmlp.mlp_gate, x, extra_gate)
    if gmlp.norm is not None:
        core, gate = gmlp.bn1(core), gmlp.bn2(gate)
    return gmlp.activation(core) * gmlp.sigmoid(gate)


def gated_layers(
    atom_conv_layers: nn.ModuleList,
    bond_conv_layers: nn.ModuleList | None,
    angle_layers: nn.ModuleList | None,
) -> list[tuple[str, list[tuple[int, GatedMLP]]]]:
    """The gated MLPs that take the M component, by kind ("atom_conv", "bond_conv", "angle") and layer index."""
    out = [("atom_conv", [(i, layer.twoBody_atom) for i, layer in enumerate(atom_conv_layers)])]
    if bond_conv_layers is not None:
        out.append(("bond_conv", [(i, layer.twoBody_bond) for i, layer in enumerate(bond_conv_layers)]))
    if angle_layers is not None:
        out.append(("angle", [(i, layer.twoBody_bond) for i, layer in enumerate(angle_layers)]))
    return out


def atom_conv(
    layer: nn.Module,
    atom_feas: Tensor,
    bond_feas: Tensor,
    bond_weights: Tensor,
    atom_graph: Tensor,
    d2u: Tensor,
    extra: Extra,
) -> Tensor:
    """chgnet ``AtomConv``: atom features [n_atoms, atom_dim] updated from their directed edges ``atom_graph``."""
    centre = atom_graph[:, 0]
    messages = torch.cat(
        [
            atom_feas.index_select(0, centre),
            bond_feas.index_select(0, d2u),
            atom_feas.index_select(0, atom_graph[:, 1]),
        ],
        dim=1,
    )  # [n_directed, 2*atom + bond]
    messages = run_gated(layer.twoBody_atom, messages, *extra)
    messages = messages * bond_weights.index_select(0, d2u)
    new = atom_feas.new_zeros(atom_feas.shape).index_add(0, centre, messages)  # sum over neighbours
    return _finish(layer, new, atom_feas, layer.atom_norm)


def triplet_input(atom_feas: Tensor, bond_feas: Tensor, angle_feas: Tensor, bond_graph: Tensor) -> Tensor:
    """Per angle: the two bonds, the angle and the centre atom, concatenated -> [n_angles, 2*bond + angle + atom]."""
    return torch.cat(
        [
            bond_feas.index_select(0, bond_graph[:, 1]),
            bond_feas.index_select(0, bond_graph[:, 2]),
            angle_feas,
            atom_feas.index_select(0, bond_graph[:, 0]),
        ],
        dim=1,
    )


def bond_conv(
    layer: nn.Module,
    atom_feas: Tensor,
    bond_feas: Tensor,
    bond_weights: Tensor,
    angle_feas: Tensor,
    bond_graph: Tensor,
    extra: Extra,
) -> Tensor:
    """chgnet ``BondConv``: bond features [n_bonds, bond_dim] updated from the angles they take part in."""
    update = run_gated(
        layer.twoBody_bond, triplet_input(atom_feas, bond_feas, angle_feas, bond_graph), *extra
    )
    update = (
        update
        * bond_weights.index_select(0, bond_graph[:, 1])
        * bond_weights.index_select(0, bond_graph[:, 2])
    )
    new = bond_feas.new_zeros(bond_feas.shape).index_add(0, bond_graph[:, 1], update)
    return _finish(layer, new, bond_feas, layer.bond_norm)


def angle_update(
    layer: nn.Module,
    atom_feas: Tensor,
    bond_feas: Tensor,
    angle_feas: Tensor,
    bond_graph: Tensor,
    extra: Extra,
) -> Tensor:
    """chgnet ``AngleUpdate``: angle features [n_angles, angle_dim] from their bonds and centre atom."""
    new = run_gated(layer.twoBody_bond, triplet_input(atom_feas, bond_feas, angle_feas, bond_graph), *extra)
    return _finish(layer, new, angle_feas, layer.angle_norm)


def _finish(layer: nn.Module, new: Tensor, old: Tensor, norm: nn.Module | None) -> Tensor:
    """A layer's tail as in chgnet: optional output MLP (AtomConv/BondConv), residual, normalisation."""
    if getattr(layer, "use_mlp_out", False):
        new = layer.mlp_out(new)
    if layer.resnet:
        new = new + old
    if norm is not None:
        new = norm(new)
    return new
