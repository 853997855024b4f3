"""A store that cannot be written still answers queries; every write is one StoreError line naming it.

Tests run as root here, and root ignores ``chmod``: the child process that opens the read-only store runs
without CAP_DAC_OVERRIDE/CAP_FOWNER (fixture ``unprivileged``: ``setpriv --bounding-set``), so the kernel
enforces the permissions for it exactly as for a normal user.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mfal.errors import StoreError
from mfal.store import StoreConfig, open_store
from mfal.store.docs import RoundDoc
from mfal.store.jsonio import write_json

CHILD = r"""
import json, sys
from mfal.errors import StoreError
from mfal.store import open_store
from mfal.store.jsonio import read_json

new = read_json(sys.argv[2])
out = {}
with open_store(sys.argv[1], create=False) as store:
    out["read_only"] = store.read_only
    out["count"] = store.count()
    out["hf"] = len(store.training_frames(fidelity="hf"))
    out["structure_ids"] = len(store.structure_ids())
    out["rounds"] = [r.round for r in store.rounds()]
    out["blob"] = store.get_blob("checkpoints/m0.pt").decode()
    for name, write in (
        ("upsert", lambda: store.upsert_frames(new)),
        ("blob_put", lambda: store.put_blob("checkpoints/m1.pt", b"x")),
        ("round", lambda: store.upsert_round(store.rounds()[0])),
    ):
        try:
            write()
            out[name] = "written"
        except StoreError as err:
            out[name] = str(err)
for kwargs in ({"read_only": False}, {"create": True}, {}):
    try:
        open_store(sys.argv[1] + "/../new-store" if "create" in kwargs else sys.argv[1], **kwargs).close()
        out[str(kwargs)] = "opened"
    except StoreError as err:
        out[str(kwargs)] = str(err)
print(json.dumps(out))
"""


def test_read_only_store_serves_queries_and_refuses_writes_in_one_line(
    tmp_path, frames_factory, unprivileged, read_only_tree
):
    parent = tmp_path / "ro"
    store_dir = parent / "store"
    frames = frames_factory(3)
    with open_store(store_dir) as store:
        store.upsert_frames(frames)
        store.upsert_round(RoundDoc(campaign="c", round=0))
        store.put_blob("checkpoints/m0.pt", b"weights")
    new = tmp_path / "new.json"
    write_json(frames_factory(1, seed=9), new)
    before = sorted(str(p) for p in store_dir.rglob("*"))
    with read_only_tree(parent):
        res = subprocess.run(
            [*unprivileged, sys.executable, "-c", CHILD, str(store_dir), str(new)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["read_only"] and out["count"] == 3 and out["hf"] == 3 and out["structure_ids"] == 3
    assert out["rounds"] == [0] and out["blob"] == "weights"
    for name in ("upsert", "blob_put", "round"):
        assert out[name].startswith(f"store {store_dir} is read-only ("), out[name]
        assert "cannot write" in out[name] and "\n" not in out[name]
    assert (
        "is read-only" in out["{'read_only': False}"]
        and "a writable store is needed" in out["{'read_only': False}"]
    )
    assert "cannot create" in out["{'create': True}"]
    assert "a writable store is needed" in out["{}"]  # a writer's default open fails before any compute
    assert sorted(str(p) for p in store_dir.rglob("*")) == before  # not a lock file, not a probe left behind
    with open_store(store_dir) as store:
        assert store.count() == 3 and store.read_only is None


@pytest.mark.parametrize("kind", ["embedded", "memory"])
def test_store_opened_read_only_never_writes(tmp_path, frames_factory, kind):
    cfg = StoreConfig(type=kind, path=tmp_path / "s" if kind == "embedded" else None)
    if kind == "embedded":
        with open_store(cfg) as store:
            store.upsert_frames(frames_factory(2))
    with open_store(cfg, read_only=True) as store:
        assert store.count() == (2 if kind == "embedded" else 0)
        with pytest.raises(StoreError, match=r"is read-only \(opened read-only\): cannot write 1 frames"):
            store.upsert_frames(frames_factory(1, seed=5))
        with pytest.raises(StoreError, match=r"cannot write blob 'k'"):
            store.put_blob("k", b"x")
        with pytest.raises(StoreError, match=r"cannot label"):
            store.check_writable("label")
    with pytest.raises(StoreError, match=r"no mfal store at"):
        open_store(tmp_path / "absent", read_only=True)
