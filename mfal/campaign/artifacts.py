"""Typed artifacts of one campaign round and :class:`RoundDir`, the one place they are loaded and saved.

A round is data: explore writes :class:`Candidates`, score :class:`RoundScores`, select :class:`Selection`, train
:class:`TrainOutput`, evaluate :class:`Evaluation`. Jobs return these objects; the files under
``DIR/rounds/NNN`` are the resume cache (same JSON shapes as before, so old campaign directories still resume).
Checkpoints travel as :class:`CheckpointRef` (key relative to the campaign directory + sha256), so a campaign
directory can be moved or copied. Units: energies eV per cell, forces and force scores eV/Å.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mfal.errors import DataError, MfalError
from mfal.fileio import atomic_write_json, read_json
from mfal.uncertainty import FidelityScores


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckpointRef(_Model):
    """A model checkpoint: ``key`` (path relative to the campaign directory, or absolute for old state files)
    and the sha256 of its bytes (checked when loaded)."""

    key: str = Field(description="path relative to the campaign directory (absolute only in old state files)")
    sha256: str = Field(min_length=64, max_length=64, description="sha256 of the checkpoint file")

    @model_validator(mode="before")
    @classmethod
    def _old_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and "path" in data and "key" not in data:  # state.json of older versions
            data = {"key": str(data["path"]), **{k: v for k, v in data.items() if k != "path"}}
        return data

    @classmethod
    def from_path(cls, path: str | Path, sha256: str, root: str | Path) -> CheckpointRef:
        """A ref to ``path``, relative to ``root`` when it lies inside it."""
        path, root = Path(path).resolve(), Path(root).resolve()
        key = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        return cls(key=key, sha256=sha256)

    def path(self, root: str | Path) -> Path:
        """The checkpoint file of a campaign directory ``root``."""
        p = Path(self.key)
        return p if p.is_absolute() else Path(root) / p


class Candidate(_Model):
    id: str = Field(description="structure fingerprint (stable across runs)")
    origin: str = Field(description="how it was made, e.g. 'rattle<start:cell:LiFeO2'")
    structure: dict[str, Any] = Field(description="pymatgen Structure.as_dict()")

    @field_validator("structure", mode="before")
    @classmethod
    def _as_dict(cls, v: Any) -> Any:
        return v.as_dict() if hasattr(v, "as_dict") else v  # jobflow decodes the dict into a Structure


class Candidates(_Model):
    """The round's candidates in explore order (file: ``candidates.json``, a list)."""

    items: list[Candidate] = Field(default_factory=list)

    @classmethod
    def from_structures(cls, structures: list[Any]) -> Candidates:
        """From Structures tagged by the explorer (``properties`` candidate_id, origin)."""
        return cls(
            items=[
                Candidate(id=s.properties["candidate_id"], origin=s.properties["origin"], structure=s.as_dict())
                for s in structures
            ]
        )

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.items]

    def structures(self) -> list[Any]:
        """pymatgen Structures with ``properties`` candidate_id and origin."""
        from pymatgen.core import Structure

        out = []
        for c in self.items:
            s = Structure.from_dict(c.structure)
            s.properties = {"candidate_id": c.id, "origin": c.origin}
            out.append(s)
        return out

    def __len__(self) -> int:
        return len(self.items)


class RoundScores(_Model):
    """Ensemble scores of the candidates per fidelity (file: ``scores.json``); ``model`` None before the first
    model (round 0), else the sha256s of the members that scored."""

    model: list[str] | None = Field(None, description="sha256 of each ensemble member; None = no model yet")
    ids: list[str] = Field(default_factory=list, description="candidate ids, in score order")
    fidelities: dict[str, FidelityScores] = Field(default_factory=dict)

    @property
    def has_model(self) -> bool:
        return bool(self.model)

    def array(self, fidelity: str, name: str = "force_std_max") -> np.ndarray:
        """``[n]`` score ``name`` at ``fidelity`` (empty without a model)."""
        if not self.has_model:
            return np.zeros(0)
        return self.fidelities[fidelity].array(name)

    def arrays(self) -> dict[str, dict[str, np.ndarray]] | None:
        """``fidelity -> score name -> [n]`` (the selector's input), None without a model."""
        if not self.has_model:
            return None
        return {f: {k: np.asarray(v, dtype=float) for k, v in s.scores.items()} for f, s in self.fidelities.items()}

    def index(self) -> dict[str, int]:
        """candidate id -> position in the score arrays."""
        return {cid: i for i, cid in enumerate(self.ids)}


class Selection(_Model):
    """Candidate ids picked per fidelity, most important first, and the selector's report
    (file: ``selection.json`` = ``{<fidelity>: [ids], "report": {...}}``)."""

    picks: dict[str, list[str]] = Field(default_factory=dict)
    report: dict[str, Any] = Field(default_factory=dict)

    def of(self, fidelity: str) -> list[str]:
        return list(self.picks.get(fidelity, []))


class TrainOutput(_Model):
    """What training a round produced: the new ensemble, or why nothing was trained (``stopped``)."""

    round: int
    checkpoints: list[CheckpointRef] = Field(default_factory=list)
    n_train: int = 0
    n_val: int = 0
    stopped: str | None = Field(None, description="reason training was refused (failed-label guard)")


class Evaluation(_Model):
    """The decision at the end of a round."""

    round: int
    stop: bool
    reason: str | None = None
    promoted: bool | None = None
    force_mae: float | None = Field(None, description="target-fidelity val force MAE of the new ensemble (eV/Å)")
    skipped: bool = Field(False, description="already evaluated (rerun)")


def _nan_for_null(obj: Any) -> Any:
    """Strict JSON writes NaN as null; map it back inside number lists."""
    if obj is None:
        return float("nan")
    if isinstance(obj, list):
        return [_nan_for_null(v) for v in obj]
    return obj


class RoundDir:
    """Files of round ``r`` in a campaign directory ``root``: the artifacts' resume cache."""

    def __init__(self, root: str | Path, r: int):
        self.root = Path(root)
        self.r = r
        self.path = self.root / "rounds" / f"{r:03d}"

    # ---- paths
    @property
    def candidates_path(self) -> Path:
        return self.path / "candidates.json"

    @property
    def scores_path(self) -> Path:
        return self.path / "scores.json"

    @property
    def selection_path(self) -> Path:
        return self.path / "selection.json"

    @property
    def model_dir(self) -> Path:
        return self.path / "models"

    def label_dir(self, fidelity: str) -> Path:
        return self.path / "labels" / fidelity

    def task_path(self, fidelity: str, cid: str) -> Path:
        """Task file of one label (written before the store write; a rerun reuses it)."""
        return self.label_dir(fidelity) / f"{cid[:32]}.json"

    # ---- artifacts
    def _load(self, path: Path, cls: type[BaseModel], data: Any) -> Any:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise DataError(f"{path}: not a valid {cls.__name__} (field {loc}: {first['msg']})") from err

    def load_candidates(self) -> Candidates | None:
        data = read_json(self.candidates_path)
        return None if data is None else self._load(self.candidates_path, Candidates, {"items": data})

    def candidates(self) -> Candidates:
        """The candidates; MfalError if explore has not run."""
        c = self.load_candidates()
        if c is None:
            raise MfalError(f"round {self.r}: candidates.json missing (explore has not run)")
        return c

    def save_candidates(self, c: Candidates) -> None:
        atomic_write_json(self.candidates_path, [x.model_dump(mode="json") for x in c.items])

    def load_scores(self) -> RoundScores | None:
        data = read_json(self.scores_path)
        if data is None:
            return None
        for fs in (data.get("fidelities") or {}).values() if isinstance(data, dict) else ():
            if isinstance(fs, dict) and isinstance(fs.get("scores"), dict):
                fs["scores"] = {k: _nan_for_null(v) for k, v in fs["scores"].items()}
        return self._load(self.scores_path, RoundScores, data)

    def scores(self) -> RoundScores:
        """The scores, or an empty (no-model) RoundScores if score has not run."""
        return self.load_scores() or RoundScores()

    def save_scores(self, s: RoundScores) -> None:
        atomic_write_json(self.scores_path, s.model_dump(mode="json"))

    def load_selection(self) -> Selection | None:
        data = read_json(self.selection_path)
        if data is None:
            return None
        if not isinstance(data, dict):
            raise DataError(f"{self.selection_path}: expected a mapping, got {type(data).__name__}")
        picks = {k: v for k, v in data.items() if k != "report"}
        return self._load(self.selection_path, Selection, {"picks": picks, "report": data.get("report", {})})

    def selection(self) -> Selection:
        """The selection; MfalError if select has not run."""
        s = self.load_selection()
        if s is None:
            raise MfalError(f"round {self.r}: selection.json missing (select has not run)")
        return s

    def save_selection(self, s: Selection) -> None:
        atomic_write_json(self.selection_path, {**s.picks, "report": s.report})

    # ---- times
    def record_time(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` of wall time to ``stage`` (``times.json``)."""
        path = self.path / "times.json"
        times = read_json(path, {})
        times[stage] = times.get(stage, 0.0) + seconds
        atomic_write_json(path, times)

    def times(self) -> dict[str, float]:
        return read_json(self.path / "times.json", {})

    def stamp(self, key: str) -> None:
        """Record the wall-clock time (s since the epoch) of ``key`` ("start"/"end") in ``wall.json``."""
        path = self.path / "wall.json"
        data = read_json(path, {})
        data[key] = time.time()
        atomic_write_json(path, data)

    def timed(self, stage: str) -> _Timer:
        """``with rd.timed("score"): ...`` adds the block's wall time to ``stage``."""
        return _Timer(self, stage)


class _Timer:
    def __init__(self, rd: RoundDir, stage: str):
        self.rd, self.stage = rd, stage

    def __enter__(self) -> _Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rd.record_time(self.stage, time.perf_counter() - self.t0)
