"""FrameStore on the real embedded backend (maggma MontyStore on sqlite) and on maggma's MemoryStore."""

from __future__ import annotations

import logging

import pytest

from mfal.errors import ConfigError, DataError, StoreError
from mfal.store import StoreConfig, open_store
from mfal.store.docs import FidelityStats, RoundDoc
from mfal.store.frames import network_fs_type
from mfal.store.jsonio import read_json, write_json


@pytest.fixture(params=["embedded", "memory"])
def store(request, tmp_path):
    cfg = StoreConfig(type=request.param, path=tmp_path / "store" if request.param == "embedded" else None)
    with open_store(cfg) as s:
        yield s


def test_same_frame_twice_is_one_document(store, frames_factory):
    frames = frames_factory(3)
    extra = frames_factory(1, seed=7)[0]
    assert store.upsert_frames(frames) == 3
    assert store.upsert_frames([frames[0], frames[0]]) == 0
    assert store.upsert_frames([*frames[:2], extra]) == 1
    assert store.count() == 4
    assert store.frame_ids() == {f.frame_id for f in [*frames, extra]}
    (back,) = store.query_frames(frame_ids=[frames[1].frame_id])
    assert back == frames[1]


def test_bad_frame_in_a_batch_writes_nothing(store, frames_factory):
    good, bad = frames_factory(2)
    bad.energy = float("nan")  # pydantic does not validate assignments: the store must
    with pytest.raises(
        StoreError, match=rf"frame #1 \({bad.frame_id}\) failed validation: .*energy is not finite"
    ):
        store.upsert_frames([good, bad])
    assert store.count() == 0
    dotted = frames_factory(1, seed=3)[0].model_copy(update={"calc": {"code": "vasp", "U.Fe": 5.3}})
    with pytest.raises(StoreError, match=r"key 'calc/U.Fe' contains '\.'"):
        store.upsert_frames([good, dotted])
    huge = frames_factory(1, seed=4)[0].model_copy(
        update={"calc": {"code": "vasp", "blob": "x" * (17 * 2**20)}}
    )
    with pytest.raises(StoreError, match=r"above MongoDB's 16 MB limit"):
        store.upsert_frames([good, huge])
    assert store.count() == 0


def test_queries_and_training_frames(store, frames_factory, lifepo4):
    hf = frames_factory(2, fidelity="hf", round=1, campaign="c1")
    lf = frames_factory(3, fidelity="lf", seed=1, round=2, campaign="c1", source="import")
    quarantined = frames_factory(1, fidelity="hf", seed=2, round=2, campaign="c1")[0].model_copy(
        update={"status": "quarantined", "status_reason": "Fe moments collapsed to 0.2 μB"}
    )
    mn = lifepo4.copy()
    mn.replace_species({"Fe": "Mn"})
    lmp = frames_factory(1, structure=mn, fidelity="hf", seed=3, round=2, campaign="c2")
    store.upsert_frames([*hf, *lf, quarantined, *lmp])

    ids = lambda frames: {f.frame_id for f in frames}  # noqa: E731
    assert ids(store.query_frames(fidelity="hf")) == ids([*hf, quarantined, *lmp])
    assert ids(store.query_frames(fidelity="lf", round=2)) == ids(lf)
    assert ids(store.query_frames(round=[1, 2], campaign="c1", status="ok")) == ids([*hf, *lf])
    assert ids(store.query_frames(elements="Mn,O")) == ids(lmp)
    assert ids(store.query_frames(elements=["Fe", "Li"])) == ids([*hf, *lf, quarantined])
    assert store.query_frames(elements=["Fe", "Mn"]) == []
    assert ids(store.query_frames(source="import")) == ids(lf)
    assert ids(store.query_frames(status="quarantined")) == {quarantined.frame_id}
    assert store.count(fidelity="hf", status="ok") == 3
    assert store.counts_by() == {("hf", "ok"): 3, ("hf", "quarantined"): 1, ("lf", "ok"): 3}
    assert store.counts_by(("round",), campaign="c1") == {(1,): 2, (2,): 4}

    training = store.training_frames()
    assert quarantined.frame_id not in ids(training) and len(training) == 6
    assert ids(store.training_frames(fidelity="hf", campaign="c1")) == ids(hf)


def test_rounds_and_blobs(store):
    store.upsert_round(RoundDoc(campaign="c1", round=1, n_candidates=10))
    store.upsert_round(
        RoundDoc(campaign="c1", round=0, fidelities={"hf": FidelityStats(n_labeled=2, cost=270.0)})
    )
    store.upsert_round(RoundDoc(campaign="c1", round=1, n_candidates=12, state="done"))
    store.upsert_round(RoundDoc(campaign="c2", round=0))
    rounds = store.rounds("c1")
    assert [(r.round, r.n_candidates, r.state) for r in rounds] == [(0, 0, "running"), (1, 12, "done")]
    assert rounds[0].fidelities["hf"].cost == 270.0
    assert len(store.rounds()) == 3

    payload = bytes(range(256)) * 100
    sha = store.put_blob("checkpoints/r1/member0.pt", payload)
    assert store.get_blob("checkpoints/r1/member0.pt") == payload
    assert store.put_blob("checkpoints/r1/member0.pt", b"v2") != sha
    assert store.get_blob("checkpoints/r1/member0.pt") == b"v2"
    with pytest.raises(StoreError, match="blob 'nope' not found"):
        store.get_blob("nope")
    with pytest.raises(StoreError, match=r"blob key '../escape'"):
        store.put_blob("../escape", b"x")


def test_json_export_round_trip(tmp_path, store, frames_factory):
    frames = [*frames_factory(2, fidelity="hf", round=0), *frames_factory(1, fidelity="lf", seed=5)]
    store.upsert_frames(frames)
    path = tmp_path / "frames.json"
    assert write_json(store.query_frames(), path) == 3
    back = read_json(path)
    assert {f.frame_id: f for f in back} == {f.frame_id: f for f in frames}
    with open_store(StoreConfig(type="memory")) as other:
        assert other.upsert_frames(back) == 3 and other.upsert_frames(read_json(path)) == 0
    path.write_text('[{"frame_id": "x", "fidelity": "lf"}]')
    with pytest.raises(DataError, match=r"frames.json frame 0: field 'structure': Field required"):
        read_json(path)


def test_embedded_store_persists_and_resolves_campaign_dirs(tmp_path, frames_factory):
    campaign = tmp_path / "camp"
    campaign.mkdir()
    (campaign / "campaign.yaml").write_text("name: demo\n")
    frames = frames_factory(2)
    with open_store(campaign) as s:  # campaign dir -> <dir>/store
        assert s.location == str((campaign / "store").resolve())
        s.upsert_frames(frames)
    with open_store(campaign / "store") as s:  # the store dir itself
        assert s.count() == 2
    yaml_cfg = tmp_path / "embedded.yaml"
    yaml_cfg.write_text("type: embedded\npath: camp/store\n")
    with open_store(yaml_cfg) as s:  # a store YAML, path relative to it
        assert s.frame_ids() == {f.frame_id for f in frames}
    yaml_cfg.write_text("type: embedded\npaht: camp/store\n")
    with pytest.raises(ConfigError, match=r"embedded.yaml: field 'paht': Extra inputs are not permitted"):
        open_store(yaml_cfg)
    (campaign / "campaign.yaml").write_text("store:\n  type: sqlite\n")
    with pytest.raises(ConfigError, match=r"campaign.yaml store: field 'type'"):
        open_store(campaign)


def test_network_filesystem_is_detected_and_warned(tmp_path, caplog):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        f"server:/export {tmp_path}/nfs nfs4 rw,relatime 0 0\n"
        f"//host/share {tmp_path}/smb cifs rw 0 0\n"
    )
    assert network_fs_type(tmp_path / "nfs" / "campaign" / "store", mounts) == "nfs4"
    assert network_fs_type(tmp_path / "smb", mounts) == "cifs"
    assert network_fs_type(tmp_path / "local", mounts) is None
    with caplog.at_level(logging.WARNING, logger="mfal.store.embedded"), open_store(tmp_path / "s"):
        pass  # tmp_path is a local disk here: no warning
    assert "network file system" not in caplog.text


def test_open_warns_when_the_store_is_on_a_network_filesystem(tmp_path, caplog, monkeypatch):
    import mfal.store.embedded as embedded

    monkeypatch.setattr(embedded, "network_fs_type", lambda path: "nfs4")
    with caplog.at_level(logging.WARNING, logger="mfal.store.embedded"), open_store(tmp_path / "s"):
        pass
    assert "is on a network file system (nfs4)" in caplog.text


def test_changed_frame_is_replaced_but_keeps_its_first_created_at(store, frames_factory):
    (frame,) = frames_factory(1)
    store.upsert_frames([frame])
    later = frame.model_copy(
        update={"status": "quarantined", "status_reason": "re-checked: moments collapsed"}
    )
    later = later.model_copy(update={"created_at": later.created_at.replace(year=later.created_at.year + 1)})
    assert store.upsert_frames([later]) == 0
    (back,) = store.query_frames()
    assert (back.status, back.status_reason) == ("quarantined", "re-checked: moments collapsed")
    assert back.created_at == frame.created_at
    assert store.training_frames() == []


def test_campaign_yaml_store_section(tmp_path, frames_factory):
    campaign = tmp_path / "camp"
    campaign.mkdir()
    (campaign / "campaign.yaml").write_text("name: demo\nstore:\n  type: embedded\n  path: data/frames\n")
    with open_store(campaign / "campaign.yaml") as s:  # --store campaign.yaml works like --dir
        assert s.location == str((campaign / "data" / "frames").resolve())
        s.upsert_frames(frames_factory(1))
    with open_store(campaign, create=False) as s:
        assert s.count() == 1


def test_binary_or_invalid_store_and_campaign_yaml_is_one_config_error(tmp_path):
    bad = tmp_path / "store.yaml"
    bad.write_bytes(b"\x00\xff\xfe binary")
    with pytest.raises(ConfigError, match=r"store.yaml: not a text YAML file") as err:
        open_store(bad)
    assert "\n" not in str(err.value)
    campaign = tmp_path / "camp"
    campaign.mkdir()
    (campaign / "campaign.yaml").write_text("store: [unclosed\n")
    with pytest.raises(ConfigError, match=r"campaign.yaml: not valid YAML") as err:
        open_store(campaign)
    assert "\n" not in str(err.value)
