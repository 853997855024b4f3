"""Raw-output bundles of DFT runs (mfal.label.provenance) on real VASP and CP2K output folders."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

import pytest

from mfal.errors import DataError
from mfal.label.provenance import (
    MANIFEST,
    attach_raw_outputs,
    blob_key,
    bundle_outputs,
    fetch_raw_outputs,
    raw_output_files,
    unbundle,
)
from mfal.store import FrameDoc, StoreConfig, open_store


@pytest.fixture
def vasp_run(test_data, tmp_path):
    """atomate2's MgMn2O4 static outputs (gzipped, as atomate2 leaves a job dir) plus the binaries and POTCAR
    a real run directory also holds."""
    run = tmp_path / "job_1"
    shutil.copytree(test_data / "vasp" / "atomate2_MgMn2O4_static_afm" / "outputs", run)
    (run / "WAVECAR").write_bytes(os.urandom(4096))
    (run / "CHGCAR.gz").write_bytes(gzip.compress(os.urandom(2048)))
    (run / "POTCAR").write_text("PAW_PBE Mg 13Apr2007\n")  # a licensed file: never leaves the run dir
    return run


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_bundle_keeps_the_text_outputs_and_skips_binaries_and_potcar(vasp_run):
    data = bundle_outputs(vasp_run)
    members = _members(data)
    assert set(members) == {
        "CONTCAR.gz", "INCAR.gz", "INCAR.orig.gz", "KPOINTS.gz", "KPOINTS.orig.gz", "OUTCAR.gz",
        "POSCAR.gz", "POSCAR.orig.gz", "POTCAR.spec.gz", "custodian.json.gz", "vasprun.xml.gz", MANIFEST,
    }  # fmt: skip
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" and m.mode == 0o644 for m in members.values())
    assert list(members) == sorted(n for n in members if n != MANIFEST) + [MANIFEST]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        manifest = json.load(tar.extractfile(MANIFEST))
        outcar = tar.extractfile("OUTCAR.gz").read()
    assert outcar == (vasp_run / "OUTCAR.gz").read_bytes()  # the member is the file, byte for byte
    by_name = {f["name"]: f for f in manifest["files"]}
    assert by_name["OUTCAR.gz"]["sha256"] == hashlib.sha256(outcar).hexdigest()
    assert {s["name"]: s["reason"] for s in manifest["skipped"]} == {
        "CHGCAR.gz": "not a raw text output",
        "POTCAR": "not a raw text output",
        "WAVECAR": "not a raw text output",
    }


def test_identical_runs_give_identical_bytes(vasp_run, tmp_path):
    first = bundle_outputs(vasp_run)
    copy = tmp_path / "elsewhere" / "job_9"
    shutil.copytree(vasp_run, copy)
    for p in copy.iterdir():  # other times on disk, same contents
        os.utime(p, (1_000_000_000, 1_000_000_000))
    assert bundle_outputs(copy) == first
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    (copy / "OSZICAR").write_text("   1 F= -.10E+03 E0= -.10E+03  d E =-.1E+03  mag=     0.0\n")
    assert bundle_outputs(copy) != first  # a changed output changes the bundle


def test_round_trip(vasp_run, tmp_path):
    files = unbundle(bundle_outputs(vasp_run), tmp_path / "back")
    assert files[-1].name == MANIFEST
    for f in files[:-1]:
        assert f.read_bytes() == (vasp_run / f.name).read_bytes()
    assert not (tmp_path / "back" / "WAVECAR").exists() and not (tmp_path / "back" / "POTCAR").exists()


def test_max_bytes_drops_the_largest_files_first(vasp_run):
    sizes = {p.name: p.stat().st_size for p in raw_output_files(vasp_run)[0]}
    biggest = max(sizes, key=sizes.get)
    cap = sum(sizes.values()) - 1
    kept, skipped = raw_output_files(vasp_run, max_bytes=cap)
    assert biggest not in {p.name for p in kept} and len(kept) == len(sizes) - 1
    assert {"name": biggest, "bytes": sizes[biggest], "reason": f"over max_bytes={cap}"} in skipped


def test_cp2k_run_and_errors(test_data, tmp_path):
    run = tmp_path / "attempt0"
    shutil.copytree(test_data / "cp2k" / "si_uks_static", run)
    (run / "cp2k-RESTART.wfn").write_bytes(os.urandom(1024))
    assert set(_members(bundle_outputs(run))) == {"cp2k.inp", "cp2k.out", "include.inc", MANIFEST}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "WAVECAR").write_bytes(b"\0")
    with pytest.raises(DataError, match="no input or output file of a DFT run"):
        bundle_outputs(empty)
    with pytest.raises(DataError, match="is not a directory"):
        bundle_outputs(tmp_path / "missing")
    with pytest.raises(DataError, match="not a readable tar.gz"):
        unbundle(b"not a bundle", tmp_path / "x")
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="not a plain relative file"):
        unbundle(evil.getvalue(), tmp_path / "x")


def test_attach_and_fetch_through_a_store(vasp_run, lifepo4, tmp_path):
    store = open_store(StoreConfig(type="memory"))
    frame = FrameDoc.from_structure(
        lifepo4, fidelity="hf", source="vasp", status="failed", status_reason="VASP job failed: x",
        task_dir=str(vasp_run),
    )  # fmt: skip
    linked = attach_raw_outputs(store, frame)
    link = linked.calc["raw_outputs"]
    assert linked.frame_id == frame.frame_id and link["key"] == blob_key(frame.frame_id, link["sha256"])
    assert store.get_blob(link["key"], link["sha256"]) == bundle_outputs(vasp_run)
    assert link["bytes"] == len(bundle_outputs(vasp_run))
    assert attach_raw_outputs(store, linked) is linked  # linked already: not bundled again
    store.upsert_frames([linked])
    files = fetch_raw_outputs(store, frame.frame_id, tmp_path / "fetched")
    assert (tmp_path / "fetched" / "OUTCAR.gz").read_bytes() == (vasp_run / "OUTCAR.gz").read_bytes()
    assert len(files) == 12
    teacher = FrameDoc.from_structure(lifepo4, fidelity="hf", source="teacher", energy=-1.0,
                                      forces=[[0.0, 0.0, 0.0]] * len(lifepo4))  # fmt: skip
    assert attach_raw_outputs(store, teacher) is teacher  # no task_dir: nothing to keep
    store.upsert_frames([teacher])
    with pytest.raises(DataError, match="no calc.raw_outputs link"):
        fetch_raw_outputs(store, teacher.frame_id, tmp_path / "t")
    with pytest.raises(DataError, match="not in"):
        fetch_raw_outputs(store, "0" * 24, tmp_path / "t")
    gone = frame.model_copy(update={"task_dir": str(tmp_path / "deleted"), "frame_id": "f" * 24})
    assert attach_raw_outputs(store, gone) is gone  # directory gone: logged, frame kept
