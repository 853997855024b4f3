"""HF retry ladder: a collapsed or flipped spin state is retried with the next ordering, every attempt recorded and
charged; all rejected -> quarantined naming every attempt; keep_lowest_energy keeps the lower of two accepted runs.

End to end through atomate2's mock-VASP harness (conftest.py): real MgMn2O4 AFM outputs (Mn moments −,−,+,+ on
sites 2–5, 199.502 core-s each), fault-injected by editing a copy — OUTCAR moments scaled down (collapse), or all
moments sign-flipped and the vasprun energies shifted by −0.5 eV (a second, lower-energy spin state).
"""

from __future__ import annotations

import gzip
import re
import shutil

import pytest
from pymatgen.io.vasp import Incar, Poscar

from mfal.label import ladder as L
from mfal.label.quality import check_hf_moments, is_scf_problem, spin_problems
from mfal.label.vasp import VaspLabeler

GOLDEN = "atomate2_MgMn2O4_static_afm"
COST = 199.502  # core-s of the golden run (OUTCAR: 199.502 s on 1 core)
E_GOLDEN = -104.17424802  # eV
MN = [2, 3, 4, 5]
CHECK = {"incar_settings": ["ISPIN"], "check_inputs": ["incar", "poscar"]}


def _rewrite(path, edit):
    with gzip.open(path, "rt") as fh:
        text = fh.read()
    new = edit(text)
    assert new != text, f"fault injection changed nothing in {path.name}"
    with gzip.open(path, "wt") as fh:
        fh.write(new)


@pytest.fixture
def goldens(test_data, tmp_path):
    """``ok`` (as computed), ``collapsed`` (Mn |m| 3.823 -> 0.412 μB), ``lower`` (moments +,+,−,−, E − 0.5 eV) and
    ``unconverged`` (vasprun NELM 200 -> 20, the run's own SCF step count: SCF at the limit)."""
    root = tmp_path / "golden"
    for name in ("ok", "collapsed", "lower", "unconverged"):
        shutil.copytree(test_data / "vasp" / GOLDEN, root / name)
    _rewrite(root / "collapsed" / "outputs" / "OUTCAR.gz", lambda t: t.replace("3.823", "0.412"))

    def flip(t):  # swap the signs of every site moment in the tot column
        return re.sub(r"(?m)^(\s+\d+(?:\s+-?\d\.\d{3}){3}\s+)(-?)(\d\.\d{3})$",
                      lambda m: m.group(1) + ("" if m.group(2) else "-") + m.group(3), t)  # fmt: skip

    def lower(t):
        return re.sub(r'(<i name="e_(?:fr_energy|wo_entrp|0_energy)">\s*)(-?\d+\.\d+)',
                      lambda m: f"{m.group(1)}{float(m.group(2)) - 0.5:.8f}", t)  # fmt: skip

    _rewrite(root / "unconverged" / "outputs" / "vasprun.xml.gz",
             lambda t: t.replace('name="NELM">   200<', 'name="NELM">   20<'))  # fmt: skip
    _rewrite(root / "lower" / "outputs" / "OUTCAR.gz", flip)
    _rewrite(root / "lower" / "outputs" / "vasprun.xml.gz", lower)
    return root


@pytest.fixture
def harness(monkeypatch, goldens):
    from atomate2.utils.testing.vasp import monkeypatch_vasp

    gen = monkeypatch_vasp(monkeypatch, goldens)
    register = next(gen)

    def _register(names):
        register(names, {name: CHECK for name in names})

    yield _register
    next(gen, None)


@pytest.fixture
def written(monkeypatch):
    """MAGMOM of each INCAR our makers wrote (recorded when the harness checks it, before outputs replace it)."""
    import atomate2.utils.testing.vasp as h

    seen: list[list[float]] = []
    original = h._check_incar

    def _record(ref_path, incar_settings, incar_exclude):
        seen.append(Incar.from_file("INCAR")["MAGMOM"])
        return original(ref_path, incar_settings, incar_exclude)

    monkeypatch.setattr(h, "_check_incar", _record)
    return seen


@pytest.fixture
def mgmn2o4(test_data):
    return Poscar.from_file(test_data / "vasp" / GOLDEN / "inputs" / "POSCAR.gz").structure


def _signs(moments):
    return "".join("+" if moments[i] > 0 else "-" for i in MN)


@pytest.mark.parametrize("first", ["collapsed", "ok"])
def test_bad_spin_state_gets_the_next_ordering_then_quarantined(harness, written, mgmn2o4, tmp_path, first):
    """Rung 1 (ordering --++ on collapsed outputs, or afm=+-+- against the −−++ outputs: flipped) is rejected,
    rung 2 (afm-a) on collapsed outputs too: quarantined, both attempts in calc and both costs charged."""
    ordering = "--++" if first == "collapsed" else "afm"
    harness({"mfal hf static": first, "mfal hf static spin 2": "collapsed"})
    labeler = VaspLabeler(ordering=ordering, spin_ladder=["afm-a", "fm"], max_spin_attempts=2)
    (frame,) = labeler.label([mgmn2o4], "hf", workdir=tmp_path / "work")
    assert frame.status == "quarantined"
    attempts = frame.calc["attempts"]
    assert [a["ordering"] for a in attempts] == [ordering, "afm-a"]
    assert [_signs(a["initial_magmoms"]) for a in attempts] == [_signs(written[0]), _signs(written[1])]
    assert _signs(written[0]) == ("--++" if first == "collapsed" else "+-+-") and _signs(written[1]) != _signs(written[0])
    assert frame.cost == pytest.approx(2 * COST) and [a["cost"] for a in attempts] == pytest.approx([COST, COST])
    kinds = {"collapsed": "collapse", "ok": "spin flipped"}
    assert kinds[first] in attempts[0]["reason"] and "collapse" in attempts[1]["reason"]
    assert frame.status_reason.startswith("all 2 spin attempts rejected: 1. ")
    assert f"{ordering} (table)" in frame.status_reason and "afm-a (table)" in frame.status_reason
    assert not any(a["kept"] for a in attempts) and not any(a["retry_incar"] for a in attempts)


def test_collapse_then_good_ordering_is_kept(harness, mgmn2o4, tmp_path):
    harness({"mfal hf static": "collapsed", "mfal hf static spin 2": "ok"})
    labeler = VaspLabeler(ordering="fm", spin_ladder=["--++"], max_spin_attempts=3)
    (frame,) = labeler.label([mgmn2o4], "hf", workdir=tmp_path / "work")
    assert frame.status == "ok", frame.status_reason
    assert frame.energy == pytest.approx(E_GOLDEN) and frame.cost == pytest.approx(2 * COST)
    assert frame.calc["ordering"] == "--++" and _signs(frame.calc["initial_magmoms"]) == "--++"
    assert [(a["ordering"], a["status"], a["kept"]) for a in frame.calc["attempts"]] == [
        ("fm", "quarantined", False),
        ("--++", "ok", True),
    ]  # the ladder stopped at the first accepted state: 2 runs, not 3


def test_one_spin_attempt_means_no_ladder_and_no_scf_retry_for_a_collapse(harness, mgmn2o4, tmp_path):
    harness({"mfal hf static": "collapsed"})
    (frame,) = VaspLabeler(ordering="--++", max_spin_attempts=1).label([mgmn2o4], "hf", workdir=tmp_path)
    assert frame.status == "quarantined" and "collapse" in frame.status_reason
    assert frame.cost == pytest.approx(COST) and len(frame.calc["attempts"]) == 1


@pytest.mark.parametrize("keep_lowest", [True, False])
def test_keep_lowest_energy_runs_every_rung_and_keeps_the_lower(harness, mgmn2o4, tmp_path, keep_lowest):
    harness({"mfal hf static": "ok", "mfal hf static spin 2": "lower"})
    labeler = VaspLabeler(ordering="--++", spin_ladder=["++--"], keep_lowest_energy=keep_lowest)
    (frame,) = labeler.label([mgmn2o4], "hf", workdir=tmp_path / "work")
    assert frame.status == "ok", frame.status_reason
    attempts = frame.calc["attempts"]
    if keep_lowest:
        assert frame.energy == pytest.approx(E_GOLDEN - 0.5) and frame.calc["ordering"] == "++--"
        assert [a["status"] for a in attempts] == ["ok", "ok"] and [a["kept"] for a in attempts] == [False, True]
        assert [a["energy"] for a in attempts] == pytest.approx([E_GOLDEN, E_GOLDEN - 0.5])
        assert frame.cost == pytest.approx(2 * COST)
    else:  # the first accepted state ends the ladder
        assert frame.energy == pytest.approx(E_GOLDEN) and len(attempts) == 1 and frame.cost == pytest.approx(COST)


def test_unconverged_spin_state_gets_the_scf_retry_then_the_next_ordering(harness, mgmn2o4, tmp_path):
    """SCF at NELM: one rerun with retry_incar_settings on the same moments, then the next ordering — still with the
    robust settings (its job is named ``... spin 2 retry``; without them the harness has no golden and it fails)."""
    harness({"mfal hf static": "unconverged", "mfal hf static retry": "unconverged",
             "mfal hf static spin 2 retry": "lower"})  # fmt: skip
    labeler = VaspLabeler(ordering="--++", spin_ladder=["++--"])
    (frame,) = labeler.label([mgmn2o4], "hf", workdir=tmp_path / "work")
    assert frame.status == "ok", frame.status_reason
    attempts = frame.calc["attempts"]
    assert [(a["ordering"], a["retry_incar"], a["status"]) for a in attempts] == [
        ("--++", False, "quarantined"), ("--++", True, "quarantined"), ("++--", True, "ok"),
    ]  # fmt: skip
    assert "electronic SCF hit NELM=20" in attempts[0]["reason"]
    assert frame.energy == pytest.approx(E_GOLDEN - 0.5) and frame.cost == pytest.approx(3 * COST)


def test_same_start_is_not_run_twice(harness, mgmn2o4, tmp_path):
    """afm-b of this cell (layers along b: Mn +,+,−,−) is the configured ++-- again: skipped, so the collapse is
    retried with fm only (rung 3, job ``... spin 3``)."""
    harness({"mfal hf static": "collapsed", "mfal hf static spin 3": "collapsed"})
    labeler = VaspLabeler(ordering="++--", spin_ladder=["afm-b", "fm"], max_spin_attempts=3)
    (frame,) = labeler.label([mgmn2o4], "hf", workdir=tmp_path / "work")
    assert [a["ordering"] for a in frame.calc["attempts"]] == ["++--", "fm"]
    assert frame.status == "quarantined" and frame.cost == pytest.approx(2 * COST)


def test_spin_problems_classify_the_quality_reasons():
    species = ["Mg", "Mn", "Mn", "O"]
    collapsed = check_hf_moments([0, 0.3, 4.0, 0], species, [0, 5, 5, 0])
    flipped = check_hf_moments([0, -4.0, 4.0, 0], species, [0, 5, 5, 0])
    assert spin_problems(collapsed) == ["collapsed"] and spin_problems(flipped) == ["flipped"]
    assert spin_problems("electronic SCF hit NELM=60 in ionic step 1 (not converged)") == ["unconverged"]
    assert is_scf_problem("run stopped by the walltime handler (step interrupted)") and not is_scf_problem(flipped)
    assert spin_problems("max |F| = 80.0 eV/Å ≥ max_force=50.0 eV/Å (implausible)") == [] == spin_problems(None)


def test_build_ladder_orders_guesses_then_orderings():
    rungs = L.build_ladder("afm", "model", max_attempts=4)
    assert [(r.ordering, r.source) for r in rungs] == [
        ("afm", "model"), ("afm", "chemistry"), ("fm", "model"), ("afm-a", "model"),
    ]  # fmt: skip
    chem = L.build_ladder("fm", "table", max_attempts=3, has_prediction=True)
    assert [(r.ordering, r.source) for r in chem] == [("fm", "table"), ("fm", "model"), ("afm", "table")]
    assert len(L.build_ladder("fm", "table", max_attempts=1)) == 1


def test_choose_and_next_step():
    def att(status, energy, reason=None):
        return L.Attempt(ordering="fm", magmom_source="table", initial_magmoms=[5.0], status=status,
                         reason=reason, energy=energy, cost=1.0)  # fmt: skip

    collapse = att("quarantined", -1.0, "lost moment / low-spin collapse on 1 of 1 magnetic sites")
    ok_hi, ok_lo, crash = att("ok", -1.0), att("ok", -2.0), att("failed", None, "VASP job failed: x")
    assert L.next_step([collapse]) and not L.next_step([ok_hi]) and not L.next_step([crash])
    assert L.next_step([ok_hi], keep_lowest_energy=True) and not L.next_step([crash], keep_lowest_energy=True)
    assert L.choose([collapse, ok_hi, ok_lo]) == 1 and L.choose([collapse, ok_hi, ok_lo], keep_lowest_energy=True) == 2
    assert L.choose([collapse, crash]) is None and L.total_cost([collapse, crash]) == 2.0


def test_ladder_options_are_validated_with_the_campaign_config():
    from mfal.errors import ConfigError
    from mfal.label.config import parse_labeler_spec

    spec = parse_labeler_spec({"kind": "vasp", "options": {"magmom_source": "model", "max_spin_attempts": 4,
                                                           "spin_ladder": ["afm", "+-+-"], "keep_lowest_energy": True}})  # fmt: skip
    assert spec.options.max_spin_attempts == 4 and spec.options.spin_ladder == ["afm", "+-+-"]
    with pytest.raises(ConfigError, match="max_spin_attempt: unknown key"):
        parse_labeler_spec({"kind": "vasp", "options": {"max_spin_attempt": 2}}, where="labelers.hf")
    with pytest.raises(ConfigError, match="spin_ladder"):
        parse_labeler_spec({"kind": "vasp", "options": {"spin_ladder": ["ferri"]}})
    with pytest.raises(ConfigError, match="max_spin_attempts"):
        parse_labeler_spec({"kind": "vasp", "options": {"max_spin_attempts": 0}})
    with pytest.raises(ConfigError, match="magmom_source"):
        parse_labeler_spec({"kind": "vasp", "options": {"magmom_source": "guess"}})
