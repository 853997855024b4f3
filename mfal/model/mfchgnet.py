"""Multi-fidelity CHGNet (arXiv 2511.11361) on CHGNet 0.3.0's architecture (chgnet 0.4.2): the module and forward.

Components (any subset of ``"EMRC"``, see :mod:`mfal.model.components`):

- **E** fidelity embedding ``X_f`` (zero-init) added to the element embedding ``atom_embedding(Z-1)``;
- **M** one-hot fidelity appended to the input of the first linear layer of the gated MLPs in AtomConv, BondConv
  and AngleUpdate, stored as ``fidelity_columns[key]`` ``[out_features, n_fidelities]`` (zero-init) and added as a
  per-row bias after the first linear layer (:mod:`mfal.model.layers`);
- **R** one readout MLP per fidelity;
- **C** one AtomRef (per-element reference energy, eV/atom, fitted by least squares) per fidelity.

The site-wise magnetic-moment head is the pretrained one; it reads atom features, which under E/M depend on the
fidelity. The trainer applies the magmom loss only on ``magnetic_fidelities``. Checkpoints:
:mod:`mfal.model.checkpoint`; warm start: :mod:`mfal.model.pretrained`; graphs: :mod:`mfal.model.graphs`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
from chgnet.graph import CrystalGraph
from chgnet.model.model import CHGNet
from pymatgen.core import Structure
from torch import Tensor, nn

from mfal.errors import ConfigError, DataError
from mfal.fidelity import DEFAULT, UnknownFidelityError
from mfal.model import components as comp
from mfal.model.checkpoint import file_sha256
from mfal.model.components import MAX_Z, VALID_COMPONENTS, validate_components
from mfal.model.pretrained import PRETRAINED_FILES
from mfal.model.trunk import run_trunk

logger = logging.getLogger(__name__)

__all__ = [
    "GPA_PER_EV_A3",
    "MAX_Z",
    "PRETRAINED_FILES",
    "VALID_COMPONENTS",
    "VALID_TASKS",
    "MFCHGNet",
    "file_sha256",
    "validate_components",
]

VALID_TASKS = ("e", "ef", "em", "efm", "efs", "efsm")
#: GPa per eV/Å^3
GPA_PER_EV_A3 = 160.21766208
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


class MFCHGNet(nn.Module):
    """Multi-fidelity CHGNet: CHGNet's layers plus per-fidelity components (see module docstring).

    Build from scratch with ``MFCHGNet(fidelities=..., components=..., **chgnet_kwargs)`` (chgnet's constructor
    arguments; ``composition_model`` = "MPtrj" (default) initialises every AtomRef from chgnet's MPtrj fit, None
    zeroes them) or warm-start with :meth:`from_pretrained`. Fidelities default to :data:`mfal.fidelity.DEFAULT`.
    """

    def __init__(
        self,
        *,
        fidelities: Sequence[str] = DEFAULT.names,
        components: str = "EMRC",
        magnetic_fidelities: Sequence[str] = DEFAULT.magnetic,
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
        comp.add_components(self, composition_model)  # E, M, R, C parameters

    @classmethod
    def from_pretrained(
        cls,
        version: str = "0.3.0",
        *,
        fidelities: Sequence[str] = DEFAULT.names,
        components: str = "EMRC",
        magnetic_fidelities: Sequence[str] = DEFAULT.magnetic,
    ) -> MFCHGNet:
        """Warm start: every fidelity reproduces the pretrained CHGNet ``version`` shipped in the chgnet wheel."""
        from mfal.model.pretrained import load_chgnet_state, pretrained_state

        kwargs, state = pretrained_state(version)
        model = cls(
            fidelities=fidelities, components=components, magnetic_fidelities=magnetic_fidelities, **kwargs
        )
        model.model_args["pretrained_version"] = version
        load_chgnet_state(model, state)
        return model

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
        from mfal.model.graphs import structure_graphs

        return structure_graphs(self.graph_converter, structures, names)

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

    def _position(self, fidelity: str) -> int:
        """0-based position of fidelity ``fidelity`` (UnknownFidelityError listing the known ones)."""
        return int(self.fidelity_tensor(fidelity, 1)[0])

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
            trunk = run_trunk(
                self, graphs, fid_graph, f_single, compute_stress=compute_s, compute_magmom=compute_m
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

    def _head_energy(self, trunk: dict[str, Any], fid_graph: Tensor, f_single: int | None) -> Tensor:
        """Readout energy [n_graphs] in eV (total, without AtomRef) from the trunk's atom features."""
        atom_feas, owners = trunk["atom_feas"], trunk["owners"]
        if self.mlp_first:
            site_energies = comp.readout(self, atom_feas, trunk["fid_atom"], f_single)  # [n_atoms, 1] eV
            return self.pooling(site_energies, owners).view(-1)
        crystal_feas = self.pooling(atom_feas, owners)
        return comp.readout(self, crystal_feas, fid_graph, f_single).view(-1) * trunk["atoms_per_graph"]

    def _composition_energy(
        self, atomic_numbers: Tensor, owners: Tensor, atoms_per_graph: Tensor, fid_graph: Tensor
    ) -> Tensor:
        """AtomRef energy [n_graphs] (eV/atom if intensive, else eV)."""
        return comp.composition_energy(self, atomic_numbers, owners, atoms_per_graph, fid_graph)

    # ------------------------------------------------------------------ per-fidelity parameters
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
        comp.fit_composition(self, structures_or_graphs, energies_per_atom, self._position(fidelity))

    def fidelity_only_parameters(self, fidelity: str) -> dict[str, Tensor]:
        """Name -> view of the parameters (or slices) that only ``fidelity`` uses (E row, M columns, R head,
        C row). Views share storage with the model, so clone them to compare before/after a step."""
        return comp.fidelity_only_parameters(self, self._position(fidelity))

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        structures: Structure | Sequence[Structure],
        fidelity: str | None = None,
        *,
        batch_size: int = 16,
        task: str = "efsm",
        graphs: Sequence[CrystalGraph] | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Like CHGNet.predict_structure: per structure "e" float eV/atom, "f" [n, 3] eV/Å, "s" [3, 3] GPa,
        "m" [n] μB as numpy. A single Structure gives one dict, a sequence a list. ``fidelity`` None = the last
        (target) fidelity. ``graphs`` skips conversion."""
        fidelity = self.fidelities[-1] if fidelity is None else fidelity
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
        from mfal.model.checkpoint import save_checkpoint

        return save_checkpoint(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, sha256: str | None = None, device: str = "cpu") -> MFCHGNet:
        """Rebuild a model saved by :meth:`save` (``torch.load(weights_only=True)``; pickled payloads refused).

        Raises DataError if the file is missing, its sha256 differs from ``sha256``, or it is not an mfal
        checkpoint.
        """
        from mfal.model.checkpoint import load_checkpoint

        return load_checkpoint(path, sha256=sha256, device=device, cls=cls)
