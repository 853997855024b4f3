"""The mongo path (maggma MongoStore + GridFSStore).

No MongoDB server can be installed on these machines, so: the unreachable-server and secret-handling tests use
the real pymongo client against a closed port; the API tests swap pymongo's client for mongomock's inside
maggma (documents, unique index, GridFS blobs) — the only mocked part. The mock is ``mongomock_ng``, the fork
maggma's own MemoryStore uses (plain ``mongomock`` 4.3 breaks on pymongo 4.16's ``ReplaceOne`` in bulk writes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mfal.errors import ConfigError, StoreError
from mfal.store import StoreConfig, open_store
from mfal.store.config import redact_uri
from mfal.store.docs import RoundDoc

CONFIGS = Path(__file__).parents[2] / "configs" / "stores"
SECRET = "s3cr3t-Pa55"
URI = f"mongodb://alice:{SECRET}@127.0.0.1:1/?authSource=admin"


def test_unreachable_server_fails_in_one_line_without_the_password(monkeypatch, caplog):
    monkeypatch.setenv("MFAL_MONGO_URI", URI)
    cfg = StoreConfig.from_yaml(CONFIGS / "mongo.yaml").model_copy(update={"timeout_ms": 300})
    assert SECRET not in repr(cfg) and SECRET not in cfg.model_dump_json()
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreError) as err:
        open_store(cfg)
    message = str(err.value)
    assert (
        message.startswith("cannot reach MongoDB mongodb://***@127.0.0.1:1/") and "within 300 ms" in message
    )
    assert "\n" not in message and SECRET not in message and "alice" not in message
    assert err.value.__cause__ is None  # the pymongo error (which may quote the URI) is not chained
    assert SECRET not in caplog.text


def test_uri_sources_and_their_errors(monkeypatch, tmp_path):
    monkeypatch.delenv("MFAL_MONGO_URI", raising=False)
    with pytest.raises(ConfigError, match="environment variable MFAL_MONGO_URI is not set and no uri_file"):
        open_store(CONFIGS / "mongo.yaml")
    secret_file = tmp_path / "uri"
    secret_file.write_text(URI + "\n")
    cfg_file = tmp_path / "mongo.yaml"
    cfg_file.write_text("type: mongo\nuri_file: uri\n")
    cfg = StoreConfig.from_yaml(cfg_file)
    assert cfg.uri_file == secret_file and cfg.resolve_uri() == URI
    monkeypatch.setenv("MFAL_MONGO_URI", "notmongo://bob:hunter2@host")
    with pytest.raises(ConfigError, match=r"mongo store: invalid URI from MFAL_MONGO_URI") as err:
        open_store(cfg)
    assert "hunter2" not in str(err.value)
    assert redact_uri(f"failed: {URI}", URI) == "failed: mongodb://***@127.0.0.1:1/?authSource=admin"


@pytest.fixture
def mongomock_store(monkeypatch):
    import maggma.stores.gridfs
    import maggma.stores.mongolike
    import mongomock_ng
    import mongomock_ng.gridfs

    mongomock_ng.gridfs.enable_gridfs_integration()
    monkeypatch.setattr(maggma.stores.mongolike, "MongoClient", mongomock_ng.MongoClient)
    monkeypatch.setattr(maggma.stores.gridfs, "MongoClient", mongomock_ng.MongoClient)
    monkeypatch.setenv("MFAL_MONGO_URI", URI)
    with open_store(CONFIGS / "mongo.yaml") as store:
        yield store


def test_mongo_store_api_on_mongomock(mongomock_store, frames_factory):
    store = mongomock_store
    assert store.kind == "mongo" and SECRET not in repr(store) and SECRET not in store._frames.name
    frames = frames_factory(3)
    assert store.upsert_frames(frames) == 3 and store.upsert_frames(frames) == 0
    assert store.count() == 3 and store.frame_ids() == {f.frame_id for f in frames}
    indexes = store._frames._collection.index_information()
    assert any(ix.get("unique") and ix["key"] == [("frame_id", 1)] for ix in indexes.values())
    import pymongo.errors

    with pytest.raises(pymongo.errors.DuplicateKeyError):  # the unique index itself, beneath the upsert
        store._frames._collection.insert_one({"_id": "other", "frame_id": frames[0].frame_id})

    store.upsert_round(RoundDoc(campaign="c", round=0))
    assert [r.round for r in store.rounds("c")] == [0]
    checkpoint = bytes(range(256)) * 4096  # 1 MB through GridFS
    sha = store.put_blob("checkpoints/member0.pt", checkpoint)
    assert store.get_blob("checkpoints/member0.pt") == checkpoint and len(sha) == 64
    store.put_blob("checkpoints/member0.pt", b"newer")
    assert store.get_blob("checkpoints/member0.pt") == b"newer"
    assert store._blobs.count("checkpoints/member0.pt") == 1  # the older version was removed
    with pytest.raises(StoreError, match="blob 'missing' not found in GridFS bucket 'blobs'"):
        store.get_blob("missing")


def test_store_config_files_validate(tmp_path):
    embedded = StoreConfig.from_yaml(CONFIGS / "embedded.yaml")
    assert embedded.type == "embedded" and embedded.path == CONFIGS / "../../runs/store"
    mongo = StoreConfig.from_yaml(CONFIGS / "mongo.yaml")
    assert mongo.type == "mongo" and mongo.uri_env == "MFAL_MONGO_URI" and mongo.blobs == "blobs"
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: mongo\ntimeout_ms: -5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: field 'timeout_ms': Input should be greater than 0"):
        StoreConfig.from_yaml(bad)


def test_world_readable_uri_file_is_warned_about(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("MFAL_MONGO_URI", raising=False)
    secret_file = tmp_path / "uri"
    secret_file.write_text(URI + "\n")
    cfg = StoreConfig(type="mongo", uri_file=secret_file)
    secret_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="mfal.store.config"):
        assert cfg.resolve_uri() == URI
    assert f"uri_file {secret_file} is accessible by other users (mode 0644)" in caplog.text
    assert f"chmod 600 {secret_file}" in caplog.text and SECRET not in caplog.text
    caplog.clear()
    secret_file.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="mfal.store.config"):
        cfg.resolve_uri()
    assert "accessible by other users" not in caplog.text
