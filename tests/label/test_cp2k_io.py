"""CP2K labeler without running CP2K: output parser, input writer, settings, and the failure paths on real outputs.

The outputs are real CP2K runs (tests/test_data/cp2k, see its README section): pymatgen's Si2 UKS test file and a
FeO LF run that we stopped at a 3-step SCF limit. The "replay" runner used below stands in for ``cp2k.psmp``
only: it checks the input our labeler wrote against the golden ``cp2k.inp`` (the keys that matter) and copies the
real ``cp2k.out`` in, like atomate2's mock-VASP harness; input writing, parsing, retry and gates run for real.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from mfal.errors import ConfigError, LabelError
from mfal.label.cp2k import (
    Cp2kLabeler,
    Cp2kSettings,
    check_cp2k_ready,
    initial_magmoms,
    multiplicity,
    write_cp2k_input,
)
from mfal.label.cp2k_io import HA_TO_EV, parse_cp2k_output

REPO = Path(__file__).resolve().parents[2]


def feo_afm(a0: float = 4.33) -> Structure:
    """Rock-salt FeO, 4-atom rhombohedral AFM-II cell (the recipe's test cell)."""
    lat = Lattice([[a0, a0 / 2, a0 / 2], [a0 / 2, a0, a0 / 2], [a0 / 2, a0 / 2, a0]])
    return Structure(lat, ["Fe", "Fe", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25] * 3, [0.75] * 3])


def si2() -> Structure:
    """The Si2 cell of pymatgen's CP2K test output (cp2k.inp CELL and COORD, Å)."""
    a = 2.734364
    lat = Lattice([[0, a, a], [a, 0, a], [a, a, 0]])
    return Structure(lat, ["Si", "Si"], [[1.367182] * 3, [0, 0, 0]], coords_are_cartesian=True)


def _keys(inp: Path) -> dict[str, str]:
    """The input keywords whose value must agree between our input and the golden one."""
    text = inp.read_text()
    out = {}
    for key in ("UKS", "MULTIPLICITY", "CUTOFF", "REL_CUTOFF", "PLUS_U_METHOD", "U_MINUS_J", "EPS_SCF"):
        m = re.search(rf"^\s*{key}\s+(.+?)\s*$", text, re.M)
        out[key] = m.group(1) if m else None
    out["MAX_SCF"] = ",".join(re.findall(r"^\s*MAX_SCF\s+(\S+)", text, re.M))
    return out


def replay(golden: Path, calls: list[Path]):
    """A runner that checks our cp2k.inp against ``golden/cp2k.inp`` and copies the real cp2k.out in."""

    def run(run_dir: Path, cmd: list[str], env: dict[str, str], timeout_s: float) -> float:
        calls.append(run_dir)
        assert cmd[-1] == "cp2k.psmp" and env["OMP_NUM_THREADS"]
        if run_dir.name == "attempt0" and golden.name.startswith("feo"):  # the retry's settings differ
            assert _keys(run_dir / "cp2k.inp") == _keys(golden / "cp2k.inp")
        shutil.copy(golden / "cp2k.out", run_dir / "cp2k.out")
        return 1.0

    return run


# ---------------------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------------------
def test_parse_si_uks_reference(test_data):
    """pymatgen's Si2 UKS output: energy as pymatgen reads it, restart-aware (its first run ABORTed)."""
    out = parse_cp2k_output(test_data / "cp2k" / "si_uks_static")
    assert out.completed and out.uks and out.scf_converged and out.scf_steps == 1
    assert out.error is None  # the ABORT belongs to the first run in the file, not the last
    assert out.energy == pytest.approx(-7.254316323154326 * HA_TO_EV) == pytest.approx(-197.4000034198741)
    assert out.elements == ["Si", "Si"] and np.asarray(out.forces).shape == (2, 3)
    assert out.n_electrons == 8 and out.multiplicity == 1
    assert out.magmoms_mulliken == [0.0, 0.0] and out.magmoms_hirshfeld == [0.0, 0.0]
    assert not np.all(np.isfinite(out.stress))  # CP2K printed Infinity/NaN stress in this file
    assert out.cp2k_time_s == pytest.approx(4.006)


def test_parse_unconverged_feo(test_data):
    """Our real FeO LF run cut at MAX_SCF 3: not converged, but CP2K still printed energy and forces."""
    out = parse_cp2k_output(test_data / "cp2k" / "feo_lf_unconverged" / "cp2k.out")
    assert out.completed and out.uks is False and not out.scf_converged and out.scf_steps == 3
    assert out.n_electrons == 2 * 16 + 2 * 6
    assert out.plus_u_method == "LOWDIN" and out.u_eff_ev == [4.0]
    assert out.energy is not None and np.asarray(out.forces).shape == (4, 3)
    assert out.magmoms_mulliken == [0.0] * 4 and out.magmoms_hirshfeld == [0.0] * 4


def test_parse_gzipped_and_truncated(tmp_path, test_data):
    """A gzipped file parses the same; a file cut before the end is not completed and has no forces."""
    import gzip

    src = test_data / "cp2k" / "feo_lf_unconverged" / "cp2k.out"
    (tmp_path / "gz").mkdir()
    with gzip.open(tmp_path / "gz" / "cp2k.out.gz", "wt") as f:
        f.write(src.read_text())
    assert parse_cp2k_output(tmp_path / "gz").energy == parse_cp2k_output(src).energy
    lines = src.read_text().splitlines()
    cut = next(i for i, s in enumerate(lines) if "ATOMIC FORCES" in s)
    (tmp_path / "cp2k.out").write_text("\n".join(lines[:cut]))
    out = parse_cp2k_output(tmp_path / "cp2k.out")
    assert not out.completed and out.forces is None


def test_parse_missing_file(tmp_path):
    from mfal.errors import DataError

    with pytest.raises(DataError, match="no cp2k.out"):
        parse_cp2k_output(tmp_path)


# ---------------------------------------------------------------------------------------------------------
# settings and inputs
# ---------------------------------------------------------------------------------------------------------
def test_settings_validation():
    with pytest.raises(ConfigError, match="cutoff_ry"):
        Cp2kLabeler(cutoff_ry=-1)
    with pytest.raises(ConfigError, match="Xx"):
        Cp2kLabeler(hubbard_u={"Xx": 3.0})
    with pytest.raises(ConfigError, match="not_a_field"):
        Cp2kLabeler(retry={"not_a_field": 1})
    with pytest.raises(ConfigError, match="extra"):
        Cp2kLabeler(max_scff=3)
    s = Cp2kSettings(max_scf=40, outer_max_scf=10, scf_step_limit=100)
    assert s.effective_outer_max_scf == 2  # 40 × 2 ≤ 100
    assert s.scf_limit == 80
    retry = s.retry_settings()
    assert retry.ot is False and retry.scf_limit == 100  # diagonalisation: max_scf capped by the hard limit
    assert Cp2kSettings(retry={}).retry_settings() is None
    with pytest.raises(ConfigError, match="Xe"):
        Cp2kSettings().valence_of("Xe")


def test_initial_moments_and_multiplicity():
    s = feo_afm()
    assert initial_magmoms(s, Cp2kSettings()) == [4.0, -4.0, 0.0, 0.0]
    assert initial_magmoms(s, Cp2kSettings(magnetic_order="fm")) == [4.0, 4.0, 0.0, 0.0]
    s.add_site_property("magmom", [3.0, 3.0, 0.0, 0.0])
    assert initial_magmoms(s, Cp2kSettings()) == [3.0, 3.0, 0.0, 0.0]  # the site property wins
    assert multiplicity(44, [4, -4, 0, 0]) == 1
    assert multiplicity(44, [4, 4, 0, 0]) == 9
    assert multiplicity(45, [4, 4]) == 10  # parity fixed to fit an odd electron count


def test_write_inputs_lf_hf(tmp_path, cp2k_ready):
    """LF: RKS, one Fe kind with +U in eV; HF: UKS, ±4 μB kinds, each with +U, multiplicity from Σm."""
    st = Cp2kSettings(wall_time_limit_s=5400)
    lf = write_cp2k_input(feo_afm(), "lf", st, tmp_path / "lf", data_dir=cp2k_ready).read_text()
    hf = write_cp2k_input(feo_afm(), "hf", st, tmp_path / "hf", data_dir=cp2k_ready).read_text()
    assert "UKS False" in lf and "MULTIPLICITY 1" in lf and "MAGNETIZATION 4" not in lf
    assert lf.count("&KIND Fe") == 1 and lf.count("U_MINUS_J [eV] 4.0") == 1
    assert "UKS True" in hf and "MULTIPLICITY 1" in hf
    assert "MAGNETIZATION 4.0" in hf and "MAGNETIZATION -4.0" in hf
    assert hf.count("&KIND Fe") == 2 and hf.count("U_MINUS_J [eV] 4.0") == 2
    for text in (lf, hf):
        assert "PLUS_U_METHOD LOWDIN" in text and "CUTOFF 400" in text and "WALLTIME 01:30:00" in text
        assert "&KPOINTS" not in text and "&HIRSHFELD" in text
    diag = write_cp2k_input(
        feo_afm(), "lf", Cp2kSettings(ot=False, max_scf=123), tmp_path / "diag", data_dir=cp2k_ready
    ).read_text()
    assert re.findall(r"MAX_SCF\s+(\d+)", diag) == ["123"] and "&SMEAR" in diag and "&OT" not in diag
    fm = write_cp2k_input(
        feo_afm(), "hf", Cp2kSettings(magnetic_order="fm"), tmp_path / "fm", data_dir=cp2k_ready
    ).read_text()
    assert "MULTIPLICITY 9" in fm


def test_missing_setup_is_a_label_error(tmp_path):
    with pytest.raises(LabelError, match="setup-cp2k.sh"):
        check_cp2k_ready(Cp2kSettings(data_dir=str(tmp_path / "nothing")))
    with pytest.raises(LabelError, match="setup-cp2k.sh"):
        Cp2kLabeler(cp2k_exe="cp2k.does-not-exist").label([si2()], "lf", workdir=tmp_path)


# ---------------------------------------------------------------------------------------------------------
# failure paths through the labeler (replayed real outputs)
# ---------------------------------------------------------------------------------------------------------
def test_unconverged_is_retried_then_quarantined(tmp_path, test_data, cp2k_ready):
    """SCF step limit → one retry (diagonalisation) → still unconverged → quarantined, cost of both runs."""
    calls: list[Path] = []
    golden = test_data / "cp2k" / "feo_lf_unconverged"
    lab = Cp2kLabeler(max_scf=3, outer_max_scf=1, retry={"max_scf": 3}, runner=replay(golden, calls))
    [doc] = lab.label([feo_afm()], "lf", workdir=tmp_path, campaign="t", round=2)
    assert [c.name for c in calls] == ["attempt0", "attempt1"]
    assert doc.status == "quarantined" and doc.source == "cp2k"
    assert "SCF step limit reached (3 steps, limit 3" in doc.status_reason
    assert "after one retry" in doc.status_reason
    assert doc.cost == pytest.approx(2 * 117.228 * 2)  # CP2K's own time × 2 cores, both attempts
    assert len(doc.calc["attempts"]) == 2 and doc.calc["ispin"] == 1 and doc.round == 2
    assert doc.task_dir.endswith("attempt1")


def test_finished_runs_are_reused(tmp_path, test_data, cp2k_ready):
    """Labeling the same frame again in the same workdir reuses the finished run (same input): no new run."""
    calls: list[Path] = []
    golden = test_data / "cp2k" / "feo_lf_unconverged"
    lab = Cp2kLabeler(max_scf=3, outer_max_scf=1, retry={}, runner=replay(golden, calls))
    [first] = lab.label([feo_afm()], "lf", workdir=tmp_path)
    [again] = lab.label([feo_afm()], "lf", workdir=tmp_path)
    assert len(calls) == 1 and again.status_reason == first.status_reason and again.cost == first.cost
    other = Cp2kLabeler(max_scf=3, outer_max_scf=1, eps_default=1e-9, retry={}, runner=replay(golden, calls))
    other.label([feo_afm()], "lf", workdir=tmp_path)  # a different input is run again
    assert len(calls) == 2


def test_unconverged_without_retry(tmp_path, test_data, cp2k_ready):
    calls: list[Path] = []
    lab = Cp2kLabeler(
        max_scf=3, outer_max_scf=1, retry={}, runner=replay(test_data / "cp2k" / "feo_lf_unconverged", calls)
    )
    [doc] = lab.label([feo_afm()], "lf", workdir=tmp_path)
    assert len(calls) == 1 and doc.status == "quarantined"
    assert "after one retry" not in doc.status_reason and doc.cost == pytest.approx(117.228 * 2)


def test_nonfinite_stress_is_quarantined(tmp_path, test_data, cp2k_ready):
    """The Si2 UKS output converged, but its stress is Infinity/NaN → quarantined, not retried."""
    calls: list[Path] = []
    lab = Cp2kLabeler(hubbard_u={}, runner=replay(test_data / "cp2k" / "si_uks_static", calls))
    [doc] = lab.label([si2()], "hf", workdir=tmp_path)
    assert len(calls) == 1
    assert doc.status == "quarantined" and "stress not finite" in doc.status_reason
    assert doc.energy == pytest.approx(-197.4000034198741)


def test_wrong_spin_treatment_is_quarantined(tmp_path, test_data, cp2k_ready):
    """A UKS output handed back for an LF frame is caught (gate: LF must be non-spin-polarized)."""
    lab = Cp2kLabeler(hubbard_u={}, runner=replay(test_data / "cp2k" / "si_uks_static", []))
    [doc] = lab.label([si2()], "lf", workdir=tmp_path)
    assert doc.status == "quarantined"
    assert "lf frame from a UKS run" in doc.status_reason and "ISPIN=2" in doc.status_reason


def test_odd_electrons_at_lf_fail_without_running(tmp_path, cp2k_ready):
    calls: list[Path] = []
    li = Structure(Lattice.cubic(3.44), ["Li", "Li", "H"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]])
    lab = Cp2kLabeler(odd_restricted="fail", runner=replay(Path("/nonexistent"), calls))
    [doc] = lab.label([li], "lf", workdir=tmp_path)
    assert calls == [] and doc.status == "failed"
    assert "odd electron count 7" in doc.status_reason and doc.cost == 0.0


def test_walltime_stop_is_retried_then_quarantined(tmp_path, test_data, cp2k_ready):
    """A real run that CP2K stopped at WALLTIME 8 s (it then still printed forces) → retry → quarantined."""
    calls: list[Path] = []
    out = parse_cp2k_output(test_data / "cp2k" / "feo_lf_walltime")
    assert out.walltime_exceeded and not out.scf_converged and out.forces is not None
    lab = Cp2kLabeler(
        wall_time_limit_s=8, retry={"ot": False}, runner=replay(test_data / "cp2k" / "feo_lf_walltime", calls)
    )
    [doc] = lab.label([feo_afm()], "lf", workdir=tmp_path)
    assert len(calls) == 2 and doc.status == "quarantined"
    assert doc.status_reason.startswith("wall-time limit 8 s reached after one retry")
    assert doc.cost == pytest.approx(2 * 2 * out.cp2k_time_s)


def test_converged_lf_replay_is_ok(tmp_path, test_data, cp2k_ready):
    """Our real converged FeO LF run → ok frame: eV, eV/Å, CHGNet stress sign, no moments, cost = time × cores."""
    golden = test_data / "cp2k" / "feo_lf"
    out = parse_cp2k_output(golden)
    assert out.completed and out.scf_converged and out.uks is False and out.scf_steps == 48
    assert out.charges_mulliken[0] == pytest.approx(0.706387)  # RKS Mulliken: population, net charge
    [doc] = Cp2kLabeler(runner=replay(golden, [])).label([feo_afm()], "lf", workdir=tmp_path)
    assert doc.status == "ok", doc.status_reason
    assert doc.energy == pytest.approx(out.energy) and doc.energy == pytest.approx(-7583.6651, abs=1e-3)
    assert np.allclose(doc.forces, out.forces) and np.allclose(doc.stress, -np.asarray(out.stress))
    assert doc.magmoms is None and doc.calc["ispin"] == 1 and doc.fidelity_index == 1
    assert doc.cost == pytest.approx(out.cp2k_time_s * 2)


def test_get_labeler_builds_cp2k():
    from mfal.label import get_labeler

    lab = get_labeler("cp2k", cutoff_ry=500, omp_threads=1)
    assert isinstance(lab, Cp2kLabeler) and lab.name == "cp2k" and lab.settings.cutoff_ry == 500


def test_run_that_died_midway_is_failed_with_the_tail(tmp_path, test_data, cp2k_ready):
    """CP2K killed mid-SCF (output cut, no ABORT box, no 'PROGRAM ENDED') → failed with the output's tail."""
    lines = (test_data / "cp2k" / "feo_lf" / "cp2k.out").read_text().splitlines()
    cut = next(i for i, s in enumerate(lines) if s.strip().startswith("20 OT"))

    def died(run_dir: Path, cmd: list[str], env: dict[str, str], timeout_s: float) -> float:
        (run_dir / "cp2k.out").write_text("\n".join(lines[: cut + 1]) + "\n")
        (run_dir / "std_err.txt").write_text("Segmentation fault (core dumped)\n")
        return 3.0

    [doc] = Cp2kLabeler(runner=died).label([feo_afm()], "lf", workdir=tmp_path)
    assert doc.status == "failed" and len(doc.calc["attempts"]) == 1
    assert "did not finish" in doc.status_reason and "Segmentation fault" in doc.status_reason
    assert doc.cost == pytest.approx(3.0 * 2)  # no CP2K timing printed: measured wall time × cores


def test_converged_hf_replay_is_ok(tmp_path, test_data, cp2k_ready):
    """Our real FeO HF (UKS, AFM) run → ok frame with Hirshfeld moments ±3.29 μB; the gates see the AFM order."""
    golden = test_data / "cp2k" / "feo_hf_afm"
    out = parse_cp2k_output(golden)
    assert out.uks and out.multiplicity == 1 and out.scf_converged and out.u_eff_ev == [4.0, 4.0]
    assert out.magmoms_mulliken[:2] == pytest.approx([3.446657, -3.442042])  # UKS Mulliken spin column
    [doc] = Cp2kLabeler(runner=replay(golden, [])).label([feo_afm()], "hf", workdir=tmp_path)
    assert doc.status == "ok", doc.status_reason
    assert (
        doc.calc["ispin"] == 2
        and doc.calc["magmom_init"] == [4.0, -4.0, 0.0, 0.0]
        and doc.fidelity_index == 2
    )
    assert doc.magmoms == pytest.approx([3.292, -3.288, -0.002, -0.002])
    lf = parse_cp2k_output(test_data / "cp2k" / "feo_lf")
    assert (doc.energy - lf.energy) / 4 == pytest.approx(-1.3079, abs=1e-3)  # HF below LF
    # the same frame judged against a ferromagnetic intent: the gate sees the flipped Fe
    from mfal.label.quality import check_frame

    status, reason = check_frame(doc, intended_magmoms=[4.0, 4.0, 0.0, 0.0])
    assert status == "quarantined" and "spin flipped" in reason


def test_ordering_and_source_are_recorded_in_calc(tmp_path, test_data, cp2k_ready):
    """The HF frame's calc names the ordering and where the moments came from; other names of the fidelities work."""
    from mfal.fidelity import Fidelities

    golden = test_data / "cp2k" / "feo_hf_afm"
    [doc] = Cp2kLabeler(runner=replay(golden, [])).label([feo_afm()], "hf", workdir=tmp_path)
    assert doc.calc["ordering"] == "afm" and doc.calc["magmom_source"] == "table"
    # a campaign whose fidelities are called pbe / pbe_spin: the magnetic one runs UKS, the other RKS
    fids = Fidelities(names=("pbe", "pbe_spin"), magnetic=("pbe_spin",))
    lab = Cp2kLabeler(runner=replay(golden, []), fidelities=fids)
    [spin] = lab.label([feo_afm()], "pbe_spin", workdir=tmp_path / "named")
    assert spin.status == "ok" and spin.calc["ispin"] == 2 and spin.magmoms is not None
    lf = Cp2kLabeler(runner=replay(test_data / "cp2k" / "feo_lf", []), fidelities=fids)
    [plain] = lf.label([feo_afm()], "pbe", workdir=tmp_path / "named")
    assert plain.status == "ok" and plain.calc["ispin"] == 1 and "ordering" not in plain.calc
