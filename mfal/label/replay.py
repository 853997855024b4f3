"""Replay labeler: labels looked up in an existing dataset (pool-based benchmarking, no new calculations).

The dataset is an extxyz file (:func:`mfal.store.extxyz.read_extxyz`), a store (:func:`mfal.store.open_store`)
or a list of FrameDocs. A structure is found by its fingerprint (:func:`mfal.store.docs.structure_fingerprint`)
and fidelity; if the rounding of the fingerprint differs (e.g. after an extxyz round trip) a tolerant match on
the same species order, lattice and fractional coordinates (``tol`` Å / fractional) is tried. Missing →
``status="failed"`` with "not in replay dataset". Replayed frames keep the dataset's ``frame_id``, labels, status
and cost (core-seconds of the original calculation), with ``source="replay"``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymatgen.core import Structure

from mfal.errors import ConfigError, DataError
from mfal.fidelity import DEFAULT, Fidelities
from mfal.label.base import validate_structures
from mfal.store.docs import FrameDoc, structure_fingerprint

log = logging.getLogger(__name__)


class ReplayOptions(BaseModel):
    """Options of a ``kind: replay`` labeler: where the labels are looked up."""

    model_config = ConfigDict(extra="forbid")

    dataset: Path | None = Field(None, description="extxyz/.xyz or .json file of labeled frames")
    store: Path | None = Field(None, description="store directory (or store YAML) holding labeled frames")
    tol: float = Field(
        1e-3, gt=0, description="tolerance of the fallback match (Å for the lattice, fractional)"
    )
    only_ok: bool = Field(False, description="replay only frames with status ok")

    @model_validator(mode="after")
    def _one_source(self) -> ReplayOptions:
        if self.dataset is None and self.store is None:
            raise ValueError("replay labeler needs dataset=FILE (extxyz/json) or store=DIR")
        return self

    def labeler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`ReplayLabeler`."""
        return self.model_dump()


def _load(dataset: str | Path | Iterable[FrameDoc] | None, store: Any) -> list[FrameDoc]:
    frames: list[FrameDoc] = []
    if dataset is not None:
        if isinstance(dataset, str | Path):
            path = Path(dataset)
            if path.suffix in (".xyz", ".extxyz"):
                from mfal.store.extxyz import read_extxyz

                frames += read_extxyz(path)
            elif path.suffix == ".json":
                from mfal.store.jsonio import read_json

                frames += read_json(path)
            else:
                raise DataError(f"replay dataset {path}: expected an .extxyz/.xyz or .json file")
        else:
            frames += list(dataset)
    if store is not None:
        from mfal.store import open_store

        if isinstance(store, str | Path):
            with open_store(store, create=False) as opened:
                frames += opened.query_frames()
        else:
            frames += store.query_frames()
    if dataset is None and store is None:
        raise ConfigError("replay labeler needs dataset=FILE (extxyz/json) or store=DIR")
    return frames


class ReplayLabeler:
    """Looks labels up by structure and fidelity in an existing dataset."""

    name = "replay"

    def __init__(
        self,
        dataset: str | Path | Iterable[FrameDoc] | None = None,
        *,
        store: Any = None,
        tol: float = 1e-3,
        only_ok: bool = False,
        fidelities: Fidelities = DEFAULT,
    ) -> None:
        self.tol = tol
        self.fidelities = fidelities
        self._by_fp: dict[tuple[str, str], FrameDoc] = {}
        self._by_shape: dict[tuple[str, int, str], list[FrameDoc]] = defaultdict(list)
        frames = _load(dataset, store)
        for f in frames:
            if only_ok and f.status != "ok":
                continue
            key = (structure_fingerprint(f.get_structure()), f.fidelity)
            old = self._by_fp.get(key)
            if old is None or (old.status != "ok" and f.status == "ok"):  # prefer an ok label
                self._by_fp[key] = f
            self._by_shape[(f.formula, f.nsites, f.fidelity)].append(f)
        log.info(
            "replay dataset: %d frames, %d distinct (structure, fidelity)", len(frames), len(self._by_fp)
        )

    def __len__(self) -> int:
        return len(self._by_fp)

    def lookup(self, structure: Structure, fidelity: str) -> FrameDoc | None:
        """The dataset frame of ``structure`` at ``fidelity`` (None if absent)."""
        hit = self._by_fp.get((structure_fingerprint(structure), fidelity))
        if hit is not None:
            return hit
        species = [site.species_string for site in structure]
        key = (structure.composition.reduced_formula, len(structure), fidelity)
        for cand in self._by_shape.get(key, []):
            s = cand.get_structure()
            if [site.species_string for site in s] != species:
                continue
            if not np.allclose(s.lattice.matrix, structure.lattice.matrix, atol=self.tol):
                continue
            d = s.frac_coords - structure.frac_coords
            if np.abs(d - np.round(d)).max() < self.tol:
                return cand
        return None

    def label(
        self,
        structures: Sequence[Structure],
        fidelity: str,
        *,
        workdir: Path | None = None,
        campaign: str | None = None,
        round: int | None = None,
    ) -> list[FrameDoc]:
        """One FrameDoc per structure: the dataset's label (source "replay"), or failed if it is not there."""
        validate_structures(structures, "replay")
        self.fidelities.check(fidelity)
        out = []
        for structure in structures:
            hit = self.lookup(structure, fidelity)
            if hit is None:
                out.append(
                    FrameDoc.from_structure(
                        structure,
                        fidelity=fidelity,
                        source="replay",
                        calc={"code": "replay"},
                        status="failed",
                        status_reason="not in replay dataset",
                        campaign=campaign,
                        round=round,
                    )
                )
                continue
            out.append(hit.model_copy(update={"source": "replay", "campaign": campaign, "round": round}))
        return out
