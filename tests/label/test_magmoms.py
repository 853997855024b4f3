"""One initial-moment module for VASP and CP2K: chemistry, orderings, and the inputs they produce."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.vasp import Incar

from mfal.errors import ConfigError, DataError
from mfal.label import magmoms as M
from mfal.label.inputs import write_inputs


def _fe(structure):
    return [i for i, site in enumerate(structure) if site.specie.symbol == "Fe"]


@pytest.fixture(scope="module")
def lmfp(lifepo4):
    """LiMn0.5Fe0.5PO4: two of the four Fe of the olivine cell replaced by Mn."""
    s = lifepo4.copy()
    fe = _fe(s)
    for i in (fe[0], fe[2]):
        s.replace(i, "Mn")
    return s


def test_oxidation_state_moments(lifepo4):
    """High-spin |m| from the guessed oxidation state: Fe2+ 4 μB; one Li vacancy makes one Fe3+ (5 μB)."""
    m = M.magnitudes(lifepo4, {"Fe": 5.0}, default=0.6, source="oxidation")
    assert [m[i] for i in _fe(lifepo4)] == [4.0] * 4 and m[0] == 0.6  # Li keeps the table default
    assert M.magnitudes(lifepo4, {"Fe": 5.0}, source="table")[_fe(lifepo4)[0]] == 5.0
    delithiated = lifepo4.copy()
    delithiated.remove_sites([0])
    fe = [m for m, site in zip(M.magnitudes(delithiated, {}, source="oxidation"), delithiated, strict=True)
          if site.specie.symbol == "Fe"]  # fmt: skip
    assert sorted(fe) == [4.0, 4.0, 4.0, 5.0]
    assert M.high_spin_moment("Mn", 2) == 5.0 and M.high_spin_moment("Li", 1) is None


def test_orderings(lifepo4):
    fe = _fe(lifepo4)
    signs = {
        o: [M.initial_moments(lifepo4, {"Fe": 4.0}, ordering=o)[0][i] for i in fe] for o in M.NAMED_ORDERINGS
    }
    assert signs["fm"] == [4.0] * 4
    assert signs["afm"] == [4.0, -4.0, 4.0, -4.0]
    for o in ("afm-a", "afm-b", "afm-c"):
        assert sorted(signs[o]) == [-4.0, -4.0, 4.0, 4.0], o  # two up, two down
    moments, record = M.initial_moments(lifepo4, {"Fe": 4.0}, ordering="++--")
    assert [moments[i] for i in fe] == [4.0, 4.0, -4.0, -4.0] and record == {
        "ordering": "++--",
        "magmom_source": "table",
    }
    assert all(moments[i] == 0.0 for i in range(len(lifepo4)) if i not in fe)
    with pytest.raises(ConfigError, match="4 magnetic sites"):
        M.initial_moments(lifepo4, {"Fe": 4.0}, ordering="+-")
    with pytest.raises(ValueError, match="ordering='ferri'"):
        M.check_ordering("ferri")


def test_site_property_wins(lifepo4):
    s = lifepo4.copy()
    s.add_site_property("magmom", [3.0 if i in _fe(s) else 0.0 for i in range(len(s))])
    moments, record = M.initial_moments(s, {"Fe": 5.0}, ordering="afm")
    assert [moments[i] for i in _fe(s)] == [3.0] * 4 and record["ordering"] == "site_property"


def test_bad_ordering_fails_at_config_read():
    from mfal.label.config import parse_labeler_spec

    with pytest.raises(ConfigError, match=r"labelers\.hf\.options\.ordering"):
        parse_labeler_spec({"kind": "vasp", "options": {"ordering": "afmm"}}, "labelers.hf")
    with pytest.raises(ConfigError, match=r"labelers\.hf\.options\.ordering"):
        parse_labeler_spec({"kind": "cp2k", "options": {"ordering": "x"}}, "labelers.hf")
    spec = parse_labeler_spec({"kind": "cp2k", "options": {"magnetic_order": "fm"}})  # the old name
    assert spec.options.ordering == "fm" and spec.options.magnetic_order == "fm"


@pytest.mark.parametrize("which", ["lifepo4", "lmfp"])
def test_vasp_inputs_hf_afm_and_lf(which, request, tmp_path):
    """HF: ISPIN 2, MP +U, AFM MAGMOM with both signs on the transition metals; LF: ISPIN 1, +U, no MAGMOM."""
    structure = request.getfixturevalue(which)
    tm = [i for i, site in enumerate(structure) if site.specie.symbol in ("Fe", "Mn")]
    [hf_line] = write_inputs("vasp", "hf", [structure], tmp_path / "hf", ordering="afm")
    [lf_line] = write_inputs({"kind": "vasp"}, "lf", [structure], tmp_path / "lf")
    [hf_dir] = [p for p in (tmp_path / "hf").iterdir() if p.is_dir()]
    [lf_dir] = [p for p in (tmp_path / "lf").iterdir() if p.is_dir()]
    assert {p.name for p in hf_dir.iterdir()} == {"INCAR", "KPOINTS", "POSCAR", "POTCAR.spec"}
    hf, lf = Incar.from_file(hf_dir / "INCAR"), Incar.from_file(lf_dir / "INCAR")
    assert hf["ISPIN"] == 2 and hf["LDAU"] is True and 5.3 in hf["LDAUU"]
    signs = {m > 0 for m in (hf["MAGMOM"][i] for i in tm)}
    assert signs == {True, False} and all(abs(hf["MAGMOM"][i]) == 5.0 for i in tm)
    assert lf["ISPIN"] == 1 and "MAGMOM" not in lf and lf["LDAUU"] == hf["LDAUU"]
    assert "ISPIN=2" in hf_line and "+U Fe=5.3" in hf_line and "ordering=afm" in hf_line and "-5" in hf_line
    assert "ISPIN=1" in lf_line and "MAGMOM=none" in lf_line
    if which == "lmfp":
        assert "Mn=3.9" in hf_line
    assert (tmp_path / "hf" / "inputs.txt").read_text() == hf_line + "\n"


def test_cp2k_inputs_hf_afm_and_lf(lifepo4, tmp_path, cp2k_ready):
    fe = _fe(lifepo4)
    [hf_line] = write_inputs({"kind": "cp2k"}, "hf", [lifepo4], tmp_path / "hf")
    [lf_line] = write_inputs("cp2k", "lf", [lifepo4], tmp_path / "lf", ordering="afm")
    hf = next((tmp_path / "hf").glob("*/cp2k.inp")).read_text()
    lf = next((tmp_path / "lf").glob("*/cp2k.inp")).read_text()
    assert "UKS True" in hf and "MAGNETIZATION 4.0" in hf and "MAGNETIZATION -4.0" in hf
    assert "UKS False" in lf and "MAGNETIZATION 4" not in lf and "[eV] 4.0" in lf and "[eV] 4.0" in hf
    assert hf_line.endswith(
        "cp2k hf UKS multiplicity=1 +U Fe=4 MAGNETIZATION=4*0 4 -4 4 -4 20*0 ordering=afm"
    )
    assert "RKS multiplicity=1" in lf_line and "MAGNETIZATION=none" in lf_line
    assert len(fe) == 4


def test_inputs_refuse_teacher_and_bad_structures(lifepo4, tmp_path):
    with pytest.raises(ConfigError, match="writes no input files"):
        write_inputs("teacher", "hf", [lifepo4], tmp_path)
    bad = Structure(Lattice.cubic(3.0), ["Xx", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(DataError, match="unknown element symbol 'Xx'"):
        write_inputs("vasp", "hf", [lifepo4, bad], tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing written
