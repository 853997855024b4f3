"""Structure-wise data splits — the one hashing core behind every split in mfal.

A structure's place depends only on ``hash(seed, structure key)``, never on which other structures are present,
so the campaign's train/validation split is stable across rounds (a structure never moves from validation to
training when new frames arrive) and the science benchmark's test set is fixed by its seed.

- :func:`split_frames`: train / validation frames (campaign, ``mfal train``): a structure is in validation iff
  its hash < ``val_fraction``; all fidelities of a structure stay together; with ≥ 2 target-fidelity
  structures at least one is in each set (the hash order decides which one moves).
- :func:`assign_splits`: test / val / pool per key (science benchmark): keys sorted by hash, the first
  ``n_test`` are test, the next ``n_val`` val.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mfal.errors import DataError
from mfal.store.docs import FrameDoc, structure_fingerprint

#: split names of :func:`assign_splits`
TEST, VAL, POOL = "test", "val", "pool"


def structure_key(frame: FrameDoc) -> str:
    """The structure id of a frame (``FrameDoc.structure_id``; computed for frames built without validation)."""
    return frame.structure_id or structure_fingerprint(frame.get_structure())


def unit_hash(seed: int, key: str) -> float:
    """Uniform number in [0, 1) fixed by ``seed`` and ``key`` (first 48 bits of sha256("seed:key"))."""
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12


def group_by_structure(frames: Sequence[FrameDoc]) -> dict[str, list[FrameDoc]]:
    """Frames grouped by :func:`structure_key`, in input order within a group."""
    groups: dict[str, list[FrameDoc]] = {}
    for f in frames:
        groups.setdefault(structure_key(f), []).append(f)
    return groups


def split_frames(
    frames: Sequence[FrameDoc], val_fraction: float, *, seed: int, target_fidelity: str
) -> tuple[list[FrameDoc], list[FrameDoc]]:
    """(train, validation) frames, structure-wise and stable across rounds.

    A structure is in validation iff ``unit_hash(seed, key) < val_fraction``. When ≥ 2 structures have a
    ``target_fidelity`` frame and ``val_fraction`` > 0, at least one of them is in validation (the one with the
    smallest hash) and at least one in training (the largest hash leaves validation). ``val_fraction`` = 0 gives
    an empty validation set. Frames keep the input order within a structure; structures come sorted by key.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction}: expected 0 <= val_fraction < 1")
    groups = group_by_structure(frames)

    def h(key: str) -> float:
        return unit_hash(seed, key)

    val_keys = {k for k in groups if h(k) < val_fraction}
    target = sorted((k for k, fs in groups.items() if any(f.fidelity == target_fidelity for f in fs)), key=h)
    if val_fraction > 0 and len(target) >= 2:
        if not val_keys & set(target):
            val_keys.add(target[0])
        if set(target) <= val_keys:
            val_keys.discard(target[-1])
    keys = sorted(groups)
    train = [f for k in keys if k not in val_keys for f in groups[k]]
    val = [f for k in keys if k in val_keys for f in groups[k]]
    return train, val


def assign_splits(keys: Sequence[str], *, n_test: int, n_val: int, seed: int) -> list[str]:
    """Split name ("test", "val" or "pool") per key: sorted by ``unit_hash(seed, key)``, the first ``n_test``
    are test, the next ``n_val`` val, the rest pool. A key's split does not depend on the order of ``keys``."""
    if n_test < 0 or n_val < 0:
        raise DataError(f"n_test={n_test}, n_val={n_val}: expected non-negative counts")
    if len(set(keys)) != len(keys):
        raise DataError(
            f"assign_splits: {len(keys) - len(set(keys))} repeated keys; expected one per structure"
        )
    if n_test + n_val >= len(keys):
        raise DataError(f"n_test={n_test} + n_val={n_val} leaves no pool structures out of {len(keys)}")
    order = sorted(range(len(keys)), key=lambda i: (unit_hash(seed, keys[i]), keys[i]))
    splits = [POOL] * len(keys)
    for rank, i in enumerate(order):
        if rank < n_test:
            splits[i] = TEST
        elif rank < n_test + n_val:
            splits[i] = VAL
    return splits
