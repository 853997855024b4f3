"""The campaign label step keeps each DFT label's raw outputs in the store's blob store, linked from the frame.

HF: the real VASP labeler (atomate2 makers, jobflow, TaskDoc, our parser) with atomate2's mock-VASP harness
copying the real MgMn2O4 outputs in (no VASP binary or POTCAR can exist here). A failed label: the harness
rejecting the LF inputs, and a labeler stub returning a quarantined frame whose run dir is custodian's real
ZBRENT failure (no VASP can run here to produce one).
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile

import pytest
from pymatgen.io.vasp import Incar, Poscar

from mfal.campaign.artifacts import Candidate, Candidates, RoundDir, Selection
from mfal.campaign.label import label_round
from mfal.campaign.prepare import prepare
from mfal.fileio import read_json
from mfal.label import provenance
from mfal.store import FrameDoc, open_store

HF_GOLDEN = "atomate2_MgMn2O4_static_afm"
CHECK = {"incar_settings": ["ISPIN", "MAGMOM", "LDAUU"], "check_inputs": ["incar", "poscar"]}


@pytest.fixture
def harness(monkeypatch, test_data):
    from atomate2.utils.testing.vasp import monkeypatch_vasp

    gen = monkeypatch_vasp(monkeypatch, test_data / "vasp")
    yield next(gen)
    next(gen, None)


@pytest.fixture
def bundles(monkeypatch):
    """Every call of bundle_outputs (the spy passes through to the real function)."""
    calls: list[str] = []
    real = provenance.bundle_outputs

    def spy(run_dir, **kw):
        calls.append(str(run_dir))
        return real(run_dir, **kw)

    monkeypatch.setattr(provenance, "bundle_outputs", spy)
    return calls


def _campaign(tmp_path, make_config, save_config, test_data, picks, labeler="vasp"):
    """A prepared campaign whose round 0 has one candidate (the golden MgMn2O4 cell) picked at ``picks``."""
    cfg = make_config(tmp_path, labelers={"lf": {"kind": labeler}, "hf": {"kind": labeler}})
    root = tmp_path / "run"
    prepare(save_config(tmp_path, cfg), root)
    golden = test_data / "vasp" / HF_GOLDEN / "inputs"
    s = Poscar.from_file(golden / "POSCAR.gz").structure
    s.add_site_property("magmom", Incar.from_file(golden / "INCAR.gz")["MAGMOM"])
    rd = RoundDir(root, 0)
    rd.save_candidates(Candidates(items=[Candidate(id="c0", origin="golden", structure=s)]))
    rd.save_selection(Selection(picks={f: (["c0"] if f in picks else []) for f in ("lf", "hf")}))
    return root, rd


def _stored(root) -> list[FrameDoc]:
    with open_store(root) as store:
        return store.query_frames()


def _bundle(root, frame) -> dict[str, bytes]:
    link = frame.calc["raw_outputs"]
    with open_store(root) as store:
        data = store.get_blob(link["key"], link["sha256"])
    assert len(data) == link["bytes"]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_hf_label_links_its_outputs_and_a_resume_keeps_the_link(
    tmp_path, make_config, save_config, test_data, harness, bundles, monkeypatch, mfal_cli
):
    harness({"mfal hf static": HF_GOLDEN}, {"mfal hf static": CHECK})
    root, rd = _campaign(tmp_path, make_config, save_config, test_data, picks={"hf"})

    # first run dies after the task file is written, before the store write (as kill -9 at after_label)
    import mfal.campaign.label as step

    class Killed(Exception):
        pass

    def die(name):
        if name == "after_label":
            raise Killed

    monkeypatch.setattr(step, "fault_point", die)
    with pytest.raises(Killed):
        label_round(root, 0, "hf")
    assert rd.task_path("hf", "c0").is_file() and _stored(root) == [] and len(bundles) == 1
    monkeypatch.setattr(step, "fault_point", lambda name: None)

    out = label_round(root, 0, "hf")
    assert out["n_reused"] == 1 and out["n_ok"] == 1
    assert len(bundles) == 1  # the resume took the label and its link from the task file
    (frame,) = _stored(root)
    assert frame.status == "ok" and frame.source == "vasp" and frame.task_dir
    members = _bundle(root, frame)
    golden_outcar = gzip.decompress((test_data / "vasp" / HF_GOLDEN / "outputs" / "OUTCAR.gz").read_bytes())
    assert gzip.decompress(members["OUTCAR.gz"]) == golden_outcar
    assert {"INCAR.gz", "POSCAR.gz", "vasprun.xml.gz", "custodian.json.gz", "MANIFEST.json"} <= set(members)
    assert "POTCAR" not in members
    # the frame id is the labeler's (the link does not enter it)
    (task,) = [FrameDoc.model_validate(d) for d in read_json(rd.task_path("hf", "c0"))]
    assert task.frame_id == frame.frame_id and task.calc["raw_outputs"] == frame.calc["raw_outputs"]
    # the job directory can go: the store has what it held
    shutil.rmtree(frame.task_dir)
    with open_store(root) as store:
        files = provenance.fetch_raw_outputs(store, frame.frame_id, tmp_path / "back")
    assert (tmp_path / "back" / "OUTCAR.gz").is_file() and files[-1].name == "MANIFEST.json"
    # and a user gets them back from the command line
    code, out, err = mfal_cli(["raw", frame.frame_id, "--dir", str(root), "--out", str(tmp_path / "cli")])
    assert code == 0 and f"of frame {frame.frame_id}" in out, err
    assert gzip.decompress((tmp_path / "cli" / "OUTCAR.gz").read_bytes()) == golden_outcar


def test_failed_label_keeps_its_inputs(tmp_path, make_config, save_config, test_data, harness, bundles):
    """LF maker against the HF golden inputs: the harness refuses ISPIN 1; the INCAR that caused it is kept."""
    harness({"mfal lf static": HF_GOLDEN}, {"mfal lf static": {"incar_settings": ["ISPIN"]}})
    root, _ = _campaign(tmp_path, make_config, save_config, test_data, picks={"lf"})
    out = label_round(root, 0, "lf")
    assert out["n_failed"] == 1
    (frame,) = _stored(root)
    assert frame.status == "failed" and "ISPIN" in frame.status_reason
    members = _bundle(root, frame)
    incar = next(v for k, v in members.items() if k.startswith("INCAR"))
    incar = gzip.decompress(incar) if incar[:2] == b"\x1f\x8b" else incar
    assert Incar.from_str(incar.decode())["ISPIN"] == 1


def test_quarantined_label_keeps_the_failure_output(
    tmp_path, make_config, save_config, test_data, monkeypatch
):
    root, _ = _campaign(tmp_path, make_config, save_config, test_data, picks={"hf"})
    run = tmp_path / "zbrent_run"
    shutil.copytree(test_data / "custodian_failures" / "zbrent", run)
    (run / "vasp.zbrent.gz").rename(run / "vasp.out.gz")  # custodian's VaspJob writes stdout to vasp.out

    class Stub:
        """Stands in for a VASP run that ended in ZBRENT (no VASP binary here)."""

        def label(self, structures, fidelity, **kw):
            return [
                FrameDoc.from_structure(
                    s,
                    fidelity=fidelity,
                    source="vasp",
                    status="quarantined",
                    status_reason="custodian: zbrent",
                    task_dir=str(run),
                    campaign=kw["campaign"],
                    round=kw["round"],
                )  # fmt: skip
                for s in structures
            ]

    monkeypatch.setattr("mfal.campaign.context.Campaign.labeler", lambda self, f: Stub())
    assert label_round(root, 0, "hf")["n_failed"] == 1
    (frame,) = _stored(root)
    out = gzip.decompress(_bundle(root, frame)["vasp.out.gz"]).decode()
    assert "ZBRENT: fatal error in bracketing" in out


def test_teacher_labels_have_no_bundle(tmp_path, make_config, save_config, test_data, bundles, mfal_cli):
    root, _ = _campaign(tmp_path, make_config, save_config, test_data, picks={"hf"}, labeler="teacher")
    assert label_round(root, 0, "hf")["n_ok"] == 1
    (frame,) = _stored(root)
    assert frame.source == "teacher" and frame.task_dir is None
    assert "raw_outputs" not in frame.calc and bundles == []
    code, _, err = mfal_cli(["raw", frame.frame_id, "--dir", str(root), "--out", str(tmp_path / "x")])
    assert code == 1 and "no calc.raw_outputs link" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("source", ["model", "table"])
def test_model_moments_reach_the_labeler(tmp_path, make_config, save_config, test_data, monkeypatch, source):
    """``magmom_source: model``: each pick carries the round's HF-head moments (μB) when the labeler sees it."""
    from mfal.campaign.artifacts import RoundScores
    from mfal.uncertainty import FidelityScores

    cfg = make_config(
        tmp_path,
        labelers={"lf": {"kind": "vasp"}, "hf": {"kind": "vasp", "options": {"magmom_source": source}}},
    )
    root = tmp_path / "run"
    prepare(save_config(tmp_path, cfg), root)
    s = Poscar.from_file(test_data / "vasp" / HF_GOLDEN / "inputs" / "POSCAR.gz").structure
    rd = RoundDir(root, 0)
    rd.save_candidates(Candidates(items=[Candidate(id="c0", origin="golden", structure=s)]))
    rd.save_selection(Selection(picks={"lf": [], "hf": ["c0"]}))
    predicted = [0.01 * i for i in range(len(s))]
    fs = FidelityScores(
        scores={"force_std_max": [0.2]},
        energy=[-100.0],
        forces=[[[0.0, 0.0, 0.0]] * len(s)],
        magmoms=[predicted],
    )
    rd.save_scores(RoundScores(model=["a" * 64], ids=["c0"], fidelities={"hf": fs}))
    seen = []

    class Stub:
        """Records what the labeler is given (the real labelers consume mfal_predicted_magmom, tested in
        tests/label)."""

        def label(self, structures, fidelity, **kw):
            seen.extend(structures)
            return [
                FrameDoc.from_structure(
                    x, fidelity=fidelity, source="vasp", status="failed", status_reason="stub"
                )
                for x in structures
            ]

    monkeypatch.setattr("mfal.campaign.context.Campaign.labeler", lambda self, f: Stub())
    label_round(root, 0, "hf")
    (got,) = seen
    if source == "model":
        assert got.site_properties["mfal_predicted_magmom"] == pytest.approx(predicted)
    else:
        assert "mfal_predicted_magmom" not in got.site_properties
