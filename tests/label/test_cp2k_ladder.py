"""The CP2K SCF ladder and custodian's CP2K handlers on a real unconverged CP2K run.

``tests/test_data/cp2k_failures/mno_lf_scf3``: a real CP2K 2023.1 run of the 4-atom MnO AFM-II cell, LF (RKS),
stopped by a 3-step SCF limit (cp2k.inp, cp2k.out.gz and the wavefunction CP2K saved, gzipped). The "replay"
runner below stands in for ``cp2k.psmp`` only (a real run would not stop where the test needs it to): it copies
the real output and the saved wavefunction into the attempt's run dir; input writing, the ladder, restart
handling, custodian's checks, parsing and the gates run for real. The wall-time case writes a placeholder
wavefunction file (its content is only copied, never read, by the labeler).
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from mfal.label.cp2k import Cp2kLabeler
from mfal.label.cp2k_input import write_cp2k_input
from mfal.label.cp2k_run import RESTART_WFN, custodian_checks
from mfal.label.cp2k_settings import Cp2kSettings

REPO = Path(__file__).resolve().parents[2]
FAIL = REPO / "tests" / "test_data" / "cp2k_failures" / "mno_lf_scf3"
#: the settings the failure run used (minimal basis/cutoff, 3 SCF steps, no retry)
MNO_FAST = {"basis": "SZV-MOLOPT-SR-GTH", "cutoff_ry": 200.0, "rel_cutoff_ry": 30.0, "omp_threads": 1}


def mno_afm(a0: float = 4.445) -> Structure:
    """Rock-salt MnO, 4-atom rhombohedral AFM-II cell (Mn moments alternate along [111])."""
    lat = Lattice([[a0, a0 / 2, a0 / 2], [a0 / 2, a0, a0 / 2], [a0 / 2, a0 / 2, a0]])
    return Structure(lat, ["Mn", "Mn", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25] * 3, [0.75] * 3])


def unpack_failure(dest: Path) -> Path:
    """The real failed run, unzipped into ``dest`` as CP2K left it (cp2k.inp, cp2k.out, CP2K-RESTART.wfn)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(FAIL / "cp2k.inp", dest / "cp2k.inp")
    for name in ("cp2k.out", "CP2K-RESTART.wfn"):
        (dest / name).write_bytes(gzip.decompress((FAIL / f"{name}.gz").read_bytes()))
    return dest


def _kw(text: str, key: str) -> list[str]:
    return re.findall(rf"^\s*{key}\s+(\S+)", text, re.M)


def test_custodian_handler_detects_the_real_unconverged_run(tmp_path):
    """custodian's UnconvergedScfErrorHandler fires on the real output; its correction is DIIS → CG."""
    from custodian.cp2k.handlers import UnconvergedScfErrorHandler, WalltimeHandler

    run = unpack_failure(tmp_path / "run")
    assert custodian_checks(run) == ["UnconvergedScfErrorHandler"]
    assert not WalltimeHandler().check(str(run))
    handler = UnconvergedScfErrorHandler()
    assert handler.check(str(run))
    before = (run / "cp2k.inp").read_text()
    assert _kw(before, "MINIMIZER") == ["DIIS"]
    fix = handler.correct(str(run))
    after = (run / "cp2k.inp").read_text()
    assert fix["errors"] == ["Non-converging Job"] and _kw(after, "MINIMIZER") == ["CG"]


def _replay_failure(calls: list[Path], walltime: bool = False):
    """Runner: every attempt gets the real unconverged output (or a wall-time stop) and a saved wavefunction."""

    def run(run_dir: Path, cmd: list[str], env: dict[str, str], timeout_s: float) -> float:
        calls.append(run_dir)
        unpacked = unpack_failure(run_dir / "_golden")
        text = (unpacked / "cp2k.out").read_text()
        if walltime:  # CP2K's own wall-time stop message, as in tests/test_data/cp2k/feo_lf_walltime
            mark = " *** WARNING in qs_scf.F:601 :: SCF run NOT converged ***"
            assert mark in text
            stop = " *** SCF run terminated - exceeded requested execution time:       8.000 seconds."
            text = text.replace(mark, f"{stop}\n{mark}")
        (run_dir / "cp2k.out").write_text(text)
        (run_dir / "CP2K-RESTART.wfn").write_bytes((unpacked / "CP2K-RESTART.wfn").read_bytes())
        shutil.rmtree(unpacked)
        return 2.0

    return run


def test_unconverged_climbs_the_ladder_with_restart(tmp_path, cp2k_ready):
    """SCF limit on rung ot-diis → rung ot-cg: CG + 3-point line search, from the saved wavefunction; every
    attempt recorded with reason and cost; still unconverged at the end → quarantined naming all rungs."""
    calls: list[Path] = []
    lab = Cp2kLabeler(**MNO_FAST, max_scf=3, outer_max_scf=1, scf_step_limit=3, runner=_replay_failure(calls))
    [doc] = lab.label([mno_afm()], "lf", workdir=tmp_path)
    rungs = [r.name for r in lab.settings.rungs("restricted")]
    assert rungs == ["ot-diis", "ot-cg", "fd3000-pulay"]
    assert [c.name for c in calls] == ["attempt0", "attempt1", "attempt2"]
    first, second, third = ((c / "cp2k.inp").read_text() for c in calls)
    assert _kw(first, "MINIMIZER") == ["DIIS"] and "WFN_RESTART_FILE_NAME" not in first
    assert _kw(second, "MINIMIZER") == ["CG"] and _kw(second, "LINESEARCH") == ["3PNT"]
    assert _kw(second, "WFN_RESTART_FILE_NAME") == [RESTART_WFN] and _kw(second, "SCF_GUESS") == ["RESTART"]
    assert (calls[1] / "mfal_restart_from.txt").read_text().strip().endswith("attempt0/CP2K-RESTART.wfn")
    # the smearing rung starts from the atomic guess (it does not continue an OT wavefunction)
    assert "&OT" not in third and "&SMEAR" in third and "PULAY_MIXING" in _kw(third, "METHOD")
    assert _kw(third, "ADDED_MOS") == ["60"] and "WFN_RESTART_FILE_NAME" not in third
    assert doc.status == "quarantined"
    assert "after 3 attempts (ot-diis, ot-cg, fd3000-pulay)" in doc.status_reason
    att = doc.calc["attempts"]
    assert [a["rung"] for a in att] == rungs and all(a["status"] == "retryable" for a in att)
    assert all(re.search(r"SCF (step limit reached|not converged) \(\d+ steps", a["reason"]) for a in att)
    assert all(a["custodian"] == ["UnconvergedScfErrorHandler"] for a in att)
    assert att[1]["changes"]["ot_minimizer"] == "CG" and att[0]["changes"] == {}
    assert doc.cost == pytest.approx(sum(a["cost_core_s"] for a in att), abs=0.01) and doc.cost > 0
    assert doc.calc["scf_treatment"] == "restricted" and doc.calc["scf_rung"] == "fd3000-pulay"
    assert not list(Path(doc.task_dir).parent.rglob("*.wfn"))  # wavefunctions removed afterwards


def test_walltime_repeats_the_rung_from_its_wavefunction(tmp_path, cp2k_ready):
    """A wall-time stop reruns the same rung once from the saved wavefunction, then moves on."""
    calls: list[Path] = []
    lab = Cp2kLabeler(**MNO_FAST, max_attempts=3, runner=_replay_failure(calls, walltime=True))
    [doc] = lab.label([mno_afm()], "lf", workdir=tmp_path)
    assert [a["rung"] for a in doc.calc["attempts"]] == ["ot-diis", "ot-diis", "ot-cg"]
    assert doc.calc["attempts"][0]["restart_from"] is None
    assert doc.calc["attempts"][1]["restart_from"].endswith("attempt0/CP2K-RESTART.wfn")
    assert doc.calc["attempts"][2]["restart_from"].endswith("attempt1/CP2K-RESTART.wfn")
    again = (calls[1] / "cp2k.inp").read_text()
    assert _kw(again, "MINIMIZER") == ["DIIS"] and _kw(again, "WFN_RESTART_FILE_NAME") == [RESTART_WFN]
    assert doc.status == "quarantined" and doc.status_reason.startswith("wall-time limit")


def test_odd_electron_count_at_lf_is_roks(tmp_path, cp2k_ready):
    """Odd count at a restricted fidelity: ROKS doublet with OT (ROTATION on, FULL_SINGLE_INVERSE: CP2K aborts
    otherwise); the smearing rung stays RKS with fractional occupations; HF stays UKS."""
    li2mno2 = Structure(
        Lattice.cubic(4.2), ["Li", "Li", "Mn", "O", "O"],
        [[0, 0, 0], [0.5, 0, 0.5], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]],
    )  # fmt: skip  # 3+3+15+6+6 = 33 electrons
    st = Cp2kSettings(**MNO_FAST)
    assert (
        st.treatment(33, magnetic=False) == "open_shell" and st.treatment(32, magnetic=False) == "restricted"
    )
    assert st.treatment(33, magnetic=True) == "unrestricted"
    first, _cg, smear = st.rungs("open_shell")
    assert [first.name, _cg.name, smear.name] == ["roks-ot-diis", "roks-ot-cg", "fd3000-pulay"]
    assert _cg.restart_from_previous and _cg.settings.ot_minimizer == "CG"
    roks = write_cp2k_input(li2mno2, "lf", first.settings, tmp_path / "roks", data_dir=cp2k_ready).read_text()
    assert (
        _kw(roks, "ROKS") == ["True"] and _kw(roks, "MULTIPLICITY") == ["2"] and _kw(roks, "UKS") == ["False"]
    )
    assert _kw(roks, "ROTATION") == ["True"] and _kw(roks, "PRECONDITIONER") == ["FULL_SINGLE_INVERSE"]
    diag = write_cp2k_input(li2mno2, "lf", smear.settings, tmp_path / "fd", data_dir=cp2k_ready).read_text()
    assert "ROKS" not in diag and _kw(diag, "MULTIPLICITY") == ["1"] and "&SMEAR" in diag
    even = write_cp2k_input(mno_afm(), "lf", st, tmp_path / "rks", data_dir=cp2k_ready).read_text()
    assert "ROKS" not in even and _kw(even, "ROTATION") == ["False"]


def test_legacy_retry_and_ladder_validation():
    """``retry`` set explicitly keeps the old single retry; a ladder needs known treatments and named rungs."""
    from mfal.errors import ConfigError

    assert [r.name for r in Cp2kSettings(retry={"max_scf": 5}).rungs("unrestricted")] == ["base", "retry"]
    assert [r.name for r in Cp2kSettings(retry={}).rungs("restricted")] == ["base"]
    custom = Cp2kSettings(ladder={"restricted": [{"name": "a"}, {"name": "b", "ot_minimizer": "CG"}]})
    assert [r.settings.ot_minimizer for r in custom.rungs("restricted")] == ["DIIS", "CG"]
    assert [r.name for r in custom.rungs("unrestricted")] == ["base"]  # no ladder given: the base settings
    with pytest.raises(ConfigError, match="ladder"):
        Cp2kLabeler(ladder={"metallic": [{"name": "x"}]})
    with pytest.raises(ConfigError, match="name"):
        Cp2kLabeler(ladder={"restricted": [{"ot": False}]})
    with pytest.raises(ConfigError, match="not_a_field"):
        Cp2kLabeler(ladder={"restricted": [{"name": "x", "not_a_field": 1}]})
