"""``mfal import`` and ``mfal query`` on the real VASP reference calculations in tests/test_data/vasp/
(see its README for sources and licences) and on an embedded (montydb/sqlite) store."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flows.cli import app
from mfal.errors import MfalError
from mfal.store import open_store
from mfal.store.docs import FrameDoc
from mfal.store.extxyz import read_extxyz

runner = CliRunner()
REFERENCE_RUNS = (
    "atomate2_MgMn2O4_static_afm",  # ISPIN=2, 1 step, OUTCAR with moments
    "atomate2_Si_static_nonspin",  # ISPIN=1
    "custodian_FeO_afm_ggaU_relax",  # ISPIN=2 relaxation, 28 steps, one Fe loses its moment
    "pymatgen_LiFePO4_ggaU_afm_relax",  # ISPIN=2 relaxation, 11 steps, no OUTCAR upstream
    "pymatgen_V2O5_ggaU_unconverged",  # ISPIN=2, every SCF at NELM
)


def run_mfal(*args: str) -> subprocess.CompletedProcess:
    """The real entry point (``flows.cli.main``) in a subprocess: exit status and stderr as a user sees them."""
    code = "import sys; from flows.cli import main; sys.argv[0] = 'mfal'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_import_every_reference_calculation(tmp_path, test_data):
    vasp = test_data / "vasp"
    store_dir = tmp_path / "store"
    result = runner.invoke(
        app, ["import", *(str(vasp / r) for r in REFERENCE_RUNS), "--store", str(store_dir)]
    )
    assert result.exit_code == 0, result.output
    with open_store(store_dir, create=False) as store:
        n_bad = store.count(status=["quarantined", "failed"])
        assert f"46 frames: 46 new, 0 already present, {n_bad} quarantined/failed" in " ".join(
            result.output.split()
        )

        def frames_of(run: str) -> list[FrameDoc]:
            return [f for f in store.query_frames() if f.task_dir and run in f.task_dir]

        (mgmn,) = frames_of("MgMn2O4")
        assert (mgmn.fidelity, mgmn.status) == ("hf", "ok") and mgmn.magmoms is not None
        assert max(abs(m) for m in mgmn.magmoms) > 3.5  # Mn high spin
        (si,) = frames_of("Si_static")
        assert (si.fidelity, si.fidelity_index, si.status, si.magmoms) == ("lf", 1, "ok", None)
        feo = frames_of("FeO")
        assert len(feo) == 28 and {f.fidelity for f in feo} == {"hf"}
        assert {f.status for f in feo} == {"ok", "quarantined"}
        lfp = frames_of("LiFePO4")
        assert len(lfp) == 11 and all(
            f.status == "quarantined" and "OUTCAR missing" in f.status_reason for f in lfp
        )
        v2o5 = frames_of("V2O5")
        assert len(v2o5) == 5 and all("NELM" in f.status_reason for f in v2o5)
        training = store.training_frames()
        assert {f.frame_id for f in training} == {f.frame_id for f in [mgmn, si, *feo] if f.status == "ok"}
        assert n_bad == sum(f.status != "ok" for f in [*feo, *lfp, *v2o5])

    again = runner.invoke(
        app, ["import", str(vasp / "custodian_FeO_afm_ggaU_relax"), "--store", str(store_dir)]
    )
    assert again.exit_code == 0, again.output
    assert "28 frames: 0 new, 28 already present" in " ".join(again.output.split())
    with open_store(store_dir, create=False) as store:
        assert store.count() == 46


def test_query_table_json_extxyz_and_reimport(tmp_path, frames_factory, lifepo4):
    campaign = tmp_path / "campaign"
    mn = lifepo4.copy()
    mn.replace_species({"Fe": "Mn"})
    hf = frames_factory(2, fidelity="hf", round=1)
    lf = frames_factory(2, fidelity="lf", seed=1, round=2)
    q = frames_factory(1, structure=mn, seed=2, round=2)[0].model_copy(
        update={"status": "quarantined", "status_reason": "Mn moments collapsed"}
    )
    with open_store(campaign / "store") as store:
        store.upsert_frames([*hf, *lf, q])

    table = runner.invoke(app, ["query", "--dir", str(campaign)])
    assert table.exit_code == 0, table.output
    assert "5 frames in" in table.output and "quarantined: Mn moments collapsed" in table.output
    assert all(f.frame_id in table.output for f in [*hf, *lf, q])

    as_json = runner.invoke(app, ["query", "--dir", str(campaign), "--format", "json", "--fidelity", "hf"])
    assert as_json.exit_code == 0, as_json.output
    got = [FrameDoc.model_validate(d) for d in json.loads(as_json.stdout)]
    assert {f.frame_id: f for f in got} == {f.frame_id: f for f in [*hf, q]}

    sel = runner.invoke(
        app, ["query", "--store", str(campaign / "store"), "--format", "json", "--elements", "Mn,O"]
    )
    assert [d["frame_id"] for d in json.loads(sel.stdout)] == [q.frame_id]
    sel = runner.invoke(
        app, ["query", "--dir", str(campaign), "--format", "json", "--round", "2", "--status", "ok"]
    )
    assert {d["frame_id"] for d in json.loads(sel.stdout)} == {f.frame_id for f in lf}

    out = tmp_path / "export.xyz"
    exported = runner.invoke(app, ["query", "--dir", str(campaign), "--format", "extxyz", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert {f.frame_id for f in read_extxyz(out)} == {f.frame_id for f in [*hf, *lf, q]}
    reimported = runner.invoke(app, ["import", str(out), "--store", str(tmp_path / "other")])
    assert reimported.exit_code == 0, reimported.output
    assert "5 frames: 5 new, 0 already present, 1 quarantined/failed" in " ".join(reimported.output.split())
    with open_store(tmp_path / "other", create=False) as other:
        assert other.training_frames() and q.frame_id not in {f.frame_id for f in other.training_frames()}
        back = {f.frame_id: f for f in other.query_frames()}
    assert back[hf[0].frame_id].energy == pytest.approx(hf[0].energy)
    assert back[hf[0].frame_id].magmoms == pytest.approx(hf[0].magmoms)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, test_data):
    store_dir = tmp_path / "store"
    truncated = tmp_path / "truncated_run"
    truncated.mkdir()
    with gzip.open(test_data / "vasp/pymatgen_V2O5_ggaU_unconverged/vasprun.unconverged.xml.gz", "rb") as fh:
        (truncated / "vasprun.xml").write_bytes(fh.read()[:3_790_313])
    good = str(test_data / "vasp/atomate2_Si_static_nonspin")

    res = run_mfal("import", good, str(truncated), "--store", str(store_dir))
    assert res.returncode == 1
    assert res.stderr.startswith("mfal: error: ") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "vasprun.xml" in res.stderr and "truncated_run" in res.stderr
    assert not store_dir.exists()  # nothing half-written: the good run was not stored either

    bad_xyz = tmp_path / "bad.xyz"
    bad_xyz.write_text(
        '2\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 fidelity=lf\nFe 0 0 0\n'
    )
    for args, expected in (
        (["import", str(bad_xyz), "--store", str(store_dir)], "bad.xyz: not a readable extxyz file"),
        (
            ["import", good, "--store", str(store_dir), "--fidelity", "mf"],
            "--fidelity 'mf' not in ['auto', 'lf', 'hf']",
        ),
        (["import", good, "--store", str(store_dir), "--dir", str(tmp_path)], "give exactly one of --store"),
        (["import", str(tmp_path / "nope"), "--store", str(store_dir)], "nope: no such file or directory"),
        (["query", "--store", str(store_dir)], "no mfal store at"),
        (
            ["query", "--dir", str(tmp_path), "--status", "done"],
            "--status 'done' not in ['ok', 'failed', 'quarantined']",
        ),
    ):
        # in-process: main() prints an MfalError as one line (checked end to end above)
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and isinstance(res.exception, MfalError), (args, res.output)
        message = str(res.exception)
        assert "\n" not in message and expected in message, (args, message)
    assert not store_dir.exists()
