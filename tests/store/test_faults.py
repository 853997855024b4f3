"""kill -9 fault matrix of the store: creating an embedded store and importing frames into it.

Each case runs the real code in a child process that SIGKILLs itself at a chosen point (the child wraps the
store's own functions; no mock store), then reruns the same job and checks: it completes, nothing is lost,
nothing is duplicated, the store is not wedged.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

import pytest

from mfal.store import open_store
from mfal.store.config import STORE_MARKER
from mfal.store.extxyz import write_extxyz

CHILD = r"""
import os, signal, sys

store_dir, data, fault = sys.argv[1], sys.argv[2], sys.argv[3]
point, _, nth = fault.partition(":")
hits = {}


def kill_if(name):
    hits[name] = hits.get(name, 0) + 1
    if name == point and hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


import mfal.store.embedded as embedded
import mfal.store.frames as frames
import mfal.store.importer as importer

embedded._creation_step = kill_if  # between the steps of creating the store
frames.WRITE_CHUNK = 3  # several store transactions per import
_update = embedded.MfalMontyStore.update


def update(self, docs, key=None):
    _update(self, docs, key)
    if self.collection_name == "frames":
        kill_if("after_chunk")


embedded.MfalMontyStore.update = update
from mfal.store import open_store

# the order of `mfal import`: parse and validate everything, then open the store, then upsert
sources = importer.read_sources(importer.discover([data]))
kill_if("after_parse")
with open_store(store_dir) as store:
    kill_if("store_open")
    summary = importer.store_sources(store, sources)
print(summary.total, summary.new)
"""


def _run(store_dir, data, fault: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(store_dir), str(data), fault],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def frames_file(tmp_path, frames_factory):
    frames = [*frames_factory(5, fidelity="hf"), *frames_factory(3, fidelity="lf", seed=1)]
    path = tmp_path / "frames.xyz"
    write_extxyz(frames, path)
    return path, {f.frame_id for f in frames}


@pytest.mark.slow  # 16 child processes, ~5 s each on a loaded machine
@pytest.mark.parametrize(
    "fault",
    [
        "storage_config",  # montydb's config written, no collection yet
        "table_file",  # sqlite created frames.collection, its table not yet (old code: "no such table")
        "collection:1",  # frames collection done, rounds not
        "collection:2",  # both collections, no marker yet
        "after_parse",  # import: everything parsed, store not touched
        "store_open",  # store created, nothing written
        "after_chunk:1",  # 3 of 8 frames committed
        "after_chunk:3",  # all frames committed, the process dies before it closes the store
    ],
)
def test_killed_store_creation_or_import_reruns_to_completion(tmp_path, frames_file, fault):
    path, ids = frames_file
    store_dir = tmp_path / "store"
    killed = _run(store_dir, path, fault)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    if fault.startswith(("storage_config", "table_file", "collection")):
        assert not (store_dir / STORE_MARKER).exists()  # the kill really hit the creation
    rerun = _run(store_dir, path, "none")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    total, new = map(int, rerun.stdout.split())
    assert total == 8
    with open_store(store_dir, create=False) as store:
        frames = store.query_frames()
        assert [f.frame_id for f in frames].count(frames[0].frame_id) == 1
        assert len(frames) == 8 and {f.frame_id for f in frames} == ids  # nothing lost, nothing duplicated
        assert store.count() == 8 and new == 8 - {"after_chunk:1": 3, "after_chunk:3": 8}.get(fault, 0)
        assert store.structure_ids() == {f.structure_id for f in frames}
    if fault == "after_chunk:1":
        again = _run(store_dir, path, "none")
        assert again.returncode == 0 and again.stdout.split() == ["8", "0"]


def test_store_wedged_by_an_old_interrupted_creation_is_repaired(tmp_path, frames_factory):
    """What a kill -9 inside montydb's first write left behind before this fix: montydb's config and a
    collection file without its table, no marker. Every command then failed with "no such table: documents"."""
    from montydb import set_storage

    store_dir = tmp_path / "store"
    set_storage(str(store_dir), storage="sqlite", use_bson=True, mongo_version="4.0")
    (store_dir / "mfal").mkdir()
    with sqlite3.connect(store_dir / "mfal" / "frames.collection") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    frames = frames_factory(2)
    with open_store(store_dir, create=False) as store:  # a read command repairs it too
        assert store.count() == 0
        assert store.upsert_frames(frames) == 2
    with open_store(store_dir) as store:
        assert store.frame_ids() == {f.frame_id for f in frames}
