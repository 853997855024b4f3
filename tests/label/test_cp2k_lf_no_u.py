"""A user makes the LF restricted PBE without +U (``hubbard_u: {}``), the LF that converges on Mn-substituted and
delithiated LMFP cells (docs/labeling.md, "LF without U"): the labeler climbs the smeared ladder, writes no
+U and no ROKS, and a real CP2K run of a small odd-electron Mn cell converges to a non-magnetic label.

Also the regression that made a campaign's CP2K labeler (built from its config) run the old one-retry ladder.
"""

from __future__ import annotations

import re

from pymatgen.core import Lattice, Structure

from mfal.label.config import build_labeler
from mfal.label.cp2k import Cp2kLabeler
from mfal.label.cp2k_input import write_cp2k_input
from mfal.label.cp2k_settings import DEFAULT_LADDER, NO_U_LADDER, Cp2kSettings

#: minimal basis/cutoff so the real run takes seconds (the production recipe is DZVP, 400/50 Ry)
FAST = {"basis": "SZV-MOLOPT-SR-GTH", "cutoff_ry": 200.0, "rel_cutoff_ry": 30.0, "omp_threads": 1}


def li2mno2() -> Structure:
    """A 5-atom Li2MnO2 test cell: 3 + 3 + 15 + 6 + 6 = 33 valence electrons (odd, like Li0.75FePO4)."""
    return Structure(
        Lattice.cubic(4.2), ["Li", "Li", "Mn", "O", "O"],
        [[0, 0, 0], [0.5, 0, 0.5], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]],
    )  # fmt: skip


def _kw(text: str, key: str) -> list[str]:
    return re.findall(rf"^\s*{key}\s+(\S+)", text, re.M)


def test_a_campaign_cp2k_labeler_climbs_the_measured_ladder():
    """Built from a campaign's labeler spec, the CP2K labeler keeps the default ladder (not [base, retry]) and
    the options the user set."""
    lab = build_labeler({"kind": "cp2k", "options": {"omp_threads": 1}})
    assert lab.settings.omp_threads == 1
    assert [r.name for r in lab.settings.rungs("restricted")] == [r["name"] for r in DEFAULT_LADDER["restricted"]]
    assert [r.name for r in lab.settings.rungs("unrestricted")] == [
        r["name"] for r in DEFAULT_LADDER["unrestricted"]
    ]
    old = build_labeler({"kind": "cp2k", "options": {"retry": {"max_scf": 50}}})
    assert [r.name for r in old.settings.rungs("restricted")] == ["base", "retry"]


def test_no_u_lf_takes_the_smeared_ladder_and_writes_no_u_no_roks(tmp_path, cp2k_ready):
    """``hubbard_u: {}``: restricted and odd cells both start on smeared RKS (no ROKS, no DFT_PLUS_U); a +U that
    acts on no element of the cell counts as no +U; HF keeps the UKS ladder; a user ladder still wins."""
    st = Cp2kSettings(**FAST, hubbard_u={})
    assert not st.plus_u_on({"Li", "Mn", "O"})
    assert Cp2kSettings().plus_u_on({"Li", "Mn", "O"}) and not Cp2kSettings().plus_u_on({"Li", "Co", "O"})
    names = [r["name"] for r in NO_U_LADDER]
    for treatment in ("restricted", "open_shell"):
        assert [r.name for r in st.rungs(treatment, plus_u=False)] == names
    assert [r.name for r in st.rungs("unrestricted", plus_u=False)] == [
        r["name"] for r in DEFAULT_LADDER["unrestricted"]
    ]
    mine = Cp2kSettings(hubbard_u={}, ladder={"open_shell": [{"name": "mine"}]})
    assert [r.name for r in mine.rungs("open_shell", plus_u=False)] == ["mine"]

    first = st.rungs("open_shell", plus_u=False)[0].settings
    inp = write_cp2k_input(li2mno2(), "lf", first, tmp_path / "lf", data_dir=cp2k_ready).read_text()
    assert "DFT_PLUS_U" not in inp and "ROKS" not in inp and "&SMEAR" in inp
    assert _kw(inp, "UKS") == ["False"] and _kw(inp, "MULTIPLICITY") == ["1"]
    assert [float(x) for x in _kw(inp, "ELEC_TEMP")] == [1000.0]
    assert _kw(inp, "ALPHA") == ["0.1"] and _kw(inp, "ADDED_MOS") == ["40"]


def test_real_cp2k_no_u_lf_of_an_odd_mn_cell_converges(tmp_path, cp2k_ready, capsys):
    """Real CP2K: the odd-electron Mn cell at LF without U converges on a smeared rung (RKS, fractional
    occupations), with zero moments, finite forces and its cost; the frame says which rung and that no +U was
    applied. (On this toy SZV cell the Broyden rung reached its 200-step limit once and Pulay converged.)"""
    lab = Cp2kLabeler(**FAST, hubbard_u={})
    [doc] = lab.label([li2mno2()], "lf", workdir=tmp_path)
    with capsys.disabled():
        att = doc.calc["attempts"]
        print(f"\n[cp2k Li2MnO2 LF no U] {[(a['rung'], a['status'], a['scf_steps']) for a in att]}, "
              f"{doc.cost:.0f} core-s")  # fmt: skip
    assert doc.status == "ok", doc.status_reason
    assert doc.calc["scf_rung"] in [r["name"] for r in NO_U_LADDER] and doc.calc["scf_treatment"] == "open_shell"
    assert [a["rung"] for a in doc.calc["attempts"]] == [r["name"] for r in NO_U_LADDER][: len(att)]
    assert doc.magmoms is None and doc.cost > 0 and doc.calc["hubbard_u"] == {}
    assert len(doc.forces) == 5 and all(abs(f) < 50 for row in doc.forces for f in row)
