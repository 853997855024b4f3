"""Score candidate structures with an ensemble: the one scorer of the campaign and the benchmarks.

Graphs are built once and shared by every fidelity and every member. Results are JSON-able
:class:`FidelityScores` per fidelity (ensemble means and uncertainty scores).
Units: energy eV per cell, forces eV/Å, force std eV/Å, energy std eV/atom, magmoms and their std μB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mfal.errors import DataError
from mfal.fidelity import Fidelities, UnknownFidelityError
from mfal.uncertainty.scores import SCORE_NAMES, scores_from_prediction

if TYPE_CHECKING:
    from chgnet.graph import CrystalGraph
    from pymatgen.core import Structure

    from mfal.model import MFCHGNet, MFEnsemble


class FidelityScores(BaseModel):
    """Ensemble predictions and uncertainty scores of ``n`` structures at one fidelity (JSON-able lists)."""

    model_config = ConfigDict(extra="forbid")

    scores: dict[str, list[float]] = Field(
        description="per score name (force_std_max, force_std_mean eV/Å; energy_std eV/atom; magmom_std_max μB) "
        "one value per structure; in a campaign's scores.json these are calibrated (raw × the fidelity's scale) "
        "and the raw values are kept as <name>_raw (mfal.uncertainty.scores.calibrate_scores)"
    )
    energy: list[float] = Field(description="ensemble-mean total energy per structure, eV per cell")
    forces: list[list[list[float]]] = Field(
        description="ensemble-mean forces per structure, [n_atoms, 3] eV/Å"
    )
    magmoms: list[list[float]] | None = Field(
        None, description="ensemble-mean site moments per structure, [n_atoms] μB (magnetic fidelities only)"
    )
    forces_std_xyz: list[list[list[float]]] | None = Field(
        None,
        description="raw (uncalibrated) std over members of each force component per structure, [n_atoms, 3] "
        "eV/Å (its norm over x, y, z is the per-atom spread behind force_std_max); None in scores saved before "
        "it was kept",
    )

    @model_validator(mode="after")
    def _check_lengths(self) -> FidelityScores:
        n = len(self.energy)
        lengths = {name: len(v) for name, v in self.scores.items()}
        lengths["forces"] = len(self.forces)
        if self.magmoms is not None:
            lengths["magmoms"] = len(self.magmoms)
        if self.forces_std_xyz is not None:
            lengths["forces_std_xyz"] = len(self.forces_std_xyz)
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(f"FidelityScores: {n} energies but lengths {bad}")
        for i, f in enumerate(self.forces):
            if any(len(row) != 3 for row in f):
                raise ValueError(f"FidelityScores: forces[{i}] rows must have 3 components (x, y, z)")
            if self.magmoms is not None and len(self.magmoms[i]) != len(f):
                raise ValueError(
                    f"FidelityScores: magmoms[{i}] has {len(self.magmoms[i])} sites, forces {len(f)}"
                )
            if self.forces_std_xyz is not None and np.shape(self.forces_std_xyz[i]) != np.shape(f):
                raise ValueError(
                    f"FidelityScores: forces_std_xyz[{i}] has shape {np.shape(self.forces_std_xyz[i])}, "
                    f"forces {np.shape(f)}"
                )
        return self

    @property
    def n(self) -> int:
        """Number of structures."""
        return len(self.energy)

    def array(self, name: str) -> np.ndarray:
        """``[n]`` float array of score ``name`` (or ``"energy"``, eV per cell); unknown names raise KeyError
        listing the known ones."""
        if name == "energy":
            return np.asarray(self.energy, dtype=float)
        if name not in self.scores:
            raise KeyError(f"score {name!r} not in {sorted(self.scores)} (or 'energy')")
        return np.asarray(self.scores[name], dtype=float)

    def forces_of(self, i: int) -> np.ndarray:
        """``[n_atoms, 3]`` ensemble-mean forces of structure ``i`` (eV/Å)."""
        return np.asarray(self.forces[i], dtype=float).reshape(-1, 3)

    def forces_std_of(self, i: int) -> np.ndarray | None:
        """``[n_atoms, 3]`` raw per-component member std of structure ``i``'s forces (eV/Å); None when the
        scores do not carry it (scores saved before it was kept)."""
        if self.forces_std_xyz is None:
            return None
        return np.asarray(self.forces_std_xyz[i], dtype=float).reshape(-1, 3)


def _fidelity_names(fidelities: Fidelities | Sequence[str] | str, known: Sequence[str]) -> tuple[str, ...]:
    if isinstance(fidelities, Fidelities):
        names = fidelities.names
    elif isinstance(fidelities, str):
        names = (fidelities,)
    else:
        names = tuple(fidelities)
    for name in names:
        if name not in known:
            raise UnknownFidelityError(f"fidelity={name!r} not in the ensemble's fidelities {list(known)}")
    return names


def _name(structure: Structure, i: int) -> str:
    """A structure's name in error messages: its ``candidate_id`` property, else ``structure i``."""
    props = getattr(structure, "properties", None) or {}
    return str(props.get("candidate_id") or f"structure {i}")


def _as_ensemble(ensemble: MFEnsemble | Sequence[MFCHGNet]) -> MFEnsemble:
    if hasattr(ensemble, "predict_with_uncertainty"):
        return ensemble
    from mfal.model import MFEnsemble

    return MFEnsemble(list(ensemble))


def score_candidates(
    ensemble: MFEnsemble | Sequence[MFCHGNet],
    structures: Sequence[Structure],
    fidelities: Fidelities | Sequence[str],
    *,
    graphs: Sequence[CrystalGraph] | None = None,
    subset: Sequence[int] | None = None,
    progress: Callable[[int], Any] | None = None,
    batch_size: int = 16,
    force_probes: int | None = None,
    seed: int = 0,
    force_spread: str = "exact",
) -> dict[str, FidelityScores]:
    """Ensemble means and uncertainty scores of ``structures`` at each of ``fidelities``.

    Args:
        ensemble: an ``MFEnsemble`` (or a sequence of ``MFCHGNet`` members, wrapped into one).
        structures: the candidates (pymatgen Structures).
        fidelities: names (or a :class:`Fidelities`), each known to the ensemble.
        graphs: prebuilt crystal graphs of ``structures`` (same order and length, e.g. a dataset's cached graphs
            from ``members[0].graphs``); None = built here once for all fidelities and members (a structure that
            cannot be converted raises DataError naming its ``candidate_id`` property or position).
        subset: positions into ``structures`` (and ``graphs``) to score, in that order; None = all.
        progress: called with 1 after each fidelity.
        batch_size: graphs per forward pass.
        force_probes: shared-trunk ensembles only: sketch the force variance with this many random contrast
            probes (1 + P backward passes per fidelity instead of K; ``MFEnsemble.predict_with_uncertainty``);
            None = exact member forces.
        seed: seed of the probes.
        force_spread: shared-trunk ensembles only: "exact" (member contrasts through the whole trunk) or
            "last_layer" (through the last AtomConv only; ``MFEnsemble.predict_with_uncertainty``).

    Returns:
        ``{fidelity: FidelityScores}`` with ``scores`` (:data:`SCORE_NAMES`), ``energy`` (eV per cell),
        ``forces`` ([n_i, 3] eV/Å) and, for magnetic fidelities, ``magmoms`` ([n_i] μB) — all ensemble means —
        and ``forces_std_xyz`` ([n_i, 3] eV/Å, raw per-component member std; None if the ensemble does not give it).
    """
    ensemble = _as_ensemble(ensemble)
    names = _fidelity_names(fidelities, ensemble.fidelities)
    structures = list(structures)
    if graphs is not None:
        graphs = list(graphs)
        if len(graphs) != len(structures):
            raise DataError(f"score_candidates: got {len(graphs)} graphs for {len(structures)} structures")
    idx = list(range(len(structures)))
    if subset is not None:
        idx = [int(i) for i in subset]
        bad = [i for i in idx if not 0 <= i < len(structures)]
        if bad:
            raise DataError(f"score_candidates: subset positions {bad[:5]} outside 0..{len(structures) - 1}")
        structures = [structures[i] for i in idx]
        graphs = [graphs[i] for i in idx] if graphs is not None else None
    lead = ensemble.members[0]
    if graphs is None:
        graphs = lead.graphs(structures, names=[_name(s, i) for s, i in zip(structures, idx, strict=True)])
    nsites = np.asarray([len(s) for s in structures], dtype=float)
    out: dict[str, FidelityScores] = {}
    for fid in names:
        pred = ensemble.predict_with_uncertainty(
            structures, fid, graphs=graphs, batch_size=batch_size, force_probes=force_probes, seed=seed,
            force_spread=force_spread,
        )
        scores = scores_from_prediction(pred, nsites.astype(int).tolist(), energy_per_atom=lead.is_intensive)
        energy = np.asarray(pred["energy"], dtype=float)
        if lead.is_intensive:
            energy = energy * nsites  # eV/atom -> eV per cell
        magmoms = pred.get("magmoms")
        std_xyz = pred.get("forces_std_xyz")
        out[fid] = FidelityScores(
            scores={k: np.asarray(scores[k], dtype=float).tolist() for k in SCORE_NAMES},
            energy=energy.tolist(),
            forces=[np.asarray(f, dtype=float).tolist() for f in pred["forces"]],
            magmoms=[np.asarray(m, dtype=float).tolist() for m in magmoms] if magmoms is not None else None,
            forces_std_xyz=[np.asarray(v, dtype=float).tolist() for v in std_xyz] if std_xyz is not None else None,
        )
        if progress is not None:
            progress(1)
    return out
