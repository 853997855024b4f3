"""VASP labeler through atomate2 0.1.5: one maker pair that differs in one input set.

- HF: ``MPGGAStaticMaker`` with MPStaticSet (ISPIN=2, MP +U values, LORBIT=11 for site moments, MAGMOM per site
  from :mod:`mfal.label.magmoms`: the ``magmom`` site property if set, else the per-element table (default
  high-spin Fe 5 / Mn 5 μB, else 0.6) or the oxidation-state high-spin moment, signed by the ``ordering``).
- LF: the same set with ``user_incar_settings={"ISPIN": 1, "LORBIT": None}`` (keeps +U, drops MAGMOM).

Jobs run with jobflow ``run_locally(..., ensure_success=False)`` in a work dir (custodian handlers as atomate2 sets
them); each finished job directory is parsed by :func:`mfal.label.vasp_io.parse_vasp_dir` (one parser for
imports and labels). The makers are plain dataclasses, so ``flows`` can put them into larger flows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymatgen.core import Structure

from mfal.errors import LabelError
from mfal.fidelity import DEFAULT, Fidelities
from mfal.label import ladder as L
from mfal.label.base import labeler_config, validate_structures
from mfal.label.handlers import VaspHandlerConfig
from mfal.label.magmoms import (
    PREDICTED,
    MomentSource,
    check_ordering,
    initial_moments,
    with_initial_magmoms,
)
from mfal.label.quality import QualityConfig
from mfal.store.docs import FrameDoc

log = logging.getLogger(__name__)

DEFAULT_MAGMOM: dict[str, float] = {"Fe": 5.0, "Mn": 5.0}
DEFAULT_OTHER_MAGMOM = 0.6  # μB, pymatgen/MP default for elements without a value
__all__ = [
    "VaspConfig",
    "VaspLabeler",
    "initial_magmoms",
    "make_vasp_maker",
    "prepare_structure",
    "with_initial_magmoms",
]
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
    default_magmom: float = Field(
        DEFAULT_OTHER_MAGMOM, description="initial HF moment (μB) of elements not in the table (MP: 0.6)"
    )
    magmom_source: MomentSource = Field(
        "table",
        description="table: |m| from `magmom`; oxidation (= chemistry): high-spin |m| of the guessed oxidation "
        "state for transition metals (Fe2+ 4, Fe3+ 5, Mn2+ 5 μB), the table for the rest; model: |m| from the "
        "site property mfal_predicted_magmom (the HF moment head), chemistry where none is attached",
    )
    ordering: str = Field(
        "fm",
        description="collinear order of the initial moments: fm, afm (alternating in site order), "
        "afm-a/afm-b/afm-c (layered along that axis) or a sign string such as '+-+-' per magnetic site",
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

    max_spin_attempts: int = Field(
        3,
        ge=1,
        description="HF spin states tried per structure (retry ladder: configured ordering, other moment guess, "
        "spin_ladder orderings); 1 = no ladder",
    )
    spin_ladder: list[str] = Field(
        default_factory=lambda: list(L.DEFAULT_LADDER),
        description="orderings the HF ladder tries after the configured one, in order",
    )
    keep_lowest_energy: bool = Field(
        False,
        description="run every rung of the ladder and keep the lowest-energy accepted spin state (all charged)",
    )
    custodian: VaspHandlerConfig = Field(
        default_factory=VaspHandlerConfig,
        description="custodian handlers: names (default atomate2's run_vasp set), options per handler, "
        "wall_time (s, adds WalltimeHandler)",
    )

    @field_validator("ordering")
    @classmethod
    def _ordering(cls, v: str) -> str:
        return check_ordering(v)

    @field_validator("spin_ladder")
    @classmethod
    def _ladder(cls, v: list[str]) -> list[str]:
        return [check_ordering(o) for o in v]


def initial_magmoms(
    structure: Structure, per_element: Mapping[str, float] | None = None, config: VaspConfig | None = None
) -> list[float]:
    """MAGMOM per site (μB): site property ``magmom`` > ``per_element`` (default Fe 5, Mn 5) > 0.6.

    With ``config``: its table, default, source and ordering (see :mod:`mfal.label.magmoms`).
    """
    return _moments(structure, per_element, config)[0]


def _moments(
    structure: Structure, per_element: Mapping[str, float] | None, config: VaspConfig | None
) -> tuple[list[float], dict[str, Any]]:
    cfg = config or VaspConfig()
    table = dict(cfg.magmom if per_element is None else per_element)
    return initial_moments(
        structure, table, default=cfg.default_magmom, source=cfg.magmom_source, ordering=cfg.ordering
    )


def make_vasp_maker(
    fidelity: str,
    *,
    user_incar_settings: Mapping[str, Any] | None = None,
    user_kpoints_settings: Mapping[str, Any] | None = None,
    name: str | None = None,
    fidelities: Fidelities = DEFAULT,
    handlers: VaspHandlerConfig | None = None,
) -> Any:
    """The atomate2 maker of one fidelity: ``MPGGAStaticMaker`` (HF) or the same with ISPIN=1, no MAGMOM (LF).

    Custodian runs the handler set of ``handlers`` (default: atomate2's ``run_vasp`` set, see
    :mod:`mfal.label.handlers`)."""
    from atomate2.vasp.jobs.mp import MPGGAStaticMaker
    from pymatgen.io.vasp.sets import MPStaticSet

    incar = dict(user_incar_settings or {})
    if not fidelities.is_magnetic(fidelity):
        incar.update(LF_INCAR_UPDATES)
    generator = MPStaticSet(
        force_gamma=True,
        auto_metal_kpoints=True,
        inherit_incar=False,
        user_incar_settings=incar,
        user_kpoints_settings=dict(user_kpoints_settings) if user_kpoints_settings else None,
    )
    # an unconverged run must come back as a task, not an exception (atomate2's default "error"): the quality
    # gates quarantine it and the SCF retry / spin ladder decide what runs next
    return MPGGAStaticMaker(
        name=name or f"mfal {fidelity} static",
        input_set_generator=generator,
        stop_children_kwargs={"handle_unsuccessful": True},
        run_vasp_kwargs=(handlers or VaspHandlerConfig()).run_vasp_kwargs(),
    )


def prepare_structure(
    structure: Structure,
    fidelity: str,
    magmom: Mapping[str, float] | None = None,
    *,
    config: VaspConfig | None = None,
    fidelities: Fidelities = DEFAULT,
) -> Structure:
    """HF: a copy with the ``magmom`` site property filled in; LF: a copy without it."""
    return _prepare(structure, fidelity, magmom, config, fidelities)[0]


def _prepare(
    structure: Structure,
    fidelity: str,
    magmom: Mapping[str, float] | None,
    config: VaspConfig | None,
    fidelities: Fidelities,
) -> tuple[Structure, dict[str, Any]]:
    """The prepared structure and what enters ``FrameDoc.calc`` (ordering and source of the moments)."""
    out = _plain(structure)
    if not fidelities.is_magnetic(fidelity):
        return out, {}
    moments, record = _moments(structure, magmom, config)
    out.add_site_property("magmom", moments)
    return out, record


def _plain(structure: Structure) -> Structure:
    """Copy without the ``magmom`` and ``mfal_predicted_magmom`` site properties."""
    out = structure.copy()
    for key in ("magmom", PREDICTED):
        if key in out.site_properties:
            out.remove_site_property(key)
    return out


class VaspLabeler:
    """Labels structures with VASP (atomate2 makers, jobflow run locally)."""

    name = "vasp"

    def __init__(
        self, config: VaspConfig | None = None, *, fidelities: Fidelities = DEFAULT, **options: Any
    ) -> None:
        self.config = labeler_config("vasp", VaspConfig, config, options)
        self.fidelities = fidelities

    def maker(self, fidelity: str, *, retry: bool = False, rung: int = 0) -> Any:
        """The atomate2 maker used for ``fidelity`` (``retry``: with ``retry_incar_settings`` on top; ``rung`` k > 0
        of the HF ladder is named ``mfal hf static spin <k+1>``)."""
        incar = dict(self.config.user_incar_settings)
        if retry:
            incar.update(self.config.retry_incar_settings)
        name = f"mfal {fidelity} static" + (f" spin {rung + 1}" if rung else "") + (" retry" if retry else "")
        return make_vasp_maker(
            fidelity,
            user_incar_settings=incar,
            user_kpoints_settings=self.config.user_kpoints_settings,
            name=name,
            fidelities=self.fidelities,
            handlers=self.config.custodian,
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

        A quarantined SCF problem (SCF at NELM, walltime stop) gets one retry with ``retry_incar_settings``.
        HF: a collapsed, flipped or unconverged spin state climbs the retry ladder (:mod:`mfal.label.ladder`, up to
        ``max_spin_attempts`` spin states); every run is recorded in ``calc["attempts"]`` and charged.
        """
        validate_structures(structures, "vasp")
        self.fidelities.check(fidelity)
        root = Path(workdir or Path.cwd() / "mfal-vasp").resolve()
        root.mkdir(parents=True, exist_ok=True)
        common = {"campaign": campaign, "round": round}
        out: list[FrameDoc] = []
        for structure in structures:
            if self.fidelities.is_magnetic(fidelity):
                frame = self._label_spin(structure, fidelity, root, common)
            else:
                frame = self._label_plain(structure, fidelity, root, common)
            out.append(frame)
        return out

    def _run_checked(self, structure: Structure, fidelity: str, maker: Any, root: Path, common: dict[str, Any],
                     prepared: Structure, record: dict[str, Any]) -> FrameDoc:  # fmt: skip
        frame = self._run_one(structure, fidelity, maker, root, common, prepared, record)
        if frame.status == "failed" and any(p in (frame.status_reason or "") for p in _CANNOT_RUN):
            raise LabelError(f"vasp labeler cannot run here: {frame.status_reason}")
        return frame

    def _retry_note(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.config.retry_incar_settings.items())
        return f"after 1 retry ({settings}): "

    def _label_plain(self, structure: Structure, fidelity: str, root: Path, common: dict[str, Any]) -> FrameDoc:
        """Non-magnetic label: one run, one retry with ``retry_incar_settings`` if quarantined."""
        prepared, record = _prepare(structure, fidelity, None, self.config, self.fidelities)
        frame = self._run_checked(structure, fidelity, self.maker(fidelity), root, common, prepared, record)
        if frame.status == "quarantined" and self.config.retry:
            log.info("retrying %s (%s): %s", frame.formula, fidelity, frame.status_reason)
            second = self._run_checked(
                structure, fidelity, self.maker(fidelity, retry=True), root, common, prepared, record
            )
            cost = frame.cost + second.cost
            frame = second.model_copy(update={"cost": cost})
            if second.status != "ok":
                frame = frame.model_copy(update={"status_reason": self._retry_note() + str(second.status_reason)})
        return frame

    def _label_spin(self, structure: Structure, fidelity: str, root: Path, common: dict[str, Any]) -> FrameDoc:
        """Spin-polarized label through the retry ladder (see :meth:`label`)."""
        cfg = self.config
        rungs = L.rungs_for(cfg, structure)

        def moments(rung: L.Rung, k: int) -> tuple[list[float], dict[str, Any]]:
            return L.rung_moments(structure, rung, k, cfg.magmom, default=cfg.default_magmom)

        def run(magmoms: list[float], record: dict[str, Any], retry: bool, k: int) -> FrameDoc:
            prepared = _plain(structure)
            prepared.add_site_property("magmom", magmoms)
            maker = self.maker(fidelity, retry=retry, rung=k)
            return self._run_checked(structure, fidelity, maker, root, common, prepared, record)

        return L.run_ladder(
            rungs, moments=moments, run=run, keep_lowest_energy=cfg.keep_lowest_energy,
            scf_retry=cfg.retry, retry_note=self._retry_note(),
        )  # fmt: skip

    def _run_one(
        self,
        structure: Structure,
        fidelity: str,
        maker: Any,
        root: Path,
        common: dict[str, Any],
        prepared: Structure,
        record: dict[str, Any],
    ) -> FrameDoc:
        """Run one static job on ``prepared`` with jobflow in a new folder under ``root`` and parse it."""
        from mfal.label.vasp_jobs import run_job

        intended = prepared.site_properties.get("magmom")
        common = {**common, "extra_calc": record}
        job = maker.make(prepared)
        finished, error, wall, job_dir = run_job(job, root)
        common = {**common, "task_dir": str(job_dir) if job_dir else None}
        if not finished:
            return self._failed(structure, fidelity, f"VASP job failed: {error}", wall, common)
        return self._parse(structure, fidelity, job_dir, intended, wall, common, job.uuid)

    def _failed(
        self, structure: Structure, fidelity: str, reason: str, wall: float, common: dict[str, Any]
    ) -> FrameDoc:
        common = dict(common)
        calc = {"code": "vasp", "ispin": 2 if self.fidelities.is_magnetic(fidelity) else 1}
        calc.update(common.pop("extra_calc", None) or {})
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
                fidelities=self.fidelities,
                extra_calc=common.get("extra_calc"),
            )
        except DataError as err:
            return self._failed(structure, fidelity, f"VASP output unusable: {err}", wall, common)
        final = frames[-1]
        # a static run is one ionic step; a relaxation would have more: its cost is the whole run's
        return final.model_copy(update={"cost": sum(f.cost for f in frames)})
