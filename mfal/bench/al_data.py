"""The HF test set of ``mfal bench al`` and the MD-stability check of a final model.

Test frames come from Langevin NVT trajectories driven by the HF teacher's own pretrained model (ASE + chgnet's
``CHGNetCalculator``) at several temperatures and compositions, plus i.i.d. rattled/strained start structures;
they are labeled once by the HF teacher labeler and cached (``test_set.json`` under the output folder). Nothing
in the test set comes from the models under test.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfal.bench.al_config import HeldOutConfig, StabilityConfig
from mfal.fileio import atomic_write_json, read_json
from mfal.store.docs import FrameDoc

log = logging.getLogger(__name__)

TEST_FILE = "test_set.json"


def _starts(test: HeldOutConfig, seed: int) -> list[Any]:
    """One LiFePO4-based start structure per test composition (Mn fraction, Li content)."""
    from mfal.explore import load_start_structures
    from mfal.explore.config import StartStructure

    specs = [StartStructure(builtin="lifepo4", **comp) for comp in test.compositions]
    return load_start_structures(specs, Path.cwd(), seed=seed)


def _teacher_calculator(model_name: str) -> Any:
    """An ASE calculator on the HF teacher's pretrained CHGNet (the labeler's cached copy)."""
    import contextlib
    import io

    from chgnet.model.dynamics import CHGNetCalculator

    from mfal.label.teacher import _load_chgnet

    with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints the device it runs on
        return CHGNetCalculator(model=_load_chgnet(model_name, "cpu"), use_device="cpu")


def held_out_structures(test: HeldOutConfig, teacher_model: str) -> tuple[list[Any], list[str]]:
    """(structures, group per structure: ``md-<T>K`` or ``iid``); MD driven by the HF teacher's model."""
    from mfal.explore import generators as g

    rng = np.random.default_rng(test.seed)
    starts = _starts(test, test.seed)
    calc = _teacher_calculator(teacher_model)
    out: list[Any] = []
    groups: list[str] = []
    for i, base in enumerate(starts):
        for j, temp in enumerate(test.temperatures):
            frames = g.md_snapshots(
                base,
                calc,
                temperature=temp,
                steps=test.md_steps,
                snapshots=test.snapshots,
                timestep_fs=test.timestep_fs,
                seed=test.seed + 100 * i + j,
            )
            out += frames
            groups += [f"md-{temp:g}K"] * len(frames)
    for k in range(test.iid):
        base = starts[k % len(starts)]
        s = g.rattle(base, 1, 0.05, rng)[0] if k % 2 == 0 else g.strain(base, 1, 0.03, rng)[0]
        out.append(s)
        groups.append("iid")
    return out, groups


def _key(test: HeldOutConfig, teacher_model: str) -> str:
    text = json.dumps({"test": test.model_dump(mode="json"), "teacher": teacher_model}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_or_build_test_set(
    out_dir: Path, test: HeldOutConfig, campaign_cfg: Any
) -> tuple[list[FrameDoc], list[str], dict[str, Any]]:
    """The HF-labeled test frames, their groups and an info dict; built once, cached in ``out_dir``."""
    import time

    from mfal.label.config import build_labeler

    high = campaign_cfg.fidelities.high
    model = campaign_cfg.teacher_model(high) or "0.3.0"
    key = _key(test, model)
    path = Path(out_dir) / TEST_FILE
    cached = read_json(path, None)
    if isinstance(cached, dict) and cached.get("key") == key:
        frames = [FrameDoc.model_validate(f) for f in cached["frames"]]
        return frames, list(cached["groups"]), {**cached["info"], "cached": True}
    t0 = time.perf_counter()
    structures, groups = held_out_structures(test, model)
    labeler = build_labeler(campaign_cfg.labelers[high], fidelities=campaign_cfg.fidelities)
    docs = labeler.label(structures, high)
    keep = [
        (d, grp) for d, grp in zip(docs, groups, strict=True) if d.status == "ok" and d.forces is not None
    ]
    frames = [d for d, _ in keep]
    groups = [grp for _, grp in keep]
    info = {
        "n_frames": len(frames),
        "n_failed": len(docs) - len(frames),
        "groups": {grp: groups.count(grp) for grp in sorted(set(groups))},
        "teacher_model": model,
        "fidelity": high,
        "build_s": time.perf_counter() - t0,
    }
    atomic_write_json(
        path,
        {"key": key, "info": info, "groups": groups, "frames": [f.model_dump(mode="json") for f in frames]},
    )
    return frames, groups, {**info, "cached": False}


def min_pair_distance(atoms: Any) -> float:
    """Smallest interatomic distance (Å, minimum image)."""
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def stable_run(structure: Any, calculator: Any, cfg: StabilityConfig, seed: int) -> dict[str, Any]:
    """One NVT (Langevin) run; physical = no pair below ``min_distance`` Å, finite forces and the potential
    energy per atom within ``max_energy_change`` eV/atom of its start, at every step."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=cfg.temperature, rng=rng)
    dyn = Langevin(
        atoms, timestep=cfg.timestep_fs * units.fs, temperature_K=cfg.temperature, friction=0.02, rng=rng
    )
    n = len(atoms)
    e0 = float(atoms.get_potential_energy()) / n
    worst_de, dmin = 0.0, min_pair_distance(atoms)
    for step in range(1, cfg.steps + 1):
        dyn.run(1)
        if not np.all(np.isfinite(atoms.get_forces())):
            return {"stable": False, "steps": step, "reason": "non-finite forces"}
        worst_de = max(worst_de, abs(float(atoms.get_potential_energy()) / n - e0))
        dmin = min(dmin, min_pair_distance(atoms))
        if dmin < cfg.min_distance or worst_de > cfg.max_energy_change:
            return {"stable": False, "steps": step, "min_distance": dmin, "max_energy_change": worst_de}
    return {"stable": True, "steps": cfg.steps, "min_distance": dmin, "max_energy_change": worst_de}


def md_stability(
    checkpoint: Path, sha256: str, fidelity: str, starts: Sequence[Any], cfg: StabilityConfig, seed: int
) -> dict[str, Any]:
    """Share of ``cfg.runs`` short NVT runs of a final model (member checkpoint) that stay physical."""
    from mfal.model import MFCHGNetCalculator

    if cfg.runs == 0:
        return {"stable_share": None, "runs": []}
    calc = MFCHGNetCalculator(str(checkpoint), fidelity=fidelity, device="cpu", sha256=sha256)
    runs = [stable_run(starts[i % len(starts)], calc, cfg, seed + i) for i in range(cfg.runs)]
    return {"stable_share": sum(r["stable"] for r in runs) / len(runs), "runs": runs}
