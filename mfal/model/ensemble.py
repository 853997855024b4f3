"""Ensembles of MFCHGNet members: mean and spread of energy, forces and magnetic moments per fidelity.

Graphs are built once per call and shared by all members. When the members share their trunk (every weight
except the readout heads and AtomRefs is identical, e.g. a readout ensemble built by :func:`readout_ensemble`),
the trunk runs once and the K member forces come from one batched backward pass (``is_grads_batched``), or, with
``force_spread="last_layer"``, the mean forces from one full backward pass and the member contrasts through the last
AtomConv only (cheap; see :meth:`MFEnsemble.predict_with_uncertainty`); otherwise each member runs its own forward
on the shared graphs.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from chgnet.graph import CrystalGraph
from pymatgen.core import Structure

from mfal.errors import ConfigError, DataError
from mfal.model.mfchgnet import MFCHGNet
from mfal.model.trunk import run_trunk

logger = logging.getLogger(__name__)

#: atoms per scoring batch (CPU cost per atom grows with the batch: docs/benchmarks.md, bench scale)
MAX_BATCH_ATOMS = 512
#: how a shared-trunk ensemble computes its member force spread (see predict_with_uncertainty)
FORCE_SPREADS = ("exact", "last_layer")
#: state-dict prefixes that belong to a member's head (may differ in a shared-trunk ensemble)
HEAD_PREFIXES = ("readouts.", "mlp.", "atom_ref")


class MFEnsemble:
    """K MFCHGNet members with the same fidelities and graph cutoffs."""

    def __init__(self, members: Sequence[MFCHGNet]) -> None:
        members = list(members)
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        lead = members[0]
        for i, member in enumerate(members[1:], start=1):
            if member.fidelities != lead.fidelities:
                raise ConfigError(
                    f"member {i} fidelities {list(member.fidelities)} != {list(lead.fidelities)}"
                )
            conv, lead_conv = member.graph_converter, lead.graph_converter
            if (conv.atom_graph_cutoff, conv.bond_graph_cutoff) != (
                lead_conv.atom_graph_cutoff,
                lead_conv.bond_graph_cutoff,
            ):
                raise ConfigError(
                    f"member {i} graph cutoffs differ from member 0; graphs could not be shared"
                )
        self.members: list[MFCHGNet] = members
        self.shared_trunk: bool = len(members) > 1 and _same_trunk(members)

    @property
    def fidelities(self) -> tuple[str, ...]:
        """Fidelity names of the members."""
        return self.members[0].fidelities

    @classmethod
    def from_checkpoints(
        cls,
        paths: Sequence[str | os.PathLike],
        sha256s: Sequence[str | None] | None = None,
        device: str = "cpu",
    ) -> MFEnsemble:
        """Load members saved by :meth:`MFCHGNet.save`, checking each sha256 when given."""
        paths = list(paths)
        if sha256s is not None and len(sha256s) != len(paths):
            raise ConfigError(f"got {len(sha256s)} sha256s for {len(paths)} checkpoints")
        shas = list(sha256s) if sha256s is not None else [None] * len(paths)
        return cls([MFCHGNet.load(p, sha256=s, device=device) for p, s in zip(paths, shas, strict=True)])

    def predict_with_uncertainty(
        self,
        structures: Structure | Sequence[Structure],
        fidelity: str,
        *,
        batch_size: int = 16,
        names: Sequence[str] | None = None,
        force_probes: int | None = None,
        seed: int = 0,
        graphs: Sequence[CrystalGraph] | None = None,
        force_spread: str = "exact",
        max_batch_atoms: int | None = MAX_BATCH_ATOMS,
    ) -> dict[str, np.ndarray | list]:
        """Ensemble mean and spread (population std over the K members) at ``fidelity``.

        Returns "energy" [n] eV/atom, "energy_std" [n], "forces" list of [n_i, 3] eV/Å, "forces_std" list of [n_i]
        (per atom: norm of the per-component std, eV/Å), "forces_std_xyz" list of [n_i, 3] (per atom and
        component std, eV/Å; "forces_std" is its norm over x, y, z), "force_std_max" [n], "force_std_mean" [n];
        for magnetic fidelities also "magmoms" / "magmoms_std" lists of [n_i] μB.

        ``force_probes`` (shared-trunk ensembles only): number P < K-1 of random orthonormal contrast probes for an
        unbiased sketch of the force variance (cost: 1 + P backward passes instead of K). None = exact.
        ``graphs``: crystal graphs of ``structures`` from ``members[0].graphs`` (skips conversion, e.g. to predict
        several fidelities of the same structures).
        ``force_spread`` (shared-trunk ensembles): "exact" = member force contrasts backpropagated through the whole
        trunk (K backward rows); "last_layer" = mean forces exact (one full backward row), member contrasts
        backpropagated through the last AtomConv only, the features entering it held fixed (its bond weights stay
        tied to the positions). The last-layer spread is smaller than the exact one (≈ 0.1-0.3×; the campaign's
        per-round calibration scale absorbs it) and ranks atoms and frames about as well, at a fraction of the cost
        (docs/benchmarks.md). Independent members always give exact spreads.
        ``max_batch_atoms``: a batch also ends before it would exceed this many atoms (a larger cell goes alone);
        on CPU the cost per atom grows with the atoms of a batch, so big cells are scored a few at a time.
        None = ``batch_size`` graphs per batch whatever their size.
        """
        if isinstance(structures, Structure):
            structures = [structures]
        lead = self.members[0]
        lead.fidelity_tensor(fidelity, 1)  # validate the name before any work
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} must be >= 1")
        if force_spread not in FORCE_SPREADS:
            raise ConfigError(f"force_spread={force_spread!r} not in {list(FORCE_SPREADS)}")
        last_layer = force_spread == "last_layer" and self.shared_trunk
        k = len(self.members)
        if force_probes is not None:
            if not self.shared_trunk:
                raise ConfigError(
                    "force_probes needs a shared-trunk ensemble (e.g. readout_ensemble); use None"
                )
            if not 1 <= force_probes <= k - 1:
                raise ConfigError(f"force_probes={force_probes} not in 1..{k - 1} (K-1 = exact)")
            if last_layer:
                raise ConfigError("force_probes sketches the exact spread; use force_spread='exact' with it")
        if graphs is None:
            graphs = lead.graphs(structures, names=names)  # built once, shared by every member
        elif len(graphs) != len(structures):
            raise DataError(f"got {len(graphs)} graphs for {len(structures)} structures")
        graphs = list(graphs)
        magnetic = fidelity in lead.magnetic_fidelities
        probes = self._probes(force_probes, seed) if self.shared_trunk else None
        energies: list[np.ndarray] = []  # per batch [K, b] eV/atom
        f_mean: list[np.ndarray] = []  # per structure [n_i, 3] eV/Å
        f_var: list[np.ndarray] = []  # per structure [n_i, 3] (eV/Å)^2
        magmoms: list[np.ndarray] = []  # per structure [K, n_i] μB
        modes = [m.training for m in self.members]
        for member in self.members:
            member.eval()
        try:
            for batch in atom_batches(graphs, batch_size, max_batch_atoms):
                if self.shared_trunk:
                    e, fm, fv, m = self._shared_batch(batch, fidelity, magnetic, probes, last_layer)
                else:
                    e, fm, fv, m = self._member_batch(batch, fidelity, magnetic)
                energies.append(e)
                f_mean.extend(fm)
                f_var.extend(fv)
                magmoms.extend(m)
        finally:
            for member, mode in zip(self.members, modes, strict=True):
                member.train(mode)
        e_all = np.concatenate(energies, axis=1) if energies else np.zeros((k, 0))  # [K, n]
        forces_std = [np.sqrt(v.sum(axis=-1)) for v in f_var]  # [n_i] eV/Å
        out: dict[str, np.ndarray | list] = {
            "energy": e_all.mean(axis=0),
            "energy_std": e_all.std(axis=0),
            "forces": f_mean,
            "forces_std": forces_std,
            "forces_std_xyz": [np.sqrt(v) for v in f_var],  # [n_i, 3] eV/Å
            "force_std_max": np.array([s.max() for s in forces_std]),
            "force_std_mean": np.array([s.mean() for s in forces_std]),
        }
        if magnetic:
            out["magmoms"] = [m.mean(axis=0) for m in magmoms]
            out["magmoms_std"] = [m.std(axis=0) for m in magmoms]
        return out

    def _probes(self, force_probes: int | None, seed: int) -> torch.Tensor:
        """Rows [1 + P, K]: the mean (1/K) then P orthonormal zero-sum contrasts scaled by sqrt((K-1)/P), so
        that the sum of squared probe gradients / K estimates the per-component force variance (exact if P=K-1)."""
        k = len(self.members)
        p = k - 1 if force_probes is None else force_probes
        # orthonormal basis of the zero-sum subspace: Helmert-like, via QR of centred random/identity columns
        gen = torch.Generator().manual_seed(seed)
        raw = (
            torch.randn(k, k - 1, generator=gen, dtype=torch.float64)
            if p < k - 1
            else torch.eye(k, k - 1, dtype=torch.float64)
        )
        raw = raw - raw.mean(dim=0, keepdim=True)
        basis, _ = torch.linalg.qr(raw)  # [K, K-1] orthonormal columns, each zero-sum
        contrasts = basis[:, :p].T * np.sqrt((k - 1) / p)  # [P, K]
        mean_row = torch.full((1, k), 1.0 / k, dtype=torch.float64)
        return torch.cat([mean_row, contrasts]).float()

    def _member_batch(self, graphs, fidelity: str, magnetic: bool):
        task = "efm" if magnetic else "ef"
        preds = [member.forward(graphs, fidelity, task=task) for member in self.members]
        e = np.stack([p["e"].cpu().numpy() for p in preds])  # [K, b]
        forces = [
            np.stack([p["f"][i].cpu().numpy() for p in preds]) for i in range(len(graphs))
        ]  # [K, n_i, 3]
        m = (
            [np.stack([p["m"][i].cpu().numpy() for p in preds]) for i in range(len(graphs))]
            if magnetic
            else []
        )
        return e, [f.mean(axis=0) for f in forces], [f.var(axis=0) for f in forces], m

    def _shared_batch(self, graphs, fidelity: str, magnetic: bool, probes: torch.Tensor, last_layer: bool = False):
        lead = self.members[0]
        n_members = len(self.members)
        fid_graph = lead.fidelity_tensor(fidelity, len(graphs))
        f_single = lead.fidelities.index(fidelity)
        device = lead.device
        graphs = [g if g.atomic_number.device == device else g.to(device) for g in graphs]
        with torch.enable_grad():
            trunk = run_trunk(
                lead, graphs, fid_graph, f_single, compute_stress=False, compute_magmom=magnetic
            )
            heads = torch.stack(
                [m._head_energy(trunk, fid_graph, f_single) for m in self.members]
            )  # [K, b] eV
            positions = list(trunk["bg"].atom_positions)
            rows = probes.to(device=device, dtype=heads.dtype)  # [1 + P, K]
            if last_layer:
                atom_in, bond_in = trunk["last_layer_inputs"]
                local = {**trunk, "atom_feas": trunk["last_layer"](atom_in.detach(), bond_in.detach())}
                heads_ll = torch.stack([m._head_energy(local, fid_graph, f_single) for m in self.members])
                contrasts = torch.autograd.grad(
                    heads_ll.sum(dim=1), positions, grad_outputs=rows[1:], is_grads_batched=True, retain_graph=True
                )  # per structure [P, n_i, 3], through the last AtomConv only
                mean_rows = torch.autograd.grad((heads.sum(dim=1) * rows[0]).sum(), positions)  # per structure [n_i, 3]
                grads = [torch.cat([m[None], c]) for m, c in zip(mean_rows, contrasts, strict=True)]
            else:
                grads = torch.autograd.grad(
                    heads.sum(dim=1),  # [K]
                    positions,
                    grad_outputs=rows,
                    is_grads_batched=True,
                )  # per structure [1 + P, n_i, 3]
        bg, apg = trunk["bg"], trunk["atoms_per_graph"]
        energy = heads.detach()
        if lead.is_intensive:
            energy = energy / apg
        energy = energy + torch.stack(
            [m._composition_energy(bg.atomic_numbers, trunk["owners"], apg, fid_graph) for m in self.members]
        )
        f_mean = [(-g[0]).detach().cpu().numpy() for g in grads]
        f_var = [(g[1:] ** 2).sum(dim=0).detach().cpu().numpy() / n_members for g in grads]
        m = (
            [np.repeat(t.detach().cpu().numpy()[None], n_members, axis=0) for t in trunk["m"]]
            if magnetic
            else []
        )
        return energy.cpu().numpy(), f_mean, f_var, m


def atom_batches(
    graphs: Sequence[CrystalGraph], batch_size: int, max_atoms: int | None
) -> list[list[CrystalGraph]]:
    """Consecutive batches of at most ``batch_size`` graphs and (unless None) ``max_atoms`` atoms; a graph
    larger than ``max_atoms`` forms its own batch. Order is kept."""
    batches: list[list[CrystalGraph]] = []
    batch: list[CrystalGraph] = []
    atoms = 0
    for g in graphs:
        n = int(g.atomic_number.shape[0])
        if batch and (len(batch) >= batch_size or (max_atoms is not None and atoms + n > max_atoms)):
            batches.append(batch)
            batch, atoms = [], 0
        batch.append(g)
        atoms += n
    if batch:
        batches.append(batch)
    return batches


def _same_trunk(members: Sequence[MFCHGNet]) -> bool:
    """True if all members have identical weights outside their heads (readouts, AtomRef)."""
    lead = members[0].state_dict()
    for member in members[1:]:
        state = member.state_dict()
        if state.keys() != lead.keys() or member.components != members[0].components:
            return False
        for key, value in lead.items():
            if not key.startswith(HEAD_PREFIXES) and not torch.equal(value, state[key]):
                return False
    return True


def _ref_pair(ref: Any, i: int) -> tuple[str | os.PathLike, str]:
    """(path, sha256) of checkpoint reference ``i``: a pair, a mapping with "path"/"sha256", or an object with
    ``.path`` (or ``.checkpoint``) and ``.sha256`` attributes."""
    if isinstance(ref, Mapping):
        path, sha = ref.get("path"), ref.get("sha256")
    elif isinstance(ref, tuple | list):
        if len(ref) != 2:
            raise ConfigError(f"checkpoint ref {i}: expected (path, sha256), got {len(ref)} items")
        path, sha = ref
    else:
        path = getattr(ref, "path", None)
        if path is None:
            path = getattr(ref, "checkpoint", None)
        sha = getattr(ref, "sha256", None)
    if callable(path):
        raise ConfigError(
            f"checkpoint ref {i}: .path is a method ({type(ref).__name__}); resolve it first, e.g. "
            "(ref.path(root), ref.sha256)"
        )
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise ConfigError(f"checkpoint ref {i}: expected a file path, got {path!r}")
    if not isinstance(sha, str) or len(sha) != 64:
        raise ConfigError(f"checkpoint ref {i} ({path}): expected a 64-hex sha256, got {sha!r}")
    return path, sha


def load_ensemble(refs: Sequence[Any], device: str = "cpu") -> MFEnsemble:
    """The one loader of a trained ensemble: members from checkpoint ``refs`` (each ``(path, sha256)``, a
    ``{"path", "sha256"}`` mapping, or an object with ``.path``/``.sha256``), every sha256 checked, loaded
    with ``torch.load(weights_only=True)`` onto ``device`` (auto|cpu|cuda[:N]).

    Raises ConfigError for an empty or malformed ref, DataError for a missing, altered or foreign checkpoint.
    """
    if isinstance(refs, str | os.PathLike):
        raise ConfigError(
            f"load_ensemble: refs={refs!r} must be a sequence of (path, sha256) refs, not a path"
        )
    if isinstance(refs, Mapping) or (isinstance(refs, tuple) and len(refs) == 2 and isinstance(refs[1], str)):
        refs = [refs]  # one ref given bare
    pairs = [_ref_pair(ref, i) for i, ref in enumerate(refs)]
    if not pairs:
        raise ConfigError("load_ensemble: no checkpoint refs given (an ensemble needs at least one member)")
    return MFEnsemble.from_checkpoints([p for p, _ in pairs], [s for _, s in pairs], device=device)


def readout_ensemble(base: MFCHGNet, k: int, *, seed: int = 0, noise: float = 0.0) -> MFEnsemble:
    """K copies of ``base`` sharing its trunk; each member's readout weights get Gaussian noise of relative size
    ``noise`` (std = noise × |w| elementwise, seeded) — members are then trained on their own (e.g. bootstrapped)
    data with the trunk frozen."""
    if k < 1:
        raise ConfigError(f"k={k} must be >= 1")
    if noise < 0:
        raise ConfigError(f"noise={noise} must be >= 0")
    gen = torch.Generator().manual_seed(seed)
    members = []
    for _ in range(k):
        member = copy.deepcopy(base)
        perturb_readout(member, noise, gen)
        members.append(member)
    ensemble = MFEnsemble(members)
    if k > 1 and not ensemble.shared_trunk:
        raise DataError("readout_ensemble members do not share a trunk (internal error)")
    return ensemble


def perturb_readout(model: MFCHGNet, noise: float, generator: torch.Generator | int) -> None:
    """In place: Gaussian noise of relative size ``noise`` (std = noise × |w| elementwise) on the readout
    weights (``readouts.*``, ``mlp.*``) of ``model``; ``generator`` a torch Generator or a seed."""
    if noise <= 0:
        return
    gen = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(int(generator))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(("readouts.", "mlp.")):
                eps = torch.randn(param.shape, generator=gen).to(param.device)
                param.add_(eps * noise * param.abs())


def head_state(model: MFCHGNet) -> dict[str, torch.Tensor]:
    """Copies of ``model``'s head tensors (:data:`HEAD_PREFIXES`: readouts, mlp, AtomRef)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIXES)}


def freeze_trunk(model: MFCHGNet, frozen: bool = True) -> None:
    """Set ``requires_grad`` of every parameter outside the heads to ``not frozen`` (heads stay trainable)."""
    for name, param in model.named_parameters():
        if not name.startswith(HEAD_PREFIXES):
            param.requires_grad_(not frozen)
