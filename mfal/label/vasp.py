"""VASP labeler through atomate2 0.1.5: one maker pair that differs in one input set.

- HF: ``MPGGAStaticMaker`` with MPStaticSet (ISPIN=2, MP +U values, LORBIT=11 for site moments, MAGMOM per site:
  the ``magmom`` site property if set, else per-element values, default high-spin Fe 5 / Mn 5 μB, else 0.6).
- LF: the same set with ``user_incar_settings={"ISPIN": 1, "LORBIT": None}`` (keeps +U, drops MAGMOM).

Jobs run with jobflow ``run_locally(..., ensure_success=False)`` in a work dir (custodian handlers as atomate2 sets
them); each finished job directory is parsed by :func:`mfal.label.vasp_io.parse_vasp_dir` (one parser for
imports and labels). The makers are plain dataclasses, so ``flows`` can put them into larger flows.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure

from mfal.errors import ConfigError, LabelError
from mfal.fidelity import check_fidelity
from mfal.label.base import labeler_config
from mfal.label.quality import QualityConfig
from mfal.store.docs import FrameDoc

log = logging.getLogger(__name__)

DEFAULT_MAGMOM: dict[str, float] = {"Fe": 5.0, "Mn": 5.0}
DEFAULT_OTHER_MAGMOM = 0.6  # μB, pymatgen/MP default for elements without a value
LF_INCAR_UPDATES: dict[str, Any] = {"ISPIN": 1, "LORBIT": None}
#: job failures that mean VASP cannot run on this machine at all (raised, not recorded per frame)
_CANNOT_RUN = ("PmgVaspPspDirError", "You do not have the right POTCAR", "No such file or directory: 'vasp")


class VaspConfig(BaseModel):
    """Settings of the VASP labeler."""

    model_config = ConfigDict(extra="forbid")

    magmom: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MAGMOM),
        description="initial HF moment per element (μB); the 'magmom' site property wins where set",
    )
    user_incar_settings: dict[str, Any] = Field(
        default_factory=dict, description="extra INCAR updates (both)"
    )
    user_kpoints_settings: dict[str, Any] | None = None
    cores: int = Field(
        1, gt=0, description="cores per VASP run, for the cost in core-seconds if OUTCAR has none"
    )
    quality: QualityConfig = Field(default_factory=QualityConfig)
    retry: bool = Field(True, description="one retry of a quarantined calculation with retry_incar_settings")
    retry_incar_settings: dict[str, Any] = Field(
        default_factory=lambda: {"ALGO": "All", "NELM": 200},
        description="INCAR updates of the retry (robust all-band minimiser, more SCF steps)",
    )


def initial_magmoms(structure: Structure, per_element: Mapping[str, float] | None = None) -> list[float]:
    """MAGMOM per site (μB): site property ``magmom`` > ``per_element`` (default Fe 5, Mn 5) > 0.6."""
    per_element = dict(DEFAULT_MAGMOM if per_element is None else per_element)
    props = structure.site_properties.get("magmom")
    out = []
    for i, site in enumerate(structure):
        if props is not None and props[i] is not None:
            out.append(float(props[i]))
        else:
            out.append(float(per_element.get(site.specie.symbol, DEFAULT_OTHER_MAGMOM)))
    return out


def with_initial_magmoms(
    structure: Structure, magmoms: Sequence[float], *, keep_signs: bool = True
) -> Structure:
    """Copy of ``structure`` with the ``magmom`` site property set from ``magmoms`` (μB), e.g. a model's prediction.

    CHGNet predicts |m| only; with ``keep_signs`` the signs of an existing ``magmom`` property (e.g. an AFM
    order) are kept and only the magnitudes are taken from ``magmoms``.
    """
    new = np.abs(np.asarray(magmoms, dtype=float)) if keep_signs else np.asarray(magmoms, dtype=float)
    if len(new) != len(structure):
        raise ConfigError(f"magmoms has {len(new)} values, expected {len(structure)} sites")
    old = structure.site_properties.get("magmom")
    if keep_signs and old is not None:
        new = new * np.where(np.asarray(old, dtype=float) < 0, -1.0, 1.0)
    out = structure.copy()
    out.add_site_property("magmom", new.tolist())
    return out


def make_vasp_maker(
    fidelity: str,
    *,
    user_incar_settings: Mapping[str, Any] | None = None,
    user_kpoints_settings: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Any:
    """The atomate2 maker of one fidelity: ``MPGGAStaticMaker`` (HF) or the same with ISPIN=1, no MAGMOM (LF)."""
    from atomate2.vasp.jobs.mp import MPGGAStaticMaker
    from pymatgen.io.vasp.sets import MPStaticSet

    check_fidelity(fidelity)
    incar = dict(user_incar_settings or {})
    if fidelity == "lf":
        incar.update(LF_INCAR_UPDATES)
    generator = MPStaticSet(
        force_gamma=True,
        auto_metal_kpoints=True,
        inherit_incar=False,
        user_incar_settings=incar,
        user_kpoints_settings=dict(user_kpoints_settings) if user_kpoints_settings else None,
    )
    return MPGGAStaticMaker(name=name or f"mfal {fidelity} static", input_set_generator=generator)


def prepare_structure(
    structure: Structure, fidelity: str, magmom: Mapping[str, float] | None = None
) -> Structure:
    """HF: a copy with the ``magmom`` site property filled in; LF: a copy without it."""
    out = structure.copy()
    if "magmom" in out.site_properties:
        out.remove_site_property("magmom")
    if fidelity == "hf":
        out.add_site_property("magmom", initial_magmoms(structure, magmom))
    return out


def _job_error_handler() -> tuple[logging.Handler, list[str]]:
    """Collect jobflow's 'failed with exception' messages (it logs them instead of raising)."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if "failed with exception" in msg:
                messages.append(msg)

    return _Collect(level=logging.INFO), messages


def _exception_message(traceback_text: str) -> str:
    """The final ``SomeError: message`` of a logged traceback, joined into one line."""
    lines = traceback_text.strip().splitlines()
    start = None
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line):
            start = i
    tail = lines[start:] if start is not None else lines[-1:]
    return " ".join(ln.strip() for ln in tail if ln.strip())


class VaspLabeler:
    """Labels structures with VASP (atomate2 makers, jobflow run locally)."""

    name = "vasp"

    def __init__(self, config: VaspConfig | None = None, **options: Any) -> None:
        self.config = labeler_config("vasp", VaspConfig, config, options)

    def maker(self, fidelity: str, *, retry: bool = False) -> Any:
        """The atomate2 maker used for ``fidelity`` (``retry``: with ``retry_incar_settings`` on top)."""
        incar = dict(self.config.user_incar_settings)
        if retry:
            incar.update(self.config.retry_incar_settings)
        return make_vasp_maker(
            fidelity,
            user_incar_settings=incar,
            user_kpoints_settings=self.config.user_kpoints_settings,
            name=f"mfal {fidelity} static" + (" retry" if retry else ""),
        )

    def label(
        self,
        structures: Sequence[Structure],
        fidelity: str,
        *,
        workdir: Path | None = None,
        campaign: str | None = None,
        round: int | None = None,
    ) -> list[FrameDoc]:
        """One FrameDoc per structure (the final ionic step of its static run), in order.

        A quarantined result (SCF at NELM, walltime stop, collapsed moments, ...) gets one retry with
        ``retry_incar_settings``; its cost adds to the first attempt's.
        """
        check_fidelity(fidelity)
        root = Path(workdir or Path.cwd() / "mfal-vasp").resolve()
        root.mkdir(parents=True, exist_ok=True)
        common = {"campaign": campaign, "round": round}
        out: list[FrameDoc] = []
        for structure in structures:
            frame = self._run_one(structure, fidelity, self.maker(fidelity), root, common)
            if frame.status == "failed" and any(p in (frame.status_reason or "") for p in _CANNOT_RUN):
                raise LabelError(f"vasp labeler cannot run here: {frame.status_reason}")
            if frame.status == "quarantined" and self.config.retry:
                log.info("retrying %s (%s): %s", frame.formula, fidelity, frame.status_reason)
                second = self._run_one(structure, fidelity, self.maker(fidelity, retry=True), root, common)
                cost = frame.cost + second.cost
                settings = ", ".join(f"{k}={v}" for k, v in self.config.retry_incar_settings.items())
                if second.status == "ok":
                    frame = second.model_copy(update={"cost": cost})
                else:
                    reason = f"after 1 retry ({settings}): {second.status_reason}"
                    frame = second.model_copy(update={"cost": cost, "status_reason": reason})
            out.append(frame)
        return out

    def _run_one(
        self, structure: Structure, fidelity: str, maker: Any, root: Path, common: dict[str, Any]
    ) -> FrameDoc:
        """Run one static job with jobflow in a new folder under ``root`` and parse it."""
        from jobflow import JobStore, run_locally
        from maggma.stores import MemoryStore

        prepared = prepare_structure(structure, fidelity, self.config.magmom)
        intended = prepared.site_properties.get("magmom")
        job = maker.make(prepared)
        before = set(root.glob("job_*"))
        jf_log = logging.getLogger("jobflow.managers.local")
        handler, errors = _job_error_handler()
        jf_log.addHandler(handler)
        old_level = jf_log.level
        jf_log.setLevel(logging.INFO)
        t0 = time.perf_counter()
        try:
            responses = run_locally(
                job,
                store=JobStore(MemoryStore()),
                create_folders=True,
                root_dir=root,
                ensure_success=False,
                log=False,
            )
        finally:
            jf_log.removeHandler(handler)
            jf_log.setLevel(old_level)
        wall = time.perf_counter() - t0
        new_dirs = sorted(set(root.glob("job_*")) - before)
        job_dir = new_dirs[-1] if new_dirs else None
        common = {**common, "task_dir": str(job_dir) if job_dir else None}
        if job.uuid not in responses:
            reason = _exception_message(errors[-1]) if errors else "VASP job did not finish"
            return self._failed(structure, fidelity, f"VASP job failed: {reason}", wall, common)
        return self._parse(structure, fidelity, job_dir, intended, wall, common, job.uuid)

    def _failed(
        self, structure: Structure, fidelity: str, reason: str, wall: float, common: dict[str, Any]
    ) -> FrameDoc:
        calc = {"code": "vasp", "ispin": 2 if fidelity == "hf" else 1}
        return FrameDoc.from_structure(
            structure,
            fidelity=fidelity,
            source="vasp",
            calc=calc,
            status="failed",
            status_reason=reason[:500],
            cost=wall * self.config.cores,
            **common,
        )

    def _parse(
        self,
        structure: Structure,
        fidelity: str,
        job_dir: Path | None,
        intended: Sequence[float] | None,
        wall: float,
        common: dict[str, Any],
        task_id: str,
    ) -> FrameDoc:
        from mfal.errors import DataError
        from mfal.label.vasp_io import outcar_cost, parse_vasp_dir

        if job_dir is None:
            return self._failed(structure, fidelity, "VASP job directory not found", wall, common)
        try:
            cost = outcar_cost(job_dir)
            frames = parse_vasp_dir(
                job_dir,
                fidelity=fidelity,
                source="vasp",
                intended_magmoms=intended,
                quality=self.config.quality,
                cost=cost if cost is not None else wall * self.config.cores,
                campaign=common["campaign"],
                round=common["round"],
                task_id=task_id,
            )
        except DataError as err:
            return self._failed(structure, fidelity, f"VASP output unusable: {err}", wall, common)
        final = frames[-1]
        # a static run is one ionic step; a relaxation would have more: its cost is the whole run's
        return final.model_copy(update={"cost": sum(f.cost for f in frames)})
