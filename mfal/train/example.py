"""Built-in example data set ``lifepo4_teacher``: rattled and strained 28-atom LiFePO4 cells with SURROGATE labels.

LF labels come from pretrained CHGNet 0.2.0 with the moments dropped, HF labels from pretrained CHGNet 0.3.0 with
moments (the ``teacher`` labeler, ``source="teacher"``, ``calc["surrogate"] = True``). They are two different but
related potential-energy surfaces for demos and tests, not DFT. The shipped file ``mfal/data/lifepo4_teacher.extxyz``
was made by :func:`make_lifepo4_teacher_frames` (defaults) and :func:`mfal.store.extxyz.write_extxyz`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from mfal.errors import ConfigError
from mfal.fidelity import DEFAULT
from mfal.store.docs import FrameDoc

BUILTIN = {"lifepo4_teacher": "lifepo4_teacher.extxyz"}


def perturbed_lifepo4(
    n: int, *, seed: int = 0, rattle: float = 0.06, strain: float = 0.02
) -> list[Structure]:
    """``n`` LiFePO4 cells with random normal strain (±``strain``) and Gaussian rattle (σ = ``rattle`` Å)."""
    from mfal.explore.structures import lifepo4_structure

    rng = np.random.default_rng(seed)
    base = lifepo4_structure()
    out = []
    for _ in range(n):
        s = base.copy()
        s.apply_strain(rng.uniform(-strain, strain, 3).tolist())
        cart = s.cart_coords + rng.normal(0.0, rattle * rng.uniform(0.5, 1.5), (len(s), 3))
        out.append(Structure(s.lattice, s.species, cart, coords_are_cartesian=True, to_unit_cell=True))
    return out


def make_lifepo4_teacher_frames(n_lf: int = 48, n_hf: int = 24, *, seed: int = 0) -> list[FrameDoc]:
    """LF surrogate labels on ``n_lf`` perturbed cells and HF surrogate labels on the first ``n_hf`` of them."""
    from mfal.label.teacher import TeacherLabeler

    if not 0 <= n_hf <= n_lf:
        raise ConfigError(f"n_hf={n_hf} must be between 0 and n_lf={n_lf}")
    structures = perturbed_lifepo4(n_lf, seed=seed)
    labeler = TeacherLabeler()
    fids = DEFAULT  # the built-in set is labeled at the default names (LF index 1, HF index 2)
    frames = labeler.label(structures, fids.low) + labeler.label(structures[:n_hf], fids.high)
    return [f for f in frames if f.status == "ok"]


def builtin_path(name: str) -> Path:
    """Path of a built-in data set file (``name`` in :data:`BUILTIN`)."""
    if name not in BUILTIN:
        raise ConfigError(f"data.builtin={name!r} not in built-in data sets {sorted(BUILTIN)}")
    return Path(str(resources.files("mfal.data").joinpath(BUILTIN[name])))


def load_builtin(name: str = "lifepo4_teacher") -> list[FrameDoc]:
    """Frames of a built-in data set (SURROGATE teacher labels, see the module docstring)."""
    from mfal.store.extxyz import read_extxyz

    return read_extxyz(builtin_path(name))
