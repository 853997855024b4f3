"""Surrogate-fidelity labeler ("teacher"): pretrained CHGNet models from the chgnet wheel.

Two different but related potential-energy surfaces in milliseconds: by default LF = CHGNet 0.2.0 with the
moments dropped, HF = CHGNet 0.3.0 with moments. Labels are *surrogate* labels (``source="teacher"``,
``calc["surrogate"] = True``); they never stand in for DFT in scientific claims.

Cost per label (core-seconds) comes from the config: by default the CP2K timings measured on 28-atom LiFePO4
with 2 cores (LF 95 s, HF 135 s wall → 190 / 270 core-s), scaled as ``(n_atoms / 28) ** cost_exponent``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymatgen.core import Structure

from mfal.errors import ConfigError, LabelError
from mfal.fidelity import DEFAULT, Fidelities
from mfal.label.base import labeler_config, validate_structures
from mfal.label.quality import QualityConfig, check_forces
from mfal.label.teacher_pairs import DEFAULT_PAIR, PAIRS, LFTransform, scaled, transform_labels
from mfal.store.docs import FrameDoc, structure_fingerprint

log = logging.getLogger(__name__)

KNOWN_MODELS = ("0.2.0", "0.3.0", "r2scan")


class TeacherFidelity(BaseModel):
    """Which pretrained CHGNet stands in for one fidelity, and what a label costs."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description=f"pretrained CHGNet model name, one of {list(KNOWN_MODELS)}")
    magmoms: bool = Field(description="return per-site moments (μB) with the labels")
    cost_ref: float = Field(gt=0, description="cost of one label of the reference cell (core-seconds)")
    transform: LFTransform = Field(
        default_factory=LFTransform,
        description="pure transforms of the model's labels (rescaled cell, bond term, "
        "energy terms; mfal.label.teacher_pairs)",
    )


#: measured CP2K cost of one 28-atom LiFePO4 label per role (2 cores: LF 95 s, HF 135 s wall)
_COST_REF = {"low": 2 * 95.0, "high": 2 * 135.0}


def pair_fidelities(pair: str, fidelities: Fidelities = DEFAULT) -> dict[str, TeacherFidelity]:
    """The teacher settings of pair ``pair`` (see :data:`mfal.label.teacher_pairs.PAIRS`) keyed by fidelity name."""
    if pair not in PAIRS:
        raise ConfigError(f"teacher pair={pair!r} not in {sorted(PAIRS)}")
    names = {"low": fidelities.low, "high": fidelities.high}
    return {
        names[role]: TeacherFidelity(model=model, magmoms=mag, cost_ref=_COST_REF[role], transform=t)
        for role, (model, mag, t) in PAIRS[pair].items()
    }


def _default_fidelities() -> dict[str, TeacherFidelity]:
    return pair_fidelities(DEFAULT_PAIR)


class TeacherConfig(BaseModel):
    """Settings of the teacher labeler (every knob has a default)."""

    model_config = ConfigDict(extra="forbid")

    pair: str = Field(DEFAULT_PAIR, description=f"teacher pair, one of {sorted(PAIRS)} (sets `fidelities`)")
    fidelities: dict[str, TeacherFidelity] = Field(
        default_factory=_default_fidelities,
        description="per fidelity: model, moments, cost, transform (default: those of `pair`)",
    )
    cost_ref_atoms: int = Field(28, gt=0, description="atom count of the reference cell the costs refer to")
    cost_exponent: float = Field(1.0, ge=0, description="cost ∝ (n_atoms / cost_ref_atoms) ** cost_exponent")
    device: str = Field("cpu", description="auto, cpu or cuda")
    batch_size: int = Field(
        4,
        gt=0,
        description="cells per CHGNet call; peak memory grows ≈ 0.3 GB per 28-atom cell in a batch "
        "(measured: 32 cells in batches of 16 → 11 GB RSS, of 4 → 3.5 GB, equally fast)",
    )
    quality: QualityConfig = Field(default_factory=QualityConfig)
    fail_ids: list[str] = Field(
        default_factory=list,
        description="failure injection (tests): frame ids, structure fingerprints or "
        "structure.properties['id'/'candidate_id'] values whose labels come back failed",
    )
    fail_rate: float = Field(0.0, ge=0, le=1, description="failure injection: fraction of labels that fail")
    seed: int = Field(0, description="seed of the failure injection (deterministic per structure)")

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "fidelities" not in data
            and data.get("pair", DEFAULT_PAIR) != DEFAULT_PAIR
        ):
            data = {**data, "fidelities": pair_fidelities(str(data["pair"]))}
        return data

    def hf_model(self, fidelities: Fidelities = DEFAULT) -> str | None:
        """Model name of the target (HF) fidelity's teacher, None if not configured."""
        fid = self.fidelities.get(fidelities.high)
        return fid.model if fid is not None else None


@lru_cache(maxsize=4)
def _load_chgnet(model_name: str, device: str) -> Any:
    """Load (once per process) a pretrained CHGNet model from the chgnet wheel."""
    from chgnet.model import CHGNet

    if model_name not in KNOWN_MODELS:
        raise ConfigError(f"teacher model={model_name!r} not in {list(KNOWN_MODELS)}")
    with contextlib.redirect_stdout(io.StringIO()) as out:  # chgnet prints its parameter count
        model = CHGNet.load(model_name=model_name, use_device=device, verbose=False)
    log.debug("loaded CHGNet %s on %s: %s", model_name, device, out.getvalue().strip())
    model.eval()
    return model


def _unit_hash(seed: int, key: str) -> float:
    """Deterministic number in [0, 1) from seed and key."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class TeacherLabeler:
    """Labels structures with pretrained CHGNet models standing in for the fidelities (surrogate labels)."""

    name = "teacher"

    def __init__(
        self, config: TeacherConfig | None = None, *, fidelities: Fidelities = DEFAULT, **options: Any
    ) -> None:
        self.config = labeler_config("teacher", TeacherConfig, config, options)
        self.fidelities = fidelities

    def cost(self, n_atoms: int, fidelity: str) -> float:
        """Configured cost of one label of a cell with ``n_atoms`` atoms (core-seconds)."""
        fid = self._fidelity(fidelity)
        cfg = self.config
        return fid.cost_ref * (n_atoms / cfg.cost_ref_atoms) ** cfg.cost_exponent

    def calc_summary(self, fidelity: str) -> dict[str, Any]:
        """The ``calc`` dict stored with every teacher frame of ``fidelity``."""
        fid = self._fidelity(fidelity)
        calc = {
            "code": "chgnet-teacher",
            "model": fid.model,
            "surrogate": True,
            "magmoms": fid.magmoms,
            "ispin": 2 if fid.magmoms else 1,
        }
        if (
            self.config.pair != DEFAULT_PAIR or not fid.transform.identity
        ):  # default pair: frame ids unchanged
            calc.update(pair=self.config.pair, transform=fid.transform.model_dump(mode="json"))
        return calc

    def _fidelity(self, fidelity: str) -> TeacherFidelity:
        try:
            return self.config.fidelities[fidelity]
        except KeyError:
            self.fidelities.check(fidelity)  # UnknownFidelityError for names outside the campaign's
            raise ConfigError(
                f"teacher labeler: fidelity={fidelity!r} not configured (have {sorted(self.config.fidelities)})"
            ) from None

    def _injected_failure(self, structure: Structure, frame_id: str, fingerprint: str) -> str | None:
        cfg = self.config
        keys = {frame_id, fingerprint}
        for prop in ("id", "candidate_id"):
            value = (structure.properties or {}).get(prop)
            if value is not None:
                keys.add(str(value))
        if keys & set(cfg.fail_ids):
            return "injected failure (fail_ids)"
        if cfg.fail_rate > 0 and _unit_hash(cfg.seed, fingerprint) < cfg.fail_rate:
            return f"injected failure (fail_rate={cfg.fail_rate}, seed={cfg.seed})"
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
        """One FrameDoc per structure, in order: energy (eV, total), forces (eV/Å), stress (GPa), HF moments (μB)."""
        from mfal.device import resolve_device

        validate_structures(structures, "teacher")
        fid = self._fidelity(fidelity)
        calc = self.calc_summary(fidelity)
        common = {
            "fidelity": fidelity,
            "source": "teacher",
            "calc": calc,
            "campaign": campaign,
            "round": round,
        }
        try:
            model = _load_chgnet(fid.model, resolve_device(self.config.device))
        except ConfigError:
            raise
        except Exception as err:  # a broken chgnet install cannot label anything
            raise LabelError(f"teacher labeler: cannot load CHGNet {fid.model!r}: {err}") from err

        docs: list[FrameDoc | None] = [None] * len(structures)
        graphs, graph_pos = [], []
        for i, structure in enumerate(structures):
            fingerprint = structure_fingerprint(structure)
            frame = FrameDoc.from_structure(structure, **common)
            cost = self.cost(len(structure), fidelity)
            reason = self._injected_failure(structure, frame.frame_id, fingerprint)
            if reason is None:
                try:
                    graphs.append(model.graph_converter(scaled(structure, fid.transform.cell_scale)))
                    graph_pos.append(i)
                    continue
                except Exception as err:  # e.g. isolated atoms: no neighbours within the cutoff
                    reason = f"CHGNet graph conversion failed: {err}"
            docs[i] = frame.model_copy(update={"status": "failed", "status_reason": reason, "cost": cost})

        if graphs:
            task = "efsm" if fid.magmoms else "efs"
            with warnings.catch_warnings():  # chgnet's internal "requires_grad ... to a scalar" warning
                warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
                preds = model.predict_graph(graphs, task=task, batch_size=self.config.batch_size)
            if isinstance(preds, dict):
                preds = [preds]
            for i, pred in zip(graph_pos, preds, strict=True):
                structure = structures[i]
                n = len(structure)
                energy, forces, stress = transform_labels(
                    structure,
                    float(pred["e"]) * n,  # CHGNet predicts eV/atom
                    np.asarray(pred["f"], dtype=float).reshape(n, 3),
                    np.asarray(pred["s"], dtype=float).reshape(3, 3),
                    fid.transform,
                )
                status, reason = check_forces(forces, self.config.quality)
                finite = bool(np.all(np.isfinite(forces)))
                docs[i] = FrameDoc.from_structure(
                    structure,
                    **common,
                    energy=energy,
                    forces=forces if finite else None,
                    stress=stress if finite else None,
                    magmoms=np.asarray(pred["m"], dtype=float).reshape(n) if fid.magmoms and finite else None,
                    status=status,
                    status_reason=reason,
                    cost=self.cost(n, fidelity),
                )
        return [d for d in docs if d is not None]
