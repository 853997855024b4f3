"""VASP labeler end to end through atomate2's mock-VASP harness on real golden outputs (see conftest.py)."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from pymatgen.io.vasp import Incar, Outcar, Poscar

from mfal.label import get_labeler
from mfal.label.vasp import initial_magmoms, make_vasp_maker, prepare_structure, with_initial_magmoms

HF_GOLDEN = "atomate2_MgMn2O4_static_afm"
LF_GOLDEN = "atomate2_Si_static_nonspin"
CHECK = {
    "incar_settings": ["ISPIN", "MAGMOM", "LDAU", "LDAUU", "LORBIT"],
    "check_inputs": ["incar", "poscar"],
}


@pytest.fixture
def written_incars(monkeypatch):
    """The INCARs our makers wrote, recorded when the harness checks them (before outputs replace them)."""
    import atomate2.utils.testing.vasp as harness

    seen: list[Incar] = []
    original = harness._check_incar

    def _record(ref_path, incar_settings, incar_exclude):
        seen.append(Incar.from_file("INCAR"))
        return original(ref_path, incar_settings, incar_exclude)

    monkeypatch.setattr(harness, "_check_incar", _record)
    return seen


def _golden_structure(test_data, folder):
    """The golden input structure, with the golden MAGMOM as ``magmom`` site property where it has one."""
    structure = Poscar.from_file(test_data / "vasp" / folder / "inputs" / "POSCAR.gz").structure
    incar = Incar.from_file(test_data / "vasp" / folder / "inputs" / "INCAR.gz")
    if "MAGMOM" in incar:
        structure.add_site_property("magmom", incar["MAGMOM"])
    return structure


def test_hf_label_through_the_harness(mock_vasp, written_incars, test_data, tmp_path):
    mock_vasp({"mfal hf static": HF_GOLDEN}, {"mfal hf static": CHECK})
    structure = _golden_structure(test_data, HF_GOLDEN)
    (frame,) = get_labeler("vasp").label([structure], "hf", workdir=tmp_path, campaign="t", round=1)
    assert frame.status == "ok", frame.status_reason
    assert frame.source == "vasp" and frame.fidelity == "hf" and frame.round == 1
    assert frame.calc["ordering"] == "site_property" and frame.calc["magmom_source"] == "site_property"
    # the INCAR the HF maker wrote (checked by the harness against the golden inputs, and here)
    (written,) = written_incars
    assert written["ISPIN"] == 2 and written["LDAU"] is True and written["LDAUU"] == [0, 3.9, 0]
    assert written["MAGMOM"][2:6] == [-3.823, -3.823, 3.823, 3.823] and written["LORBIT"] == 11
    # the parsed frame against numbers read independently from the golden OUTCAR
    outcar = test_data / "vasp" / HF_GOLDEN / "outputs" / "OUTCAR.gz"
    text = gzip.open(outcar, "rt").read()
    assert frame.energy == pytest.approx(
        float(re.findall(r"energy\(sigma->0\) =\s+(\S+)", text)[-1]), abs=1e-6
    )
    block = text.rsplit("TOTAL-FORCE (eV/Angst)", 1)[1].splitlines()[2 : 2 + len(structure)]
    np.testing.assert_allclose(frame.forces, [[float(x) for x in ln.split()[3:6]] for ln in block], atol=1e-6)
    np.testing.assert_allclose(frame.magmoms, [s["tot"] for s in Outcar(str(outcar)).magnetization])
    assert frame.cost == pytest.approx(199.502)  # OUTCAR: 199.502 s elapsed on 1 core
    assert frame.calc["hubbard_u"] == {"Mn": 3.9} and frame.task_id


def test_lf_label_through_the_harness(mock_vasp, written_incars, test_data, tmp_path):
    # the golden Si inputs come from atomate2's StaticMaker, which sets LORBIT=11; our LF set drops it
    check = {**CHECK, "incar_settings": ["ISPIN", "MAGMOM", "LDAU", "LDAUU"]}
    mock_vasp({"mfal lf static": LF_GOLDEN}, {"mfal lf static": check})
    structure = _golden_structure(test_data, LF_GOLDEN)
    structure.add_site_property("magmom", [3.0, 3.0])  # must be dropped for LF
    (frame,) = get_labeler("vasp").label([structure], "lf", workdir=tmp_path)
    assert frame.status == "ok", frame.status_reason
    (written,) = written_incars
    assert written.get("ISPIN", 1) == 1 and "MAGMOM" not in written and "LORBIT" not in written
    assert frame.magmoms is None and frame.calc["ispin"] == 1
    assert frame.energy == pytest.approx(-10.78229092)


def test_harness_catches_an_ispin_mismatch(mock_vasp, test_data, tmp_path):
    """The LF maker against the HF golden inputs: the harness rejects ISPIN, the frame fails with that reason."""
    mock_vasp({"mfal lf static": HF_GOLDEN}, {"mfal lf static": {"incar_settings": ["ISPIN"]}})
    structure = _golden_structure(test_data, HF_GOLDEN)
    (frame,) = get_labeler("vasp").label([structure], "lf", workdir=tmp_path)
    assert frame.status == "failed"
    assert "ISPIN" in frame.status_reason and "expected 2, got 1" in frame.status_reason


def test_makers_differ_in_one_input_set(lifepo4):
    hf, lf = make_vasp_maker("hf"), make_vasp_maker("lf")
    assert type(hf) is type(lf) and hf.name != lf.name
    s_hf, s_lf = prepare_structure(lifepo4, "hf"), prepare_structure(lifepo4, "lf")
    incar_hf = hf.input_set_generator.get_input_set(s_hf, potcar_spec=True).incar
    incar_lf = lf.input_set_generator.get_input_set(s_lf, potcar_spec=True).incar
    assert incar_hf["ISPIN"] == 2 and incar_lf["ISPIN"] == 1
    assert incar_hf["LDAUU"] == incar_lf["LDAUU"] and 5.3 in incar_hf["LDAUU"]  # MP U(Fe) = 5.3 eV in both
    assert "MAGMOM" not in incar_lf and "LORBIT" not in incar_lf
    diff = {k for k in set(incar_hf) | set(incar_lf) if incar_hf.get(k) != incar_lf.get(k)}
    assert diff == {"ISPIN", "MAGMOM", "LORBIT"}


def test_initial_magmoms(lifepo4):
    fe = [i for i, s in enumerate(lifepo4) if s.specie.symbol == "Fe"]
    m = initial_magmoms(lifepo4)
    assert [m[i] for i in fe] == [5.0] * 4 and m[0] == 0.6
    assert initial_magmoms(lifepo4, {"Fe": 4.0})[fe[0]] == 4.0
    afm = lifepo4.copy()
    afm.add_site_property(
        "magmom", [(-5.0 if i in fe[:2] else 5.0) if i in fe else 0.0 for i in range(len(afm))]
    )
    # a model's |m| prediction keeps the AFM signs of the existing order
    predicted = with_initial_magmoms(afm, [3.7 if i in fe else 0.01 for i in range(len(afm))])
    assert [predicted.site_properties["magmom"][i] for i in fe] == [-3.7, -3.7, 3.7, 3.7]
    assert initial_magmoms(predicted, {"Fe": 1.0})[fe[0]] == -3.7  # the site property wins


@pytest.fixture
def stopped_golden(test_data, tmp_path):
    """The Si golden folder plus the STOPCAR that custodian's WalltimeHandler leaves when it stops a run."""
    import shutil

    root = tmp_path / "golden"
    shutil.copytree(test_data / "vasp" / LF_GOLDEN, root / "stopped")
    (root / "stopped" / "outputs" / "STOPCAR").write_text("LSTOP = .TRUE.\n")
    shutil.copytree(test_data / "vasp" / LF_GOLDEN, root / "ok")
    return root


@pytest.mark.parametrize("retry_ok", [True, False])
def test_quarantined_run_gets_one_retry(
    monkeypatch, stopped_golden, written_incars, test_data, tmp_path, retry_ok
):
    from atomate2.utils.testing.vasp import monkeypatch_vasp

    check = {"incar_settings": ["ISPIN", "MAGMOM", "LDAU"], "check_inputs": ["incar", "poscar"]}
    harness = monkeypatch_vasp(monkeypatch, stopped_golden)
    register = next(harness)
    register(
        {"mfal lf static": "stopped", "mfal lf static retry": "ok" if retry_ok else "stopped"},
        {"mfal lf static": check, "mfal lf static retry": check},
    )
    structure = _golden_structure(test_data, LF_GOLDEN)
    (frame,) = get_labeler("vasp").label([structure], "lf", workdir=tmp_path / "work")
    first, second = written_incars
    assert "ALGO" not in first or first["ALGO"] != "All"
    assert second["ALGO"] == "All" and second["NELM"] == 200
    assert frame.cost == pytest.approx(2 * 134.136)  # both attempts: 33.534 s × 4 cores each
    if retry_ok:
        assert frame.status == "ok" and frame.energy == pytest.approx(-10.78229092)
    else:
        assert frame.status == "quarantined"
        assert (
            frame.status_reason.startswith("after 1 retry (ALGO=All, NELM=200): ")
            and "walltime" in frame.status_reason
        )
    next(harness, None)  # undo the patches


def test_cli_label_vasp_with_per_site_magmoms(mock_vasp, written_incars, test_data, tmp_path):
    """``mfal label --labeler vasp``: a JSON structure file carries the AFM order as the magmom site property."""
    import json

    from typer.testing import CliRunner

    from flows.cli import app
    from mfal.store import open_store

    mock_vasp({"mfal hf static": HF_GOLDEN}, {"mfal hf static": CHECK})
    structure = _golden_structure(test_data, HF_GOLDEN)
    (tmp_path / "afm.json").write_text(json.dumps(structure.as_dict()))
    args = ["label", "--labeler", "vasp", "--fidelity", "hf", str(tmp_path / "afm.json")]
    args += ["--store", str(tmp_path / "store"), "--workdir", str(tmp_path / "work"), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 ok, 0 failed, 0 quarantined; 1 new" in result.output and "200 core-s" in result.output
    assert written_incars[0]["MAGMOM"][2:6] == [-3.823, -3.823, 3.823, 3.823]
    with open_store(tmp_path / "store", create=False) as fs:
        (frame,) = fs.training_frames(fidelity="hf")
    assert frame.source == "vasp" and frame.energy == pytest.approx(-104.17424802)


def test_no_potcars_is_one_label_error(monkeypatch, tmp_path):
    """Without the harness and without POTCARs the labeler cannot run at all: LabelError, one line."""
    from pymatgen.core import SETTINGS, Lattice, Structure

    from mfal.errors import LabelError

    monkeypatch.delitem(SETTINGS, "PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    si = Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    with pytest.raises(LabelError, match="PMG_VASP_PSP_DIR") as err:
        get_labeler("vasp").label([si, si], "lf", workdir=tmp_path)
    assert "\n" not in str(err.value)
    assert len(list(tmp_path.glob("job_*"))) == 1  # stopped after the first structure


def test_makers_run_the_custodian_handler_set_from_the_config():
    """The maker custodian runs takes mfal's handler set (atomate2's run_vasp defaults) and the configured wall time."""
    from mfal.label.handlers import DEFAULT_HANDLERS
    from mfal.label.vasp import VaspConfig, VaspLabeler, make_vasp_maker

    names = [type(h).__name__ for h in make_vasp_maker("hf").run_vasp_kwargs["handlers"]]
    assert names == list(DEFAULT_HANDLERS)
    lab = VaspLabeler(config=VaspConfig(custodian={"wall_time": 3600}))
    handlers = lab.maker("hf").run_vasp_kwargs["handlers"]
    assert type(handlers[-1]).__name__ == "WalltimeHandler" and handlers[-1].wall_time == 3600
    assert len(handlers) == len(DEFAULT_HANDLERS) + 1
