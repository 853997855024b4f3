"""Model-guided initial moments: |m| from a real MFCHGNet's HF moment head (warm-started from CHGNet 0.3.0 weights),
signs from the ordering — in the labeler, in ``mfal inputs --magmom-source model:CKPT`` and from a round's scores."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pymatgen.io.vasp import Incar, Poscar

from mfal.errors import DataError
from mfal.label import magmoms as M

MFAL = [sys.executable, "-c", "from flows.cli import main; main()"]
GOLDEN = "atomate2_MgMn2O4_static_afm"


@pytest.fixture(scope="module")
def model():
    from mfal.model import MFCHGNet

    return MFCHGNet.from_pretrained("0.3.0")


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def predicted(model, lifepo4):
    """The HF head's site moments of LiFePO4 (μB), straight from the model."""
    return np.asarray(model.predict(lifepo4, "hf", task="em")["m"], dtype=float)


def _fe(structure):
    return [i for i, site in enumerate(structure) if site.specie.symbol == "Fe"]


def test_model_moments_follow_predicted_magnitudes_and_ordering_signs(lifepo4, checkpoint, predicted):
    (from_ckpt,) = M.predict_magmoms(checkpoint, [lifepo4], "hf")  # loaded with weights_only
    np.testing.assert_allclose(from_ckpt, predicted, atol=1e-5)
    fe = _fe(lifepo4)
    assert all(2.5 < predicted[i] < 5.0 for i in fe)  # the pretrained head: high-spin Fe, not the table's 5
    tagged = M.attach_predicted(lifepo4, from_ckpt)
    for ordering, signs in (("fm", [1, 1, 1, 1]), ("afm", [1, -1, 1, -1]), ("--++", [-1, -1, 1, 1])):
        m = M.moments_from_model(tagged, ordering)
        np.testing.assert_allclose(np.abs(m), np.round(np.abs(predicted), 3), atol=1e-9)
        assert [np.sign(m[i]) for i in fe] == signs
        assert all(m[i] >= 0 for i in range(len(m)) if i not in fe)
        same, record = M.initial_moments(tagged, {"Fe": 5.0}, source="model", ordering=ordering)
        assert same == m and record == {"ordering": ordering, "magmom_source": "model"}


def test_model_source_without_prediction_falls_back_to_chemistry(lifepo4):
    moments, record = M.initial_moments(lifepo4, {"Fe": 5.0}, source="model", ordering="afm")
    assert [moments[i] for i in _fe(lifepo4)] == [4.0, -4.0, 4.0, -4.0]  # Fe2+ high spin
    assert record["magmom_source"] == "chemistry" and "mfal_predicted_magmom" in record["model_fallback"]
    with pytest.raises(DataError, match="mfal_predicted_magmom"):
        M.moments_from_model(lifepo4, "fm")
    with pytest.raises(DataError, match="3 values for a structure of 28 sites"):
        M.attach_predicted(lifepo4, [1.0, 2.0, 3.0])


def test_attach_scored_maps_round_scores_by_candidate_id(lifepo4):
    """A round's RoundScores (ids in score order) give each picked structure its own predicted moments."""
    from mfal.campaign.artifacts import RoundScores
    from mfal.uncertainty.scoring import FidelityScores

    n = len(lifepo4)
    picks = []
    for cid in ("c2", "c0"):
        s = lifepo4.copy()
        s.properties = {"candidate_id": cid, "origin": "rattle"}
        picks.append(s)

    def fscores(magmoms):
        k = len(magmoms) if magmoms is not None else 3
        return FidelityScores(scores={"force_std_max": [0.1] * k}, energy=[-1.0] * k,
                              forces=[[[0.0] * 3] * n] * k, magmoms=magmoms)  # fmt: skip

    moments = [[float(c)] * n for c in range(3)]  # candidate ck: every site k μB
    scores = RoundScores(model=["0" * 64], ids=["c0", "c1", "c2"],
                         fidelities={"lf": fscores(None), "hf": fscores(moments)})  # fmt: skip
    got = M.attach_scored(picks, scores, "hf")
    assert [s.site_properties[M.PREDICTED][0] for s in got] == [2.0, 0.0]
    assert [s.properties["candidate_id"] for s in got] == ["c2", "c0"]
    assert all(M.PREDICTED not in s.site_properties for s in M.attach_scored(picks, scores, "lf"))
    assert all(M.PREDICTED not in s.site_properties for s in M.attach_scored(picks, RoundScores(), "hf"))


def test_vasp_labeler_writes_model_moments(mock_vasp, monkeypatch, model, test_data, tmp_path):
    """magmom_source=model in the labeler: the INCAR MAGMOM is the head's |m| with the ordering's signs."""
    import atomate2.utils.testing.vasp as harness

    from mfal.label.vasp import VaspLabeler

    seen = []
    original = harness._check_incar
    monkeypatch.setattr(harness, "_check_incar", lambda *a: (seen.append(Incar.from_file("INCAR")), original(*a))[1])
    mock_vasp({"mfal hf static": GOLDEN}, {"mfal hf static": {"incar_settings": ["ISPIN"], "check_inputs": ["incar"]}})
    structure = Poscar.from_file(test_data / "vasp" / GOLDEN / "inputs" / "POSCAR.gz").structure
    pred = model.predict(structure, "hf", task="em")["m"]
    labeler = VaspLabeler(magmom_source="model", ordering="--++")
    (frame,) = labeler.label([M.attach_predicted(structure, pred)], "hf", workdir=tmp_path)
    assert frame.status == "ok", frame.status_reason
    expected = M.moments_from_model(M.attach_predicted(structure, pred), "--++")
    np.testing.assert_allclose(seen[0]["MAGMOM"], expected, atol=1e-9)
    assert [np.sign(expected[i]) for i in (2, 3, 4, 5)] == [-1, -1, 1, 1]
    assert frame.calc["magmom_source"] == "model" and frame.calc["initial_magmoms"] == expected


def test_cli_inputs_model_source_writes_the_predicted_magmom(lifepo4, checkpoint, predicted, tmp_path):
    cif = tmp_path / "LiFePO4.cif"
    lifepo4.to(filename=str(cif))
    p = subprocess.run([*MFAL, "inputs", str(cif), "--labeler", "vasp", "--fidelity", "hf", "--ordering", "afm",
                        "--magmom-source", f"model:{checkpoint}", "--out", str(tmp_path / "hf")],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "ordering=afm source=model" in p.stdout
    written = next((tmp_path / "hf").glob("*/POSCAR"))
    incar = Incar.from_file(written.parent / "INCAR")
    order = Poscar.from_file(written).structure  # the site order the INCAR refers to
    assert order.composition == lifepo4.composition
    expected = M.moments_from_model(M.attach_predicted(lifepo4, predicted), "afm")
    np.testing.assert_allclose(incar["MAGMOM"], expected, atol=2e-3)  # 1e-5 μB model noise + 0.001 rounding
    fe = _fe(lifepo4)
    assert [np.sign(incar["MAGMOM"][i]) for i in fe] == [1, -1, 1, -1]
    assert incar["MAGMOM"][fe[0]] != 4.0 and incar["MAGMOM"][fe[0]] != 5.0  # not a table or oxidation value


def test_write_inputs_chemistry_source_and_lf(lifepo4, checkpoint, tmp_path):
    """chemistry = oxidation-state high spin (Fe2+ 4 μB, table says 5); LF writes no MAGMOM whatever the source."""
    from mfal.label.inputs import write_inputs

    fe = _fe(lifepo4)
    (chem,) = write_inputs("vasp", "hf", [lifepo4], tmp_path / "c", ordering="afm", magmom_source="chemistry")
    (table,) = write_inputs("vasp", "hf", [lifepo4], tmp_path / "t", ordering="afm")
    incar = Incar.from_file(next((tmp_path / "c").glob("*/INCAR")))
    assert [incar["MAGMOM"][i] for i in fe] == [4.0, -4.0, 4.0, -4.0] and "source=chemistry" in chem
    assert "source=table" in table and " -5" in table
    (lf,) = write_inputs("vasp", "lf", [lifepo4], tmp_path / "l", magmom_source=f"model:{checkpoint}")
    assert "ISPIN=1" in lf and "MAGMOM=none" in lf


@pytest.mark.parametrize("value", ["model:{tmp}/missing.pt", "model:", "magic"])
def test_cli_inputs_bad_magmom_source_is_one_line_exit_2(lifepo4, tmp_path, value):
    cif = tmp_path / "LiFePO4.cif"
    lifepo4.to(filename=str(cif))
    arg = value.format(tmp=tmp_path)
    p = subprocess.run([*MFAL, "inputs", str(cif), "--labeler", "vasp", "--fidelity", "hf", "--magmom-source", arg,
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "--magmom-source" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o").exists()


def test_cli_inputs_refuses_a_file_that_is_not_a_checkpoint(lifepo4, tmp_path):
    cif = tmp_path / "LiFePO4.cif"
    lifepo4.to(filename=str(cif))
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    p = subprocess.run([*MFAL, "inputs", str(cif), "--labeler", "vasp", "--fidelity", "hf", "--magmom-source",
                        f"model:{tmp_path / 'bad.pt'}", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "bad.pt" in p.stderr
    assert not (tmp_path / "o").exists()
