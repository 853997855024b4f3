"""A tiny recursive flow to check a cluster set-up before spending DFT or GPU hours on a campaign.

Each round: ``explore`` makes rattled 4-atom Cu cells, one ``label`` job per cell computes ASE EMT
energy (eV) / forces (eV/Å) and writes one frame file (a rerun skips frames already written), ``collect``
keeps going when a label job crashed (``on_missing_references="none"``) and records which frames are
missing, ``train`` reports the device and GPUs it was given, and the round job replaces itself with the
next round (``Response(replace=...)``) until ``n_rounds``. Names match the default queues (label -> CPU,
train -> GPU). The labels are NOT training data for mfal: they only prove that the plumbing works.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from jobflow import Flow, Job, JobConfig, Response, job
from jobflow.core.reference import OnMissing
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mfal.errors import ConfigError


class SmokeConfig(BaseModel):
    """Config of the cluster smoke flow (YAML)."""

    model_config = ConfigDict(extra="forbid")

    n_rounds: int = Field(2, ge=1, le=20, description="rounds (recursive replace)")
    n_frames: int = Field(2, ge=1, le=50, description="label jobs per round")
    tag: str = Field("smoke", description="label tag, used in job names")
    frames_dir: str = Field("frames", description="where frame files go (relative to the run directory)")
    fail_if_exists: str | None = Field(
        None, description="label job 0 of round 1 crashes while this file exists (failure-path tests)"
    )
    hang_if_exists: str | None = Field(
        None, description="label job 1 of round 1 sleeps while this file exists, up to 5 min (kill tests)"
    )
    seed: int = 0


@job
def explore(round_: int, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` rattled fcc Cu cells (4 atoms, Å) as pymatgen dicts."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    rng = np.random.default_rng(seed + 1000 * round_)
    base = Structure(
        Lattice.cubic(3.61), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    out = []
    for _ in range(n):
        s = base.copy()
        s.perturb(0.05 + 0.1 * rng.random())
        out.append(s.as_dict())
    return out


@job
def label(
    structure: Any, frames_dir: str, index: int, fail_if_exists: str | None = None, hang_if_exists: str | None = None
) -> dict:
    """EMT energy (eV) and forces (eV/Å) of one cell, written to ``frames_dir/<frame_id>.json``."""
    from ase.calculators.emt import EMT
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    s = structure if isinstance(structure, Structure) else Structure.from_dict(structure)
    key = json.dumps([s.lattice.matrix.round(4).tolist(), s.frac_coords.round(4).tolist()])
    frame_id = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = Path(frames_dir) / f"{frame_id}.json"
    if path.exists():
        return {"frame_id": frame_id, "computed": False}
    if fail_if_exists and index == 0 and Path(fail_if_exists).exists():
        raise RuntimeError(f"injected crash while labeling frame {frame_id} ({fail_if_exists} exists)")
    if hang_if_exists and index == 1:
        import time

        deadline = time.time() + 300
        while Path(hang_if_exists).exists() and time.time() < deadline:
            time.sleep(0.2)
    atoms = AseAtomsAdaptor.get_atoms(s)
    atoms.calc = EMT()
    frame = {
        "frame_id": frame_id,
        "energy": float(atoms.get_potential_energy()),
        "forces": atoms.get_forces().tolist(),
        "host": os.uname().nodename,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(frame))
    os.replace(tmp, path)
    return {"frame_id": frame_id, "computed": True}


@job(config=JobConfig(on_missing_references=OnMissing.NONE))
def collect(results: list[dict | None], round_: int) -> dict[str, Any]:
    """Frames of a round; a crashed label job shows up as ``None`` and is counted as failed."""
    ok = [r for r in results if r is not None]
    return {
        "round": round_,
        "frame_ids": [r["frame_id"] for r in ok],
        "n_ok": len(ok),
        "n_failed": len(results) - len(ok),
        "n_computed": sum(r["computed"] for r in ok),
    }


@job
def train(collected: dict[str, Any], device: str | None = None) -> dict[str, Any]:
    """Report what a training job would get: its device (passed in its arguments) and GPUs (``CUDA_VISIBLE_DEVICES``)."""
    return {
        "round": collected["round"],
        "n_frames": collected["n_ok"],
        "device": device or "auto",
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


@job
def smoke_round(
    round_: int, cfg: dict[str, Any], frames_dir: str, history: list | None = None, device: str | None = None
) -> Response:
    """One round; replaces itself with the round's jobs plus the next round (recursion)."""
    c = SmokeConfig.model_validate(cfg)
    ex = explore(round_, c.n_frames, c.seed)
    labels: list[Job] = []
    for i in range(c.n_frames):
        first = round_ == 1
        j = label(ex.output[i], frames_dir, i, c.fail_if_exists if first else None, c.hang_if_exists if first else None)
        j.name = f"label {c.tag} r{round_} #{i}"
        labels.append(j)
    col = collect([j.output for j in labels], round_)
    tr = train(col.output, device=device)
    tr.name = f"train r{round_}"
    jobs: list[Job] = [ex, *labels, col, tr]
    hist = [*(history or []), {"collect": col.output, "train": tr.output}]
    if round_ < c.n_rounds:
        nxt = smoke_round(round_ + 1, cfg, frames_dir, hist, device)
        nxt.name = f"round {round_ + 1}"
        jobs.append(nxt)
        return Response(replace=Flow(jobs, output=nxt.output))
    return Response(replace=Flow(jobs, output=hist))


def load_smoke_config(path: str | Path) -> SmokeConfig:
    """Validate a smoke YAML; errors name the file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return SmokeConfig.model_validate(raw)
    except FileNotFoundError as err:
        raise ConfigError(f"smoke config {path} does not exist") from err
    except (yaml.YAMLError, ValidationError) as err:
        raise ConfigError(f"smoke config {path}: {str(err).splitlines()[0]}") from err


def smoke_flow(config: str | Path, run_dir: str | Path, device: str | None = None) -> Flow:
    """The smoke flow for a YAML config; frames go under ``run_dir``; ``device`` reaches the train jobs."""
    c = load_smoke_config(config)
    frames = Path(c.frames_dir)
    frames = frames if frames.is_absolute() else Path(run_dir).resolve() / frames
    first = smoke_round(1, c.model_dump(), str(frames), device=device)
    first.name = "round 1"
    return Flow([first], output=first.output, name=f"smoke {c.tag}")
