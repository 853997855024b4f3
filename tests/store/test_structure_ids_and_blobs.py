"""structure_id (stored, indexed, queried, back-filled for old stores) and checksummed blobs, on every backend."""

from __future__ import annotations

import pytest

from mfal.errors import StoreError
from mfal.fileio import atomic_write_json, read_json
from mfal.store import FrameDoc, StoreConfig, open_store, structure_fingerprint
from mfal.store.config import STORE_MARKER


@pytest.fixture(params=["embedded", "memory"])
def store(request, tmp_path):
    cfg = StoreConfig(type=request.param, path=tmp_path / "store" if request.param == "embedded" else None)
    with open_store(cfg) as s:
        yield s


def test_structure_id_joins_fidelities_of_one_structure(store, frames_factory):
    hf = frames_factory(3, fidelity="hf")
    lf = [
        FrameDoc.from_structure(f.get_structure(), fidelity="lf", source="teacher", energy=-180.0)
        for f in hf[:2]
    ]
    store.upsert_frames([*hf, *lf])
    sid = structure_fingerprint(hf[0].get_structure())
    assert {f.fidelity for f in store.query_frames(structure_id=sid)} == {"hf", "lf"}
    assert store.structure_ids(fidelity="lf") == {structure_fingerprint(f.get_structure()) for f in hf[:2]}
    assert store.structure_ids() == {f.structure_id for f in hf}
    assert store.count(structure_id=[hf[0].structure_id, hf[2].structure_id]) == 3


def test_old_store_without_structure_ids_is_back_filled(tmp_path, frames_factory):
    store_dir = tmp_path / "old"
    frames = frames_factory(3)
    with open_store(store_dir) as store:  # write documents as an older mfal did: no structure_id
        docs = [f.model_dump(mode="json") | {"_id": f.frame_id} for f in frames]
        for d in docs:
            del d["structure_id"]
        store._frames.update(docs, key="_id")
        assert store.missing_structure_ids() == 3
    marker = store_dir / STORE_MARKER
    atomic_write_json(marker, read_json(marker) | {"format": 1})
    with open_store(store_dir) as store:
        assert store.missing_structure_ids() == 0
        assert {f.frame_id for f in store.query_frames(structure_id=frames[1].structure_id)} == {
            frames[1].frame_id
        }
    assert read_json(marker)["format"] == 2


def test_blobs_are_checked_against_their_sha256(store):
    sha = store.put_blob("checkpoints/r0/member0.pt", b"weights v1")
    assert store.get_blob("checkpoints/r0/member0.pt", sha256=sha) == b"weights v1"
    store.put_blob("checkpoints/r0/member0.pt", b"weights v2")
    with pytest.raises(StoreError, match=r"is not the expected .* \(another version\)"):
        store.get_blob("checkpoints/r0/member0.pt", sha256=sha)


def test_corrupt_blob_file_is_detected(tmp_path):
    with open_store(tmp_path / "s") as store:
        store.put_blob("m.pt", b"0123456789")
        path = tmp_path / "s" / "blobs" / "m.pt"
        raw = path.read_bytes()
        path.write_bytes(raw[:-1] + b"X")  # one flipped byte
        with pytest.raises(StoreError, match=r"blob 'm.pt' in .* is corrupt: sha256"):
            store.get_blob("m.pt")
        path.write_bytes(raw[:-3])
        with pytest.raises(StoreError, match=r"blob 'm.pt': .* is truncated"):
            store.get_blob("m.pt")
        (tmp_path / "s" / "blobs" / "legacy.pt").write_bytes(b"raw bytes of an older mfal")
        assert store.get_blob("legacy.pt") == b"raw bytes of an older mfal"
