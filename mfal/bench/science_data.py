"""Data of the science benchmark: an LMFP-like pool labeled at LF and HF, split by structure.

Structures are olivine LiMn_xFe_{1-x}PO4 cells (28-atom pymatgen LiFePO4 with x ∈ {0, ¼, ½, ¾, 1} Mn on Fe
sites and Li_y, y ∈ {1, ¾, ½}) under random symmetric strain and Gaussian rattle. Each structure is labeled at
both fidelities (teacher surrogates by default; or frames replayed from a real paired extxyz file) and put into
exactly one split: ``test`` (HF test set, never trained on at any fidelity), ``val`` (early stopping) or
``pool`` (training candidates). Units: energy eV, forces eV/Å, stress GPa, moments μB, cost core-seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from mfal.errors import DataError
from mfal.fidelity import DEFAULT, Fidelities
from mfal.fileio import atomic_write_json, read_json
from mfal.label.teacher_pairs import DEFAULT_PAIR
from mfal.store.docs import FrameDoc, structure_fingerprint
from mfal.train.split import assign_splits, structure_key

log = logging.getLogger(__name__)

MN_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
LI_FRACTIONS = (1.0, 0.75, 0.5)
SPLITS = ("pool", "val", "test")
LABEL_CHUNK = 8  # structures per teacher call


@dataclass
class PairedItem:
    """One structure with its labels per fidelity and its split."""

    sid: str  # structure fingerprint (sha256 of the rounded structure)
    split: str  # pool | val | test
    frames: dict[str, FrameDoc] = field(default_factory=dict)  # fidelity -> ok frame

    @property
    def nsites(self) -> int:
        return next(iter(self.frames.values())).nsites


@dataclass
class SciencePool:
    """Labeled structures split into pool / val / test; ``source`` says whether labels are surrogate."""

    items: list[PairedItem]
    source: str  # "teacher (SURROGATE: LF = CHGNet 0.2.0, HF = CHGNet 0.3.0)" or "replay FILE"
    surrogate: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[PairedItem]:
        """Items of split ``name`` (pool, val or test) in a fixed order."""
        return [it for it in self.items if it.split == name]

    def frames(self, split: str, fidelity: str) -> list[FrameDoc]:
        """Frames of ``fidelity`` of the items in ``split``."""
        return [it.frames[fidelity] for it in self.split(split) if fidelity in it.frames]

    def pairs(
        self, split: str | None = None, fidelities: Fidelities = DEFAULT
    ) -> list[tuple[FrameDoc, FrameDoc]]:
        """(LF, HF) frame pairs of the structures (of ``split``, default all) labeled at both fidelities."""
        items = self.items if split is None else self.split(split)
        return [
            (it.frames[fidelities.low], it.frames[fidelities.high])
            for it in items
            if fidelities.low in it.frames and fidelities.high in it.frames
        ]

    def check_no_leak(self) -> None:
        """Raise DataError if a test structure also appears in pool/val (by fingerprint or frame id)."""
        test_sids = {it.sid for it in self.split("test")}
        test_ids = {f.frame_id for it in self.split("test") for f in it.frames.values()}
        for it in self.items:
            if it.split == "test":
                continue
            if it.sid in test_sids or {f.frame_id for f in it.frames.values()} & test_ids:
                raise DataError(f"structure {it.sid[:12]} is in split {it.split!r} and in the test set")


def make_structures(
    n: int, seed: int, *, max_strain: float = 0.03, rattle: tuple[float, float] = (0.02, 0.1)
) -> list[Structure]:
    """``n`` seeded LMFP-like cells: Mn substitution, delithiation, strain (±max_strain), rattle (Å std)."""
    from mfal.explore.generators import delithiate, strain, substitute, tag
    from mfal.explore.generators import rattle as rattle_gen
    from mfal.explore.structures import lifepo4_structure

    rng = np.random.default_rng([seed, 20261125])
    base = lifepo4_structure()
    out: list[Structure] = []
    for i in range(n):
        x_mn = MN_FRACTIONS[i % len(MN_FRACTIONS)]
        y_li = LI_FRACTIONS[(i // len(MN_FRACTIONS)) % len(LI_FRACTIONS)]
        s = substitute(base, x_mn, rng) if x_mn else base.copy()
        s = delithiate(s, y_li, rng) if y_li < 1.0 else s
        s = strain(s, 1, max_strain, rng)[0]
        s = rattle_gen(s, 1, float(rng.uniform(*rattle)), rng)[0]
        out.append(tag(s, f"science x_Mn={x_mn} Li={y_li}"))
    return out


def _cache_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _save(pool: SciencePool, path: Path, key: str) -> None:
    data = {
        "key": key,
        "source": pool.source,
        "surrogate": pool.surrogate,
        "meta": pool.meta,
        "items": [
            {
                "sid": it.sid,
                "split": it.split,
                "frames": {k: f.model_dump(mode="json") for k, f in it.frames.items()},
            }
            for it in pool.items
        ],
    }
    atomic_write_json(path, data)  # nothing half-written


def _load(path: Path, key: str) -> SciencePool | None:
    try:
        data = read_json(path)
    except DataError as err:  # a damaged cache is relabeled, not trusted
        log.warning("science pool cache unreadable, relabeling: %s", err)
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    items = [
        PairedItem(sid=d["sid"], split=d["split"], frames={k: FrameDoc(**f) for k, f in d["frames"].items()})
        for d in data["items"]
    ]
    return SciencePool(
        items=items, source=data["source"], surrogate=data["surrogate"], meta=data.get("meta", {})
    )


def teacher_pool(
    n_structures: int,
    n_test: int,
    n_val: int,
    seed: int,
    *,
    cache_dir: Path | None = None,
    progress: bool = False,
    fidelities: Fidelities = DEFAULT,
    pair: str = DEFAULT_PAIR,
) -> SciencePool:
    """Generate and label (teacher surrogates, LF and HF) ``n_structures`` cells, split them; cached in
    ``cache_dir/pool_<key>.json`` (the key hashes every setting, so a changed setting relabels)."""

    from mfal.label.teacher import TeacherConfig, TeacherLabeler, pair_fidelities

    labeler = TeacherLabeler(
        TeacherConfig(pair=pair, fidelities=pair_fidelities(pair, fidelities)), fidelities=fidelities
    )
    names = fidelities.names
    models = {f: labeler.config.fidelities[f].model for f in names}
    # v3: splits by mfal.train.split.assign_splits (hash order; v2 used a seeded permutation)
    payload = {"n": n_structures, "test": n_test, "val": n_val, "seed": seed, "models": models, "v": 3}
    if pair != DEFAULT_PAIR:  # the default pair keeps its cache key
        payload["pair"] = {f: labeler.config.fidelities[f].model_dump(mode="json") for f in names}
    key = _cache_key(payload)
    path = Path(cache_dir) / f"pool_{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        cached = _load(path, key)
        if cached is not None:
            log.info("science pool: reusing %s", path)
            return cached
    structures = make_structures(n_structures, seed)
    labels: dict[str, list[FrameDoc]] = {}
    for fid in names:
        docs: list[FrameDoc] = []
        # chunks for the progress bar; the teacher bounds its own memory by its batch_size
        chunks = range(0, len(structures), LABEL_CHUNK)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"label {fid} (teacher, surrogate)", unit=f"x{LABEL_CHUNK}")
        for start in chunks:
            docs += labeler.label(structures[start : start + LABEL_CHUNK], fid, campaign="bench-science")
        labels[fid] = docs
    sids = [structure_fingerprint(s) for s in structures]
    ok = [i for i in range(len(sids)) if all(labels[fid][i].status == "ok" for fid in names)]
    reasons = sorted(
        {str(labels[fid][i].status_reason) for i in range(len(sids)) if i not in ok for fid in names}
        - {"None"}
    )
    n_failed = len(sids) - len(ok)
    # splits over the structures with both labels ok, so the test/val sizes are exactly as asked
    splits = assign_splits([sids[i] for i in ok], n_test=n_test, n_val=n_val, seed=seed)
    items = [
        PairedItem(sid=sids[i], split=split, frames={fid: labels[fid][i] for fid in names})
        for i, split in zip(ok, splits, strict=True)
    ]
    pool = SciencePool(
        items=items,
        source=f"teacher pair {pair} (SURROGATE labels: LF = CHGNet {models[fidelities.low]} without moments"
        f"{' + transforms' if pair != DEFAULT_PAIR else ''}, HF = CHGNet {models[fidelities.high]} with moments)",
        surrogate=True,
        meta={
            "n_structures": n_structures,
            "n_failed_labels": n_failed,
            "failed_reasons": reasons,
            "seed": seed,
            "teacher_models": models,
            "pair": pair,
        },
    )
    pool.check_no_leak()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(pool, path, key)
    return pool


def replay_pool(
    data: Path, n_test: int, n_val: int, seed: int, *, fidelities: Fidelities = DEFAULT
) -> SciencePool:
    """Pool from a real paired extxyz file (LF and HF frames of the same structures, mfal's extxyz layout).

    Frames are paired by structure fingerprint; structures without an HF frame can only be LF pool frames.
    """
    from mfal.store.extxyz import read_extxyz

    frames = [f for f in read_extxyz(data) if f.status == "ok"]
    by_sid: dict[str, dict[str, FrameDoc]] = {}
    for f in frames:
        by_sid.setdefault(structure_key(f), {})[f.fidelity] = f
    sids = sorted(by_sid)
    paired = [s for s in sids if set(fidelities.names) <= set(by_sid[s])]
    if len(paired) < n_test + n_val + 1:
        raise DataError(
            f"{data}: {len(paired)} structures have both LF and HF frames; need at least n_test={n_test} + "
            f"n_val={n_val} + 1"
        )
    splits = dict(zip(paired, assign_splits(paired, n_test=n_test, n_val=n_val, seed=seed), strict=True))
    items = [PairedItem(sid=s, split=splits.get(s, "pool"), frames=by_sid[s]) for s in sids]
    codes = sorted({str(f.calc.get("code", f.source)) for f in frames})
    pool = SciencePool(
        items=items,
        source=f"replay {data} ({', '.join(codes)})",
        surrogate=any(f.source == "teacher" or f.calc.get("surrogate") for f in frames),
        meta={"data": str(data), "n_frames": len(frames), "n_paired": len(paired), "seed": seed},
    )
    pool.check_no_leak()
    return pool
