"""Multi-fidelity CHGNet (arXiv 2511.11361) on CHGNet 0.3.0's architecture (chgnet 0.4.2).

Components (any subset of ``"EMRC"``):

- **E** fidelity embedding ``X_f`` (zero-init) added to the element embedding ``atom_embedding(Z-1)``;
- **M** one-hot fidelity appended to the input of the first linear layer of the gated MLPs in AtomConv, BondConv
  and AngleUpdate. Appending a one-hot column block to the input equals adding the matching weight column, so the
  extra columns are stored as ``fidelity_columns[key]`` of shape ``[out_features, n_fidelities]`` (zero-init) and
  added as a per-row bias after the first linear layer;
- **R** one readout MLP per fidelity;
- **C** one AtomRef (per-element reference energy, eV/atom, fitted by least squares) per fidelity.

The site-wise magnetic-moment head is the pretrained one; it reads atom features, which under E/M depend on the
fidelity. The trainer applies the magmom loss only on ``magnetic_fidelities``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from chgnet.graph import CrystalGraph
from chgnet.model.composition_model import AtomRef
from chgnet.model.functions import MLP, GatedMLP
from chgnet.model.model import CHGNet
from pymatgen.core import Structure
from torch import Tensor, nn

from mfal.errors import ConfigError, DataError
from mfal.fidelity import UnknownFidelityError

logger = logging.getLogger(__name__)

VALID_COMPONENTS = "EMRC"
VALID_TASKS = ("e", "ef", "em", "efm", "efs", "efsm")
MAX_Z = 94
#: GPa per eV/Å^3
GPA_PER_EV_A3 = 160.21766208
PRETRAINED_FILES = {
    "0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
    "0.2.0": "pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
    "r2scan": "pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
}
_CHILDREN = (
    "graph_converter",
    "atom_embedding",
    "bond_basis_expansion",
    "bond_embedding",
    "bond_weights_ag",
    "bond_weights_bg",
    "angle_basis_expansion",
    "angle_embedding",
    "atom_conv_layers",
    "bond_conv_layers",
    "angle_layers",
    "site_wise",
    "readout_norm",
    "pooling",
    "mlp",
)


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


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_linear(mlp: MLP) -> nn.Linear:
    return next(layer for layer in mlp.layers if isinstance(layer, nn.Linear))


def _run_mlp(mlp: MLP, x: Tensor, extra: Tensor | None) -> Tensor:
    """``mlp(x)`` with ``extra`` (per-fidelity bias, [out] or [n_rows, out]) added after the first linear layer."""
    injected = extra is None
    for layer in mlp.layers:
        x = layer(x)
        if not injected and isinstance(layer, nn.Linear):
            x = x + extra
            injected = True
    return x


def _run_gated(gmlp: GatedMLP, x: Tensor, extra_core: Tensor | None, extra_gate: Tensor | None) -> Tensor:
    """GatedMLP forward (identical to chgnet's) with the M-component bias injection."""
    core = _run_mlp(gmlp.mlp_core, x, extra_core)
    gate = _run_mlp(gmlp.mlp_gate, x, extra_gate)
    if gmlp.norm is not None:
        core, gate = gmlp.bn1(core), gmlp.bn2(gate)
    return gmlp.activation(core) * gmlp.sigmoid(gate)


class MFCHGNet(nn.Module):
    """Multi-fidelity CHGNet: CHGNet's layers plus per-fidelity components (see module docstring).

    Build from scratch with ``MFCHGNet(fidelities=..., components=..., **chgnet_kwargs)`` (chgnet's constructor
    arguments; ``composition_model`` = "MPtrj" (default) initialises every AtomRef from chgnet's MPtrj fit, None
    zeroes them) or warm-start with :meth:`from_pretrained`.
    """

    def __init__(
        self,
        *,
        fidelities: Sequence[str] = ("lf", "hf"),
        components: str = "EMRC",
        magnetic_fidelities: Sequence[str] = ("hf",),
        **chgnet_kwargs: Any,
    ) -> None:
        super().__init__()
        fidelities = tuple(fidelities)
        if (
            len(fidelities) < 1
            or len(set(fidelities)) != len(fidelities)
            or not all(isinstance(f, str) and f for f in fidelities)
        ):
            raise ConfigError(f"fidelities={list(fidelities)} must be distinct non-empty names")
        for fid in magnetic_fidelities:
            if fid not in fidelities:
                raise UnknownFidelityError(
                    f"magnetic fidelity {fid!r} not in known fidelities {list(fidelities)}"
                )
        self.fidelities: tuple[str, ...] = fidelities
        self.components: str = validate_components(components)
        self.magnetic_fidelities: tuple[str, ...] = tuple(magnetic_fidelities)
        composition_model = chgnet_kwargs.pop("composition_model", "MPtrj")
        pretrained_version = chgnet_kwargs.pop("pretrained_version", None)
        if composition_model is not None and not isinstance(composition_model, str):
            raise ConfigError(
                f"composition_model={composition_model!r} must be a dataset name (e.g. 'MPtrj') or None"
            )
        self.model_args: dict[str, Any] = {
            "fidelities": list(fidelities),
            "components": components,
            "magnetic_fidelities": list(magnetic_fidelities),
            "composition_model": composition_model,
            **copy.deepcopy(chgnet_kwargs),
        }
        if pretrained_version is not None:
            self.model_args["pretrained_version"] = pretrained_version
        n_fid = len(fidelities)

        with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints on construction
            try:
                base = CHGNet(composition_model=None, **chgnet_kwargs)
            except TypeError as err:
                raise ConfigError(
                    f"invalid CHGNet constructor arguments {sorted(chgnet_kwargs)}: {err}"
                ) from err
        for name in _CHILDREN:
            value = getattr(base, name)
            if name in {"bond_conv_layers", "angle_layers"} and not isinstance(value, nn.Module):
                value = None  # update_bond / update_angle disabled
            setattr(self, name, value)
        if self.graph_converter.algorithm != "fast":
            logger.warning("chgnet's compiled graph converter is unavailable; using the slow Python one")
        self.n_conv = base.n_conv
        self.is_intensive = base.is_intensive
        self.mlp_first = base.mlp_first
        self.atom_fea_dim = base.atom_fea_dim

        # E: fidelity embedding added to the element embedding, zero-init => pretrained behaviour
        if "E" in components:
            self.fidelity_embedding = nn.Embedding(n_fid, base.atom_fea_dim)
            nn.init.zeros_(self.fidelity_embedding.weight)
        # M: one-hot fidelity columns of the first linear layer of each gated MLP, zero-init
        if "M" in components:
            cols: dict[str, nn.Parameter] = {}
            for kind, layers in self._gated_layers():
                for i, gmlp in layers:
                    for half in ("core", "gate"):
                        out = _first_linear(getattr(gmlp, f"mlp_{half}")).out_features
                        cols[f"{kind}{i}_{half}"] = nn.Parameter(torch.zeros(out, n_fid))
            self.fidelity_columns = nn.ParameterDict(cols)
        # R: one readout per fidelity
        if "R" in components:
            readouts = [self.mlp]
            for _ in range(1, n_fid):
                head = copy.deepcopy(self.mlp)
                for module in head.modules():
                    if isinstance(module, nn.Linear):
                        module.reset_parameters()
                readouts.append(head)
            self.readouts = nn.ModuleList(readouts)
            self.mlp = None
        # C: one AtomRef per fidelity (else one shared); frozen, fitted by least squares
        n_ref = n_fid if "C" in components else 1
        ref = torch.zeros(n_ref, MAX_Z)
        if composition_model is not None:
            atom_ref = AtomRef(is_intensive=base.is_intensive)
            try:
                atom_ref.initialize_from(composition_model)
            except NotImplementedError as err:
                raise ConfigError(
                    f"composition_model={composition_model!r} unknown (use 'MPtrj', 'MPF', 'MP-r2SCAN' or None)"
                ) from err
            ref[:] = atom_ref.fc.weight.detach().view(1, MAX_Z)
        self.atom_ref = nn.Parameter(ref, requires_grad=False)  # [n_ref, 94] eV (per atom of element)

    # ------------------------------------------------------------------ construction helpers
    def _gated_layers(self) -> list[tuple[str, list[tuple[int, GatedMLP]]]]:
        out = [("atom_conv", [(i, layer.twoBody_atom) for i, layer in enumerate(self.atom_conv_layers)])]
        if self.bond_conv_layers is not None:
            out.append(
                ("bond_conv", [(i, layer.twoBody_bond) for i, layer in enumerate(self.bond_conv_layers)])
            )
        if self.angle_layers is not None:
            out.append(("angle", [(i, layer.twoBody_bond) for i, layer in enumerate(self.angle_layers)]))
        return out

    @classmethod
    def from_pretrained(
        cls,
        version: str = "0.3.0",
        *,
        fidelities: Sequence[str] = ("lf", "hf"),
        components: str = "EMRC",
        magnetic_fidelities: Sequence[str] = ("hf",),
    ) -> MFCHGNet:
        """Warm start: every fidelity reproduces the pretrained CHGNet ``version`` shipped in the chgnet wheel."""
        import chgnet

        if version not in PRETRAINED_FILES:
            raise ConfigError(
                f"version={version!r} not in pretrained CHGNet versions {list(PRETRAINED_FILES)}"
            )
        path = Path(chgnet.__file__).parent / PRETRAINED_FILES[version]
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
        kwargs = dict(state["model_args"])
        kwargs.pop("version", None)
        kwargs["mlp_out_bias"] = version == "0.2.0"  # as chgnet's CHGNet.load
        model = cls(
            fidelities=fidelities,
            components=components,
            magnetic_fidelities=magnetic_fidelities,
            **kwargs,
        )
        model.model_args["pretrained_version"] = version
        model._load_chgnet_state(state["state_dict"])
        return model

    def _load_chgnet_state(self, chgnet_state: dict[str, Tensor]) -> None:
        own = self.state_dict()
        new: dict[str, Tensor] = {}
        for key, value in chgnet_state.items():
            if key.startswith("mlp.") and "R" in self.components:
                for i in range(len(self.fidelities)):
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
        self.load_state_dict(new)

    # ------------------------------------------------------------------ properties
    @property
    def n_params(self) -> int:
        """Number of parameters (including the frozen AtomRefs)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.atom_ref.device

    @property
    def cutoff(self) -> float:
        """Atom-graph cutoff radius (Å)."""
        return float(self.graph_converter.atom_graph_cutoff)

    # ------------------------------------------------------------------ graphs and fidelities
    def graphs(
        self, structures: Structure | Sequence[Structure], *, names: Sequence[str] | None = None
    ) -> list[CrystalGraph]:
        """Crystal graphs of ``structures``; a structure that cannot be converted raises :class:`DataError`
        naming it (``names[i]`` or ``structure i``). Never drops a structure."""
        if isinstance(structures, Structure):
            structures = [structures]
        if names is not None and len(names) != len(structures):
            raise DataError(f"got {len(names)} names for {len(structures)} structures")
        out = []
        for i, structure in enumerate(structures):
            name = str(names[i]) if names is not None else f"structure {i}"
            out.append(self._graph(structure, name))
        return out

    def _graph(self, structure: Structure, name: str) -> CrystalGraph:
        if not isinstance(structure, Structure):
            raise DataError(f"{name}: expected a pymatgen Structure, got {type(structure).__name__}")
        if len(structure) == 0:
            raise DataError(f"{name}: structure has no sites")
        if not structure.is_ordered:
            raise DataError(f"{name}: structure is disordered (partial occupancies); order it first")
        bad = sorted({str(site.specie) for site in structure if not 1 <= site.specie.Z <= MAX_Z})
        if bad:
            raise DataError(f"{name}: element(s) {bad} outside the model's range Z = 1..{MAX_Z}")
        try:
            return self.graph_converter(structure, graph_id=name)
        except ValueError as err:
            if "isolated atom" in str(err):
                raise DataError(
                    f"{name}: has isolated atom(s) with no neighbour within the {self.cutoff:g} Å cutoff"
                ) from err
            raise DataError(f"{name}: graph conversion failed: {err}") from err
        except RuntimeError as err:
            raise DataError(f"{name}: graph conversion failed: {err}") from err

    def fidelity_tensor(self, fidelity: str | Tensor, n_graphs: int) -> Tensor:
        """0-based LongTensor [n_graphs] of fidelity positions from a name or 1-based indices."""
        known = list(self.fidelities)
        if isinstance(fidelity, str):
            if fidelity not in known:
                raise UnknownFidelityError(f"fidelity={fidelity!r} not in known fidelities {known}")
            return torch.full((n_graphs,), known.index(fidelity), dtype=torch.long, device=self.device)
        if not isinstance(fidelity, Tensor) or fidelity.is_floating_point() or fidelity.shape != (n_graphs,):
            raise UnknownFidelityError(
                f"fidelity must be a name in {known} or an integer tensor of shape [{n_graphs}] of 1-based "
                f"indices, got {fidelity!r}"
            )
        fid = fidelity.to(device=self.device, dtype=torch.long)
        if n_graphs and (int(fid.min()) < 1 or int(fid.max()) > len(known)):
            raise UnknownFidelityError(
                f"fidelity indices {sorted(set(fid.tolist()))} not in 1..{len(known)} (fidelities {known})"
            )
        return fid - 1

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        graphs: Sequence[CrystalGraph],
        fidelity: str | Tensor,
        *,
        task: str = "efsm",
        is_training: bool = False,
        create_graph: bool | None = None,
    ) -> dict[str, Any]:
        """Energies, forces, stresses and magnetic moments of ``graphs`` at ``fidelity``.

        Args:
            graphs: crystal graphs (from :meth:`graphs`).
            fidelity: a fidelity name for all graphs, or a LongTensor [n_graphs] of 1-based indices.
            task: one of "e", "ef", "em", "efm", "efs", "efsm" (e energy, f forces, s stress, m magmoms).
            is_training: keep the autograd graph (create_graph for forces/stress) for ``loss.backward()``.
            create_graph: differentiable force/stress backward (default: ``is_training``). chgnet always uses it;
                without it inference is ~7 % faster and forces differ from chgnet's by float32 rounding (~3e-5 eV/Å).

        Returns:
            "e": Tensor [n_graphs] eV/atom (incl. AtomRef), "f": list of [n_i, 3] eV/Å, "s": list of [3, 3] GPa
            (CHGNet convention = VASP × −0.1), "m": list of [n_i] μB (for every fidelity when asked; train it only on
            ``magnetic_fidelities``), "atoms_per_graph": LongTensor [n_graphs].
        """
        if task not in VALID_TASKS:
            raise ConfigError(f"task={task!r} not in {list(VALID_TASKS)}")
        if len(graphs) == 0:
            raise DataError("forward() got no graphs")
        device = self.device
        single = fidelity if isinstance(fidelity, str) else None
        fid_graph = self.fidelity_tensor(fidelity, len(graphs))  # [n_graphs] 0-based
        f_single = self.fidelities.index(single) if single is not None else None
        if f_single is None and bool((fid_graph == fid_graph[0]).all()):
            f_single = int(fid_graph[0])
        graphs = [g if g.atomic_number.device == device else g.to(device) for g in graphs]
        compute_f, compute_s, compute_m = "f" in task, "s" in task, "m" in task

        with torch.enable_grad():
            trunk = self._trunk(
                graphs, fid_graph, f_single, compute_stress=compute_s, compute_magmom=compute_m
            )
            bg, atoms_per_graph = trunk["bg"], trunk["atoms_per_graph"]
            pred: dict[str, Any] = {"atoms_per_graph": atoms_per_graph}
            if compute_m:
                pred["m"] = trunk["m"]
            energy = self._head_energy(trunk, fid_graph, f_single)  # [n_graphs] eV

            if compute_f or compute_s:
                inputs = (list(bg.atom_positions) if compute_f else []) + (
                    list(bg.strains) if compute_s else []
                )
                differentiable = is_training if create_graph is None else create_graph
                grads = torch.autograd.grad(
                    energy.sum(), inputs, create_graph=differentiable, retain_graph=is_training
                )
                n_f = len(graphs) if compute_f else 0
                if compute_f:
                    pred["f"] = [-g for g in grads[:n_f]]  # [n_i, 3] eV/Å
                if compute_s:
                    scale = GPA_PER_EV_A3 / bg.volumes  # [n_graphs]
                    pred["s"] = [g * scale[i] for i, g in enumerate(grads[n_f:])]  # [3, 3] GPa

            if self.is_intensive:
                energy = energy / atoms_per_graph
            pred["e"] = energy + self._composition_energy(
                bg.atomic_numbers, trunk["owners"], atoms_per_graph, fid_graph
            )

        if not is_training:
            for key in ("e", "f", "s", "m"):
                if key in pred:
                    pred[key] = pred[key].detach() if key == "e" else [t.detach() for t in pred[key]]
        return pred

    def _trunk(
        self,
        graphs: Sequence[CrystalGraph],
        fid_graph: Tensor,
        f_single: int | None,
        *,
        compute_stress: bool,
        compute_magmom: bool,
    ) -> dict[str, Any]:
        """Batched graph and message passing up to the (normalised) atom features before the readout."""
        from chgnet.model.model import BatchedGraph

        bg = BatchedGraph.from_graphs(
            graphs,
            bond_basis_expansion=self.bond_basis_expansion,
            angle_basis_expansion=self.angle_basis_expansion,
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

        atom_feas = self.atom_embedding(bg.atomic_numbers - 1)  # [n_atoms, 64]
        if "E" in self.components:
            atom_feas = atom_feas + self.fidelity_embedding(fid_atom)
        bond_feas = self.bond_embedding(bg.bond_bases_ag)  # [n_bonds, 64]
        bond_weights_ag = self.bond_weights_ag(bg.bond_bases_ag)
        bond_weights_bg = self.bond_weights_bg(bg.bond_bases_bg)
        has_angles = len(bg.angle_bases) != 0
        if has_angles:
            angle_feas = self.angle_embedding(bg.angle_bases)  # [n_angles, 64]
            bond_centre = bg.batched_bond_graph[:, 0]
        atom_graph = bg.batched_atom_graph
        d2u = bg.directed2undirected

        def extras(key: str, centre: Tensor) -> tuple[Tensor | None, Tensor | None]:
            if "M" not in self.components:
                return None, None
            core, gate = self.fidelity_columns[f"{key}_core"], self.fidelity_columns[f"{key}_gate"]
            if f_single is not None:
                return core[:, f_single], gate[:, f_single]  # [out] broadcast over rows
            rows = fid_atom[centre]  # [n_rows]
            return core.t()[rows], gate.t()[rows]  # [n_rows, out]

        for idx in range(self.n_conv):
            atom_feas = self._atom_conv(idx, atom_feas, bond_feas, bond_weights_ag, atom_graph, d2u, extras)
            if idx == self.n_conv - 1:
                break
            if has_angles and self.bond_conv_layers is not None:
                bond_feas = self._bond_conv(
                    idx,
                    atom_feas,
                    bond_feas,
                    bond_weights_bg,
                    angle_feas,
                    bg.batched_bond_graph,
                    extras(f"bond_conv{idx}", bond_centre),
                )
                if self.angle_layers is not None:
                    angle_feas = self._angle_update(
                        idx,
                        atom_feas,
                        bond_feas,
                        angle_feas,
                        bg.batched_bond_graph,
                        extras(f"angle{idx}", bond_centre),
                    )
            if idx == self.n_conv - 2 and compute_magmom:
                magmom = torch.abs(self.site_wise(atom_feas)).view(-1)  # [n_atoms] μB
                out["m"] = list(torch.split(magmom, atoms_per_graph.tolist()))

        if self.readout_norm is not None:
            atom_feas = self.readout_norm(atom_feas)
        out["atom_feas"] = atom_feas  # [n_atoms, 64]
        return out

    def _head_energy(self, trunk: dict[str, Any], fid_graph: Tensor, f_single: int | None) -> Tensor:
        """Readout energy [n_graphs] in eV (total, without AtomRef) from the trunk's atom features."""
        atom_feas, owners = trunk["atom_feas"], trunk["owners"]
        if self.mlp_first:
            site_energies = self._readout(atom_feas, trunk["fid_atom"], f_single)  # [n_atoms, 1] eV
            return self.pooling(site_energies, owners).view(-1)
        crystal_feas = self.pooling(atom_feas, owners)
        return self._readout(crystal_feas, fid_graph, f_single).view(-1) * trunk["atoms_per_graph"]

    def _atom_conv(self, idx, atom_feas, bond_feas, bond_weights, atom_graph, d2u, extras) -> Tensor:
        layer = self.atom_conv_layers[idx]
        centre = atom_graph[:, 0]
        messages = torch.cat(
            [
                atom_feas.index_select(0, centre),
                bond_feas.index_select(0, d2u),
                atom_feas.index_select(0, atom_graph[:, 1]),
            ],
            dim=1,
        )  # [n_directed, 2*atom + bond]
        messages = _run_gated(layer.twoBody_atom, messages, *extras(f"atom_conv{idx}", centre))
        messages = messages * bond_weights.index_select(0, d2u)
        new = atom_feas.new_zeros(atom_feas.shape).index_add(0, centre, messages)  # sum over neighbours
        if layer.use_mlp_out:
            new = layer.mlp_out(new)
        if layer.resnet:
            new = new + atom_feas
        if layer.atom_norm is not None:
            new = layer.atom_norm(new)
        return new

    def _triplet_input(self, atom_feas, bond_feas, angle_feas, bond_graph) -> Tensor:
        return torch.cat(
            [
                bond_feas.index_select(0, bond_graph[:, 1]),
                bond_feas.index_select(0, bond_graph[:, 2]),
                angle_feas,
                atom_feas.index_select(0, bond_graph[:, 0]),
            ],
            dim=1,
        )  # [n_angles, 2*bond + angle + atom]

    def _bond_conv(self, idx, atom_feas, bond_feas, bond_weights, angle_feas, bond_graph, extra) -> Tensor:
        layer = self.bond_conv_layers[idx]
        update = _run_gated(
            layer.twoBody_bond, self._triplet_input(atom_feas, bond_feas, angle_feas, bond_graph), *extra
        )
        update = (
            update
            * bond_weights.index_select(0, bond_graph[:, 1])
            * bond_weights.index_select(0, bond_graph[:, 2])
        )
        new = bond_feas.new_zeros(bond_feas.shape).index_add(0, bond_graph[:, 1], update)
        if layer.use_mlp_out:
            new = layer.mlp_out(new)
        if layer.resnet:
            new = new + bond_feas
        if layer.bond_norm is not None:
            new = layer.bond_norm(new)
        return new

    def _angle_update(self, idx, atom_feas, bond_feas, angle_feas, bond_graph, extra) -> Tensor:
        layer = self.angle_layers[idx]
        new = _run_gated(
            layer.twoBody_bond, self._triplet_input(atom_feas, bond_feas, angle_feas, bond_graph), *extra
        )
        if layer.resnet:
            new = new + angle_feas
        if layer.angle_norm is not None:
            new = layer.angle_norm(new)
        return new

    def _readout(self, feas: Tensor, fid_rows: Tensor, f_single: int | None) -> Tensor:
        """Readout MLP (per fidelity under R) on rows of ``feas`` -> [n_rows, 1] eV."""
        if "R" not in self.components:
            return self.mlp(feas)
        if f_single is not None:
            return self.readouts[f_single](feas)
        out = feas.new_zeros(feas.shape[0], 1)
        for f in torch.unique(fid_rows).tolist():
            rows = (fid_rows == f).nonzero().view(-1)
            out = out.index_copy(0, rows, self.readouts[f](feas.index_select(0, rows)))
        return out

    def _composition_energy(
        self, atomic_numbers: Tensor, owners: Tensor, atoms_per_graph: Tensor, fid_graph: Tensor
    ) -> Tensor:
        """AtomRef energy [n_graphs] (eV/atom if intensive, else eV)."""
        weights = self.atom_ref[fid_graph if "C" in self.components else torch.zeros_like(fid_graph)]
        site = weights[owners, atomic_numbers.long() - 1]  # [n_atoms] eV
        energy = torch.zeros(len(fid_graph), dtype=site.dtype, device=site.device).index_add(0, owners, site)
        return energy / atoms_per_graph if self.is_intensive else energy

    # ------------------------------------------------------------------ composition model
    def fit_composition(
        self,
        structures_or_graphs: Sequence[Structure | CrystalGraph],
        energies_per_atom: Sequence[float],
        fidelity: str,
    ) -> None:
        """Least-squares AtomRef (eV per atom of each element) of ``fidelity`` from energies in eV/atom.

        Only elements present in the data are refitted; the others keep their values. Without C the one shared
        AtomRef is fitted.
        """
        f = self.fidelity_tensor(fidelity, 1)[0].item()
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
                raise DataError(
                    f"fit_composition: structure {i} has elements outside Z = 1..{MAX_Z} or no sites"
                )
            counts = np.bincount(z - 1, minlength=MAX_Z)
            feats[i] = counts / len(z) if self.is_intensive else counts
        cols = np.where(feats.any(axis=0))[0]
        weights, *_ = np.linalg.lstsq(feats[:, cols], energies, rcond=None)
        row = f if "C" in self.components else 0
        with torch.no_grad():
            self.atom_ref[row, torch.as_tensor(cols)] = torch.as_tensor(
                weights, dtype=self.atom_ref.dtype
            ).to(self.device)
        logger.info("fitted AtomRef of %s on %d frames (%d elements)", fidelity, len(energies), len(cols))

    # ------------------------------------------------------------------ per-fidelity parameters
    def fidelity_only_parameters(self, fidelity: str) -> dict[str, Tensor]:
        """Name -> view of the parameters (or slices) that only ``fidelity`` uses (E row, M columns, R head,
        C row). Views share storage with the model, so clone them to compare before/after a step."""
        f = self.fidelity_tensor(fidelity, 1)[0].item()
        out: dict[str, Tensor] = {}
        if "E" in self.components:
            out[f"fidelity_embedding.weight[{f}]"] = self.fidelity_embedding.weight[f]
        if "M" in self.components:
            for key, param in self.fidelity_columns.items():
                out[f"fidelity_columns.{key}[:, {f}]"] = param[:, f]
        if "R" in self.components:
            for name, param in self.readouts[f].named_parameters():
                out[f"readouts.{f}.{name}"] = param
        if "C" in self.components:
            out[f"atom_ref[{f}]"] = self.atom_ref[f]
        return out

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        structures: Structure | Sequence[Structure],
        fidelity: str = "hf",
        *,
        batch_size: int = 16,
        task: str = "efsm",
        graphs: Sequence[CrystalGraph] | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Like CHGNet.predict_structure: per structure "e" float eV/atom, "f" [n, 3] eV/Å, "s" [3, 3] GPa,
        "m" [n] μB as numpy. A single Structure gives one dict, a sequence a list. ``graphs`` skips conversion."""
        single = isinstance(structures, Structure)
        if graphs is None:
            graphs = self.graphs(structures)
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} must be >= 1")
        self.fidelity_tensor(fidelity, 1)  # validate before any work
        was_training = self.training
        self.eval()
        results: list[dict[str, Any]] = []
        try:
            for start in range(0, len(graphs), batch_size):
                pred = self.forward(graphs[start : start + batch_size], fidelity, task=task)
                for i in range(len(pred["e"])):
                    item: dict[str, Any] = {"e": float(pred["e"][i])}
                    for key in ("f", "s", "m"):
                        if key in pred:
                            item[key] = pred[key][i].cpu().numpy()
                    results.append(item)
        finally:
            self.train(was_training)
        return results[0] if single else results

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike) -> str:
        """Write ``{"model_args", "state_dict", "mfal_version"}`` (tensors on CPU) atomically; return its sha256."""
        import mfal

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "model_args": copy.deepcopy(self.model_args),
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
            "mfal_version": mfal.__version__,
        }
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return file_sha256(path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, sha256: str | None = None, device: str = "cpu") -> MFCHGNet:
        """Rebuild a model saved by :meth:`save` (``torch.load(weights_only=True)``; pickled payloads refused).

        Raises DataError if the file is missing, its sha256 differs from ``sha256``, or it is not an mfal
        checkpoint.
        """
        from mfal.device import resolve_device

        path = Path(path)
        if not path.is_file():
            raise DataError(f"checkpoint {path} does not exist")
        if sha256 is not None:
            actual = file_sha256(path)
            if actual != sha256:
                raise DataError(f"checkpoint {path}: sha256 {actual} != expected {sha256}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise DataError(
                f"checkpoint {path} contains a pickled Python object that safe loading (weights_only=True) "
                "refuses; only mfal checkpoints (model_args + state_dict tensors) are accepted"
            ) from err
        except Exception as err:  # torch raises many types for non-torch files (KeyError, RuntimeError, ...)
            raise DataError(f"checkpoint {path} is not a readable torch file: {type(err).__name__}: {err}") from err
        if not isinstance(payload, dict) or not {"model_args", "state_dict"} <= set(payload):
            keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
            raise DataError(
                f"checkpoint {path} is not an mfal checkpoint: expected keys model_args, state_dict, "
                f"got {keys}"
            )
        model = cls(**payload["model_args"])
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as err:
            raise DataError(f"checkpoint {path}: weights do not match its model_args: {err}") from err
        return model.to(resolve_device(device))
