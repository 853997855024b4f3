"""CP2K labeler: LF = restricted (RKS) PBE+U, HF = unrestricted (UKS) PBE+U with initial moments per site.

Run path ("direct"): pymatgen's ``StaticSet`` writes ``cp2k.inp`` (Gamma only: DFT+U in CP2K 2023.1 has no
k-points), custodian's ``Cp2kJob`` runs ``cp2k.psmp`` and we parse ``cp2k.out`` ourselves
(:mod:`mfal.label.cp2k_io`). We chose it over atomate2's ``StaticMaker`` + ``run_locally`` because it has fewer
moving parts for the same numbers (the team recipe reproduced the atomate2 energies to 1e-6 eV): no jobflow
store, no TaskDocument (which crashes on every RKS run in atomate2 0.1.5 and reports forces in Ha/bohr and no
moments), no gzip-everything default; the labeler stays usable from a plain function or a jobflow job alike.
We drive ``Cp2kJob`` (setup/run/postprocess) ourselves with a hard timeout instead of custodian's handler loop,
so that exactly one, recorded retry happens, with settings we chose.
Basis sets and potentials are resolved by name once per element from the pymatgen CP2K data dir built by
``scripts/setup-cp2k.sh`` (DftSet would re-parse the element YAML for every input: 10–80 s each here).

Every result goes through :func:`mfal.label.quality.check_frame`. SCF not converged, the SCF step limit or the
wall-time limit → one retry with ``Cp2kSettings.retry`` applied, then ``quarantined`` with the reason; an odd
electron count at LF (restricted needs an even count) or a CP2K crash → ``failed`` with the reason.
Cost = CP2K wall seconds × cores used (core-seconds).

Modules: settings :mod:`~mfal.label.cp2k_settings`, environment :mod:`~mfal.label.cp2k_env`, inputs and +U
:mod:`~mfal.label.cp2k_input`, running :mod:`~mfal.label.cp2k_run`, parsing :mod:`~mfal.label.cp2k_io`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from pymatgen.core import Structure

from mfal.errors import ConfigError, DataError, LabelError
from mfal.fidelity import DEFAULT, Fidelities
from mfal.label.base import validate_structures
from mfal.label.cp2k_env import check_cp2k_ready
from mfal.label.cp2k_input import (
    _clean_structure,
    electron_count,
    initial_magmoms,
    moments_and_record,
    multiplicity,
    write_cp2k_input,
)
from mfal.label.cp2k_io import Cp2kOutput, parse_cp2k_output
from mfal.label.cp2k_run import Attempt, Runner, _assess, _cmd, _nonfinite, run_cp2k_custodian
from mfal.label.cp2k_settings import Cp2kSettings, default_data_dir
from mfal.label.quality import QualityConfig, check_frame
from mfal.store.docs import FrameDoc, make_frame_id

logger = logging.getLogger(__name__)


class Cp2kLabeler:
    """Labels structures with CP2K at LF (RKS PBE+U) or HF (UKS PBE+U); see the module docstring."""

    name = "cp2k"

    def __init__(
        self,
        settings: Cp2kSettings | dict[str, Any] | None = None,
        *,
        quality: QualityConfig | None = None,
        runner: Runner | None = None,
        fidelities: Fidelities = DEFAULT,
        **overrides: Any,
    ) -> None:
        """``settings`` (or keyword ``overrides`` of its fields); ``runner`` replaces the CP2K call (tests).

        ``fidelities``: the campaign's names; its magnetic ones run spin-polarized (UKS).
        """
        base = settings.model_dump() if isinstance(settings, Cp2kSettings) else dict(settings or {})
        try:
            self.settings = Cp2kSettings(**{**base, **overrides})
        except ValidationError as err:
            raise ConfigError(f"cp2k labeler settings: {err}") from err
        self.quality = quality or self.settings.quality
        self.runner = runner or run_cp2k_custodian
        self.fidelities = fidelities

    def calc_summary(
        self,
        structure: Structure,
        fidelity: str,
        magmoms: Sequence[float] | None,
        record: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """FrameDoc.calc of ``structure`` at ``fidelity`` (enters frame_id); U only for elements present.

        ``record``: how the initial moments were chosen (``ordering``, ``magmom_source``), HF only.
        """
        s = self.settings
        return {
            "code": "cp2k",
            "ispin": 2 if self.fidelities.is_magnetic(fidelity) else 1,
            "hubbard_u": {el: u for el, u in sorted(s.hubbard_u.items()) if u and el in structure.symbol_set},
            "magmom_init": list(magmoms) if magmoms is not None else None,
            "functional": s.functional,
            "kpoints": "Gamma",
            "cutoff_ry": s.cutoff_ry,
            "rel_cutoff_ry": s.rel_cutoff_ry,
            "plus_u_method": s.plus_u_method,
            "basis": s.basis,
            "eps_scf": s.eps_scf,
            "moment_method": s.moment_method,
            **(record or {}),
        }

    def label(
        self,
        structures: Sequence[Structure],
        fidelity: str,
        *,
        workdir: Path | None = None,
        campaign: str | None = None,
        round: int | None = None,
        progress: bool = False,
    ) -> list[FrameDoc]:
        """One FrameDoc per structure, in order; task dirs under ``workdir`` (default ./cp2k_runs)."""
        validate_structures(structures, "cp2k")
        self.fidelities.check(fidelity)
        data_dir = check_cp2k_ready(self.settings)
        root = Path(workdir or "cp2k_runs").resolve()
        items: Sequence[Structure] = structures
        if progress:
            from tqdm import tqdm

            items = tqdm(structures, desc=f"cp2k {fidelity}", unit="frame")
        docs = [self._label_one(s, fidelity, root, data_dir, campaign, round) for s in items]
        return docs

    # one frame --------------------------------------------------------------------------------------------
    def _label_one(
        self,
        structure: Structure,
        fidelity: str,
        root: Path,
        data_dir: Path,
        campaign: str | None,
        round_: int | None,
    ) -> FrameDoc:
        hf = self.fidelities.is_magnetic(fidelity)
        magmoms, record = moments_and_record(structure, self.settings) if hf else (None, None)
        calc = self.calc_summary(structure, fidelity, magmoms, record)
        frame_id = make_frame_id(structure, fidelity, calc)
        task_dir = root / f"{fidelity}_{frame_id}"
        common = {"campaign": campaign, "round": round_, "task_dir": str(task_dir), "frame_id": frame_id}
        new = _clean_structure(structure, None)

        n_el = electron_count(new, self.settings)
        if not hf and n_el % 2:
            reason = f"odd electron count {n_el} at LF: restricted (RKS) PBE+U needs an even count"
            return FrameDoc.from_structure(
                new,
                fidelity=fidelity,
                source="cp2k",
                calc=calc,
                status="failed",
                status_reason=reason,
                **common,
            )

        attempts: list[Attempt] = []
        for settings in (self.settings, self.settings.retry_settings()):
            if settings is None:
                break
            run_dir = task_dir / f"attempt{len(attempts)}"
            if self._finished_before(structure, fidelity, settings, run_dir, magmoms, data_dir, hf):
                logger.info("cp2k %s: finished run with the same input found, reusing it", run_dir)
                wall = 0.0
            else:
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                write_cp2k_input(
                    structure, fidelity, settings, run_dir, magmoms=magmoms, data_dir=data_dir, magnetic=hf
                )
                env = {"OMP_NUM_THREADS": str(settings.omp_threads)}
                logger.info("cp2k %s %s -> %s", fidelity, new.composition.reduced_formula, run_dir)
                wall = self.runner(run_dir, _cmd(settings), env, settings.wall_time_limit_s + 120.0)
            att = _assess(run_dir, wall, settings)
            attempts.append(att)
            if not settings.keep_wfn:
                for fn in run_dir.glob("*.wfn*"):
                    fn.unlink()
            if att.crash or not att.retryable or len(attempts) > 1 or not self.settings.retry:
                break
            logger.warning("cp2k %s: %s; retrying with %s", run_dir, att.retryable, self.settings.retry)
        return self._frame(new, fidelity, calc, attempts, magmoms, common)

    @staticmethod
    def _finished_before(
        structure: Structure,
        fidelity: str,
        settings: Cp2kSettings,
        run_dir: Path,
        magmoms: Sequence[float] | None,
        data_dir: Path,
        magnetic: bool,
    ) -> bool:
        """A completed cp2k.out from the very same cp2k.inp is in ``run_dir`` (resume without paying again)."""
        if not settings.reuse_finished or not (run_dir / "cp2k.out").is_file():
            return False
        with tempfile.TemporaryDirectory() as tmp:
            fresh = write_cp2k_input(
                structure,
                fidelity,
                settings,
                Path(tmp),
                magmoms=magmoms,
                data_dir=data_dir,
                magnetic=magnetic,
            )
            same = (run_dir / "cp2k.inp").is_file() and fresh.read_text() == (
                run_dir / "cp2k.inp"
            ).read_text()
        if not same:
            return False
        try:
            return parse_cp2k_output(run_dir).completed
        except DataError:
            return False

    def _frame(
        self,
        structure: Structure,
        fidelity: str,
        calc: dict[str, Any],
        attempts: list[Attempt],
        magmoms: Sequence[float] | None,
        common: dict[str, Any],
    ) -> FrameDoc:
        att = attempts[-1]
        cost = sum(self._cost(a, s) for a, s in zip(attempts, self._attempt_settings(), strict=False))
        calc = {**calc, "attempts": len(attempts)}
        if att.output is not None:
            calc.update(scf_steps=att.output.scf_steps, cp2k_time_s=att.output.cp2k_time_s)
        common = {**common, "task_dir": att.run_dir}
        if att.crash:
            return FrameDoc.from_structure(
                structure, fidelity=fidelity, source="cp2k", calc=calc, status="failed",
                status_reason=att.crash[-1500:], cost=cost, **common,
            )  # fmt: skip
        out = att.output
        if out is None:  # _assess sets crash when there is no output; keep mypy and readers sure
            raise LabelError(f"{att.run_dir}: no CP2K output and no crash reason")
        # problems the shared gates do not see (non-finite stress, output of another cell or spin treatment)
        hf = self.fidelities.is_magnetic(fidelity)
        pre = _nonfinite(out) + self._consistency(
            structure, fidelity, out, self._attempt_settings()[len(attempts) - 1], hf
        )
        doc = FrameDoc.from_structure(
            structure, fidelity=fidelity, source="cp2k", calc=calc, cost=cost,
            status="quarantined" if pre else "ok", status_reason="; ".join(pre) or None,
            energy=out.energy, forces=out.forces,
            stress=(-np.asarray(out.stress)).tolist() if out.stress is not None else None,  # CHGNet sign
            magmoms=out.magmoms(self.settings.moment_method) if hf else None,
            **common,
        )  # fmt: skip
        electronic: bool | str = out.scf_converged
        if att.retryable:  # SCF, step limit or wall time, still failing after the retry (if any)
            retried = f" after one retry with {self.settings.retry}" if len(attempts) > 1 else ""
            electronic = att.retryable + retried
        status, reason = check_frame(
            doc,
            intended_magmoms=magmoms,
            electronic_converged=electronic,
            ispin=2 if out.uks else 1,
            config=self.quality,
            magnetic=hf,
        )
        reasons = pre + ([reason] if reason and status != "ok" else [])
        if reasons:
            return doc.model_copy(update={"status": "quarantined", "status_reason": "; ".join(reasons)})
        return doc

    def _attempt_settings(self) -> list[Cp2kSettings]:
        retry = self.settings.retry_settings()
        return [self.settings] + ([retry] if retry else [])

    @staticmethod
    def _cost(att: Attempt, settings: Cp2kSettings) -> float:
        """core-seconds: CP2K's own wall time (or the measured one if CP2K did not print it) × cores."""
        t = att.output.cp2k_time_s if att.output is not None and att.output.cp2k_time_s else att.wall_s
        return float(t) * settings.cores

    @staticmethod
    def _consistency(
        structure: Structure, fidelity: str, out: Cp2kOutput, settings: Cp2kSettings, want_uks: bool
    ) -> list[str]:
        """The output belongs to this structure and settings (atom order, spin treatment, U values)."""
        reasons = []
        species = [site.specie.symbol for site in structure]
        if out.elements is not None and out.elements != species:
            reasons.append(f"atoms in {Path(out.path).name} ({len(out.elements)}) do not match the structure")
        if out.uks is not None and out.uks != want_uks:
            reasons.append(f"{fidelity} frame from a {'UKS' if out.uks else 'RKS'} run")
        wanted = {round(u, 3) for el, u in settings.hubbard_u.items() if u and el in structure.symbol_set}
        echoed = {round(u, 3) for u in out.u_eff_ev}
        if echoed != wanted:
            reasons.append(f"CP2K used U_eff {sorted(echoed)} eV, expected {sorted(wanted)} eV")
        return reasons


__all__ = [
    "Cp2kLabeler",
    "Cp2kSettings",
    "check_cp2k_ready",
    "default_data_dir",
    "initial_magmoms",
    "multiplicity",
    "write_cp2k_input",
]
