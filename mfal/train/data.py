"""Training data: ok :class:`~mfal.store.docs.FrameDoc` frames -> cached crystal graphs + masked label tensors.

A :class:`FrameDataset` converts its frames to graphs once (through ``model.graphs``) and is shared by every
epoch and every ensemble member; :meth:`FrameDataset.subset` makes views that reuse the same graphs.
Labels: energy per atom (eV/atom, NaN where missing), forces [n_i, 3] (eV/Å), stress [3, 3] (GPa, CHGNet sign),
magnetic moment magnitudes |m| [n_i] (μB, only on magnetic fidelities); missing labels are ``None`` and masked in the loss.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mfal.errors import DataError
from mfal.fidelity import MAGNETIC_FIDELITIES
from mfal.store.docs import FrameDoc

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def check_frames(
    frames: Iterable[Any],
    *,
    fidelities: Sequence[str] | None = None,
) -> list[FrameDoc]:
    """Return ``frames`` as a list after checking each is a usable training frame.

    Raises :class:`DataError` naming the frame for: an object that is not a FrameDoc, status other than "ok",
    a fidelity outside ``fidelities``, non-finite or wrongly shaped energy/forces/stress/magmoms (frames built
    with ``model_construct`` skip FrameDoc's own validation, so everything is checked again here).
    """
    out: list[FrameDoc] = []
    for pos, frame in enumerate(frames):
        if not isinstance(frame, FrameDoc):
            raise DataError(f"training frame #{pos}: expected a FrameDoc, got {type(frame).__name__}")
        fid = frame.frame_id
        if frame.status != "ok":
            raise DataError(
                f"frame {fid}: status={frame.status!r} ({frame.status_reason}); only status 'ok' frames can be "
                "used for training"
            )
        if fidelities is not None and frame.fidelity not in fidelities:
            raise DataError(
                f"frame {fid}: fidelity={frame.fidelity!r} not in model fidelities {list(fidelities)}"
            )
        try:
            n = len(frame.get_structure())
        except Exception as err:  # a broken structure dict
            raise DataError(f"frame {fid}: structure cannot be read ({err})") from err
        if n == 0:
            raise DataError(f"frame {fid}: structure has no sites")
        if frame.energy is not None:
            try:
                energy = float(frame.energy)
            except (TypeError, ValueError) as err:
                raise DataError(f"frame {fid}: energy={frame.energy!r} is not a number") from err
            if not np.isfinite(energy):
                raise DataError(f"frame {fid}: energy is not finite ({frame.energy})")
        for name, value, shape in (
            ("forces", frame.forces, (n, 3)),
            ("stress", frame.stress, (3, 3)),
            ("magmoms", frame.magmoms, (n,)),
        ):
            if value is None:
                continue
            try:
                arr = np.asarray(value, dtype=float)
            except (TypeError, ValueError) as err:
                raise DataError(f"frame {fid}: {name} is not a numeric array ({err})") from err
            if arr.shape != shape:
                raise DataError(f"frame {fid}: {name} has shape {arr.shape}, expected {shape}")
            if not np.all(np.isfinite(arr)):
                raise DataError(f"frame {fid}: {name} contains NaN or inf")
        if frame.energy is None and frame.forces is None and frame.stress is None and frame.magmoms is None:
            raise DataError(
                f"frame {fid}: has no labels (energy, forces, stress and magmoms are all missing)"
            )
        out.append(frame)
    return out


@dataclass
class FrameDataset:
    """Graphs and label tensors of checked frames; ``graphs`` are built once and shared by subsets.

    Attributes (one entry per frame): ``frame_ids``, ``fidelities`` (names), ``fidelity_idx`` (1-based index
    in ``model_fidelities``), ``n_atoms``, ``graphs`` (CrystalGraph), ``energy`` (eV/atom or NaN),
    ``forces`` ([n_i, 3] eV/Å or None), ``stress`` ([3, 3] GPa or None), ``magmoms`` ([n_i] μB or None).
    """

    frame_ids: list[str]
    fidelities: list[str]
    fidelity_idx: list[int]
    n_atoms: list[int]
    graphs: list[Any]
    energy: list[float]
    forces: list[torch.Tensor | None]
    stress: list[torch.Tensor | None]
    magmoms: list[torch.Tensor | None]
    model_fidelities: tuple[str, ...]
    structures: list[Any] = field(default_factory=list, repr=False)

    @classmethod
    def build(
        cls,
        frames: Iterable[FrameDoc],
        model: Any,
        *,
        magnetic_fidelities: Sequence[str] | None = None,
    ) -> FrameDataset:
        """Check ``frames`` and convert them to graphs with ``model.graphs`` (raises DataError naming bad frames).

        Moments on a fidelity outside ``magnetic_fidelities`` (default: the model's, else ``mfal.fidelity.MAGNETIC_FIDELITIES``) are ignored.
        """
        import torch

        fids = tuple(model.fidelities)
        magnetic = tuple(
            magnetic_fidelities
            if magnetic_fidelities is not None
            else getattr(model, "magnetic_fidelities", MAGNETIC_FIDELITIES)
        )
        docs = check_frames(frames, fidelities=fids)
        structures = [d.get_structure() for d in docs]
        graphs = model.graphs(structures, names=[d.frame_id for d in docs]) if docs else []
        dropped = 0
        ds = cls(
            frame_ids=[],
            fidelities=[],
            fidelity_idx=[],
            n_atoms=[],
            graphs=list(graphs),
            energy=[],
            forces=[],
            stress=[],
            magmoms=[],
            model_fidelities=fids,
            structures=structures,
        )
        for doc, structure in zip(docs, structures, strict=True):
            n = len(structure)
            ds.frame_ids.append(doc.frame_id)
            ds.fidelities.append(doc.fidelity)
            ds.fidelity_idx.append(fids.index(doc.fidelity) + 1)
            ds.n_atoms.append(n)
            ds.energy.append(float("nan") if doc.energy is None else float(doc.energy) / n)
            ds.forces.append(None if doc.forces is None else torch.tensor(doc.forces, dtype=torch.float32))
            ds.stress.append(None if doc.stress is None else torch.tensor(doc.stress, dtype=torch.float32))
            if doc.magmoms is not None and doc.fidelity not in magnetic:
                dropped += 1
                ds.magmoms.append(None)
            else:
                # CHGNet predicts magnitudes: train on |m| (signed DFT moments of AFM orderings)
                ds.magmoms.append(
                    None if doc.magmoms is None else torch.tensor(doc.magmoms, dtype=torch.float32).abs()
                )
        if dropped:
            log.info("ignored magnetic moments of %d frames on non-magnetic fidelities", dropped)
        return ds

    def __len__(self) -> int:
        return len(self.frame_ids)

    def subset(self, indices: Sequence[int]) -> FrameDataset:
        """A view on ``indices`` (repeats allowed, e.g. bootstrap) sharing this dataset's graphs."""
        idx = [int(i) for i in indices]
        return FrameDataset(
            frame_ids=[self.frame_ids[i] for i in idx],
            fidelities=[self.fidelities[i] for i in idx],
            fidelity_idx=[self.fidelity_idx[i] for i in idx],
            n_atoms=[self.n_atoms[i] for i in idx],
            graphs=[self.graphs[i] for i in idx],
            energy=[self.energy[i] for i in idx],
            forces=[self.forces[i] for i in idx],
            stress=[self.stress[i] for i in idx],
            magmoms=[self.magmoms[i] for i in idx],
            model_fidelities=self.model_fidelities,
            structures=[self.structures[i] for i in idx] if self.structures else [],
        )

    def indices_of(self, fidelity: str) -> list[int]:
        """Positions of the frames of ``fidelity``."""
        return [i for i, f in enumerate(self.fidelities) if f == fidelity]

    def select_fidelity(self, fidelity: str) -> FrameDataset:
        """Subset with only the frames of ``fidelity``."""
        return self.subset(self.indices_of(fidelity))

    def has_labels(self, key: str) -> bool:
        """Whether any frame has label ``key`` in "efsm"."""
        if key == "e":
            return any(np.isfinite(e) for e in self.energy)
        values = {"f": self.forces, "s": self.stress, "m": self.magmoms}[key]
        return any(v is not None for v in values)

    def batch(self, indices: Sequence[int]) -> Batch:
        """Graphs, fidelity tensor and targets of the frames at ``indices``."""
        import torch

        idx = [int(i) for i in indices]
        return Batch(
            graphs=[self.graphs[i] for i in idx],
            fidelity=torch.tensor([self.fidelity_idx[i] for i in idx], dtype=torch.long),
            fidelities=[self.fidelities[i] for i in idx],
            energy=torch.tensor([self.energy[i] for i in idx], dtype=torch.float32),
            forces=[self.forces[i] for i in idx],
            stress=[self.stress[i] for i in idx],
            magmoms=[self.magmoms[i] for i in idx],
            frame_ids=[self.frame_ids[i] for i in idx],
        )


@dataclass
class Batch:
    """One mini-batch: ``fidelity`` is a LongTensor[n_graphs] of 1-based fidelity indices."""

    graphs: list[Any]
    fidelity: torch.Tensor
    fidelities: list[str]
    energy: torch.Tensor  # [n_graphs] eV/atom, NaN where missing
    forces: list[torch.Tensor | None]  # [n_i, 3] eV/Å
    stress: list[torch.Tensor | None]  # [3, 3] GPa
    magmoms: list[torch.Tensor | None]  # [n_i] μB
    frame_ids: list[str]

    def __len__(self) -> int:
        return len(self.graphs)

    def to(self, device: str) -> Batch:
        """Copy of the batch with tensors on ``device`` (graphs through CrystalGraph.to)."""
        if device == "cpu":
            return self

        def _mv(values: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
            return [None if v is None else v.to(device) for v in values]

        return Batch(
            graphs=[g.to(device) for g in self.graphs],
            fidelity=self.fidelity.to(device),
            fidelities=self.fidelities,
            energy=self.energy.to(device),
            forces=_mv(self.forces),
            stress=_mv(self.stress),
            magmoms=_mv(self.magmoms),
            frame_ids=self.frame_ids,
        )
