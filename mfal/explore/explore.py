"""One round of exploration: base structures -> tagged, de-duplicated candidates."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from mfal.errors import ConfigError
from mfal.explore import generators as g
from mfal.explore.config import ExploreConfig, StartStructure
from mfal.explore.structures import lifepo4_structure

log = logging.getLogger(__name__)


def load_start_structures(specs: Sequence[StartStructure], base_dir: Path, seed: int = 0) -> list[Structure]:
    """Build the start structures; a missing/unreadable file -> ConfigError naming ``start_structures[i]``."""
    rng = np.random.default_rng(seed)
    out = []
    for i, spec in enumerate(specs):
        where = f"start_structures[{i}]"
        if spec.builtin == "lifepo4":
            s = lifepo4_structure()
            base = "LiFePO4"
        else:
            path = spec.resolved_path(base_dir)
            if path is None or not path.is_file():
                raise ConfigError(f"{where}.path: file {str(path)!r} not found")
            try:
                s = Structure.from_file(path)
            except Exception as err:
                raise ConfigError(f"{where}.path: cannot read a structure from {str(path)!r}: {err}") from err
            s.remove_oxidation_states()
            base = path.stem
        if spec.supercell:
            s = g.supercell(s, spec.supercell)
        if spec.mn_fraction:
            s = g.substitute(s, spec.mn_fraction, rng)
        if spec.li_fraction < 1:
            s = g.delithiate(s, spec.li_fraction, rng)
        out.append(
            g.tag(s.get_sorted_structure(), f"start:{spec.name or base}:{s.composition.reduced_formula}")
        )
    return out


def explore(
    bases: Sequence[Structure],
    config: ExploreConfig,
    *,
    seed: int,
    calculator: Any | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Structure]:
    """Candidates from every base structure (seeded by ``seed``), tagged and de-duplicated.

    MD runs only when ``config.md.temperatures`` is set and a ``calculator`` (the current model's HF head) is given.
    ``progress(k)`` is called after each base structure.
    """
    rng = np.random.default_rng(seed)
    cands: list[Structure] = []
    for b, base in enumerate(bases):
        src = (base.properties or {}).get("origin", f"base{b}")
        for s in g.rattle(base, config.rattle.n, config.rattle.stdev, rng):
            cands.append(g.tag(s, f"rattle<{src}"))
        for s in g.strain(base, config.strain.n, config.strain.max_strain, rng):
            s = g.rattle(s, 1, config.strain.stdev, rng)[0]
            cands.append(g.tag(s, f"strain<{src}"))
        if any(site.species_string == "Fe" for site in base):
            for x in config.substitution.fractions:
                for _ in range(config.substitution.n):
                    s = g.rattle(g.substitute(base, x, rng), 1, config.substitution.stdev, rng)[0]
                    cands.append(g.tag(s, f"Mn{x:g}<{src}"))
        if any(site.species_string == "Li" for site in base):
            for x in config.delithiation.fractions:
                for _ in range(config.delithiation.n):
                    s = g.rattle(g.delithiate(base, x, rng), 1, config.delithiation.stdev, rng)[0]
                    cands.append(g.tag(s, f"Li{x:g}<{src}"))
        if calculator is not None:
            for temp in config.md.temperatures:
                frames = g.md_snapshots(
                    base,
                    calculator,
                    temperature=temp,
                    steps=config.md.steps,
                    snapshots=config.md.snapshots,
                    timestep_fs=config.md.timestep_fs,
                    seed=int(rng.integers(2**31)),
                )
                cands.extend(g.tag(s, f"md{temp:g}K<{src}") for s in frames)
        if progress is not None:
            progress(1)
    cands = g.dedupe(cands)
    if len(cands) > config.max_candidates:
        keep = sorted(rng.choice(len(cands), size=config.max_candidates, replace=False).tolist())
        cands = [cands[i] for i in keep]
    log.info("explored %d candidates from %d base structures", len(cands), len(bases))
    return cands
