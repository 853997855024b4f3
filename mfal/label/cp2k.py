"""CP2K labeler: LF = restricted (RKS) PBE+U, HF = unrestricted (UKS) PBE+U with initial moments per site.

Run path ("direct"): pymatgen's ``StaticSet`` writes ``cp2k.inp`` (Gamma only: DFT+U in CP2K 2023.1 has no
k-points), custodian's ``Cp2kJob`` runs ``cp2k.psmp`` and we parse ``cp2k.out`` ourselves
(:mod:`mfal.label.cp2k_io`). We chose it over atomate2's ``StaticMaker`` + ``run_locally`` because it has fewer
moving parts for the same numbers (the team recipe reproduced the atomate2 energies to 1e-6 eV): no jobflow
store, no TaskDocument (which crashes on every RKS run in atomate2 0.1.5 and reports forces in Ha/bohr and no
moments), no gzip-everything default; the labeler stays usable from a plain function or a jobflow job alike.
We drive ``Cp2kJob`` (setup/run/postprocess) ourselves with a hard timeout instead of custodian's handler loop:
mfal's SCF ladder replaces custodian's corrections (why: :func:`mfal.label.cp2k_run.custodian_checks`), and
custodian's ``UnconvergedScfErrorHandler``/``WalltimeHandler`` checks run on every output (recorded per attempt).
Basis sets and potentials are resolved by name once per element from the pymatgen CP2K data dir built by
``scripts/setup-cp2k.sh`` (DftSet would re-parse the element YAML for every input: 10–80 s each here).

Spin treatment by fidelity and electron parity (:meth:`Cp2kSettings.treatment`): magnetic fidelity → UKS;
non-magnetic, even count → RKS; non-magnetic, odd count → ROKS doublet (restricted open shell: α and β share
all spatial orbitals, so no local moments — the closest to RKS; a UKS doublet would polarise the d shells and
become an HF-like label), or ``failed`` with ``odd_restricted="fail"``. Each treatment has an SCF ladder
(``Cp2kSettings.ladder``, measured defaults in ``DEFAULT_LADDER``): an SCF or step-limit failure moves to the next
rung (OT rungs marked ``restart_from_previous`` start from the previous attempt's saved wavefunction), a wall-time
stop repeats the rung once from its own wavefunction; every attempt is recorded in ``FrameDoc.calc["attempts"]``
(rung, changes, outcome, reason, SCF steps, cost, restart file, custodian checks). Still unconverged after the
ladder (or ``max_attempts``) → ``quarantined`` naming the rungs; a CP2K crash → ``failed`` with CP2K's message.
Every result goes through :func:`mfal.label.quality.check_frame`. Cost = Σ over attempts of CP2K wall seconds ×
cores (core-seconds). Setting ``retry`` explicitly keeps the old behaviour (base settings, then one retry).

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
from mfal.fileio import atomic_write_text
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
from mfal.label.cp2k_run import (
    RESTART_WFN,
    Attempt,
    Runner,
    _assess,
    _cmd,
    _nonfinite,
    latest_wfn,
    run_cp2k_custodian,
)
from mfal.label.cp2k_settings import Cp2kSettings, Rung, default_data_dir
from mfal.label.cp2k_spin import label_spin_states
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
        # exclude_unset: a dump of every field would mark ``retry``/``ladder`` as set (old one-retry ladder)
        base = settings.model_dump(exclude_unset=True) if isinstance(settings, Cp2kSettings) else dict(settings or {})
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
        if not hf and n_el % 2 and self.settings.odd_restricted == "fail":
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
        treatment = self.settings.treatment(n_el, hf)
        if hf and self.settings.max_spin_attempts > 1:
            return label_spin_states(self, structure, new, fidelity, root, data_dir, treatment, common)
        attempts = self._climb(structure, fidelity, task_dir, data_dir, magmoms, hf, treatment)
        return self._frame(new, fidelity, {**calc, "scf_treatment": treatment}, attempts, magmoms, common)

    def _climb(
        self,
        structure: Structure,
        fidelity: str,
        task_dir: Path,
        data_dir: Path,
        magmoms: Sequence[float] | None,
        hf: bool,
        treatment: str,
    ) -> list[Attempt]:
        """Run the SCF ladder: next rung after an SCF failure, the same rung from its wavefunction after a
        wall-time stop (once), stop at the first success, a crash or ``max_attempts``."""
        attempts: list[Attempt] = []
        rungs = self.settings.rungs(treatment, plus_u=self.settings.plus_u_on(structure.symbol_set))
        legacy = "retry" in self.settings.model_fields_set  # old single retry: no repeat of a rung
        i = 0
        while i < len(rungs) and len(attempts) < self.settings.max_attempts:
            rung = rungs[i]
            prev = attempts[-1] if attempts else None
            again = prev is not None and prev.walltime and prev.rung == rung.name and not legacy
            wfn_from = (
                prev.run_dir if prev is not None and (prev.walltime or rung.restart_from_previous) else None
            )
            run_dir = task_dir / f"attempt{len(attempts)}"
            att = self._run_rung(structure, fidelity, rung, run_dir, data_dir, magmoms, hf, wfn_from)
            attempts.append(att)
            if att.crash or not att.retryable:
                break
            if att.walltime and not again and not legacy:
                logger.warning(
                    "cp2k %s: %s; rung %s again from its wavefunction", run_dir, att.retryable, rung.name
                )
                continue
            i += 1
            if i < len(rungs):
                logger.warning("cp2k %s: %s; next rung %s", run_dir, att.retryable, rungs[i].name)
        if not self.settings.keep_wfn:
            for att in attempts:
                for fn in Path(att.run_dir).glob("*.wfn*"):
                    fn.unlink()
        return attempts

    def _run_rung(
        self,
        structure: Structure,
        fidelity: str,
        rung: Rung,
        run_dir: Path,
        data_dir: Path,
        magmoms: Sequence[float] | None,
        hf: bool,
        wfn_from: str | None,
    ) -> Attempt:
        """One CP2K run of one rung in ``run_dir`` (reused if finished with the same input)."""
        settings = rung.settings
        restart = None
        if self._finished_before(structure, fidelity, settings, run_dir, magmoms, data_dir, hf):
            logger.info("cp2k %s: finished run with the same input found, reusing it", run_dir)
            wall = 0.0
            marker = run_dir / "mfal_restart_from.txt"
            restart = marker.read_text().strip() or None if marker.is_file() else None
        else:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            wfn = latest_wfn(Path(wfn_from)) if wfn_from and self.settings.restart_wfn else None
            if wfn is not None:
                shutil.copy(wfn, run_dir / RESTART_WFN)
                restart = str(wfn)
                atomic_write_text(run_dir / "mfal_restart_from.txt", restart + "\n")
            write_cp2k_input(
                structure, fidelity, settings, run_dir, magmoms=magmoms, data_dir=data_dir, magnetic=hf,
                restart_wfn=RESTART_WFN if wfn is not None else None,
            )  # fmt: skip
            env = {"OMP_NUM_THREADS": str(settings.omp_threads)}
            logger.info("cp2k %s rung %s -> %s", fidelity, rung.name, run_dir)
            wall = self.runner(run_dir, _cmd(settings), env, settings.wall_time_limit_s + 120.0)
        att = _assess(run_dir, wall, settings)
        return att.model_copy(update={"rung": rung.name, "changes": rung.changes, "restart_from": restart,
                                      "cores": settings.cores, "eps_scf": settings.eps_scf})  # fmt: skip

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
            same = (run_dir / "cp2k.inp").is_file() and _without_restart(
                fresh.read_text()
            ) == _without_restart((run_dir / "cp2k.inp").read_text())
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
        cost = sum(a.cost_core_s for a in attempts)
        calc = {**calc, "attempts": [a.record() for a in attempts], "scf_rung": att.rung}
        if att.output is not None:  # eps_scf_reached: the accepted rung's tolerance (a rung may loosen it)
            calc.update(scf_steps=att.output.scf_steps, cp2k_time_s=att.output.cp2k_time_s)
            if att.output.scf_converged and not att.retryable:
                calc["eps_scf_reached"] = att.eps_scf
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
        pre = _nonfinite(out) + self._consistency(structure, fidelity, out, self.settings, hf)
        doc = FrameDoc.from_structure(
            structure, fidelity=fidelity, source="cp2k", calc=calc, cost=cost,
            status="quarantined" if pre else "ok", status_reason="; ".join(pre) or None,
            energy=out.energy, forces=out.forces,
            stress=(-np.asarray(out.stress)).tolist() if out.stress is not None else None,  # CHGNet sign
            magmoms=out.magmoms(self.settings.moment_method) if hf else None,
            **common,
        )  # fmt: skip
        electronic: bool | str = out.scf_converged
        if att.retryable:  # SCF, step limit or wall time on the last rung tried
            electronic = att.retryable + _ladder_note(
                attempts, legacy="retry" in self.settings.model_fields_set
            )
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


def _without_restart(text: str) -> str:
    """cp2k.inp without the restart lines (a reused run may have started from a wavefunction)."""
    return "\n".join(ln for ln in text.splitlines() if "SCF_GUESS" not in ln and "WFN_RESTART" not in ln)


def _ladder_note(attempts: list[Attempt], legacy: bool) -> str:
    """' after ...' text of a quarantine reason: which retries were tried."""
    if len(attempts) < 2:
        return ""
    if legacy:
        return f" after one retry with {attempts[-1].changes}"
    return f" after {len(attempts)} attempts ({', '.join(a.rung for a in attempts)})"


__all__ = [
    "Cp2kLabeler",
    "Cp2kSettings",
    "check_cp2k_ready",
    "default_data_dir",
    "initial_magmoms",
    "multiplicity",
    "write_cp2k_input",
]
