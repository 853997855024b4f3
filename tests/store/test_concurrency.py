"""Several processes upsert overlapping frames into one embedded store (montydb/sqlite) while another reads."""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback

from mfal.store import open_store
from mfal.store.docs import FrameDoc


def _writer(store_dir: str, docs: list[dict], chunk: int, errors) -> None:
    try:
        frames = [FrameDoc.model_validate(d) for d in docs]
        for start in range(0, len(frames), chunk):
            with open_store(store_dir) as store:  # reopen each time: exercises the concurrent connect() too
                store.upsert_frames(frames[start : start + chunk])
    except BaseException:  # report everything to the parent, which asserts on it
        errors.put(traceback.format_exc())


def _reader(store_dir: str, stop, errors, counts) -> None:
    try:
        with open_store(store_dir) as store:
            while not stop.is_set():
                frames = store.training_frames(fidelity="hf")  # one query
                counts.put((len(frames), len({f.frame_id for f in frames})))
                time.sleep(0.05)
    except BaseException:
        errors.put(traceback.format_exc())


def test_concurrent_writers_and_a_reader(tmp_path, frames_factory):
    store_dir = str(tmp_path / "store")
    frames = frames_factory(16)
    docs = [f.model_dump(mode="json") for f in frames]
    # 4 writers, overlapping halves, in different orders
    batches = [docs[0:10], docs[6:16][::-1], docs[::2] + docs[1::2], docs[4:12]]
    ctx = mp.get_context("fork")
    errors, counts, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    reader = ctx.Process(target=_reader, args=(store_dir, stop, errors, counts))
    writers = [ctx.Process(target=_writer, args=(store_dir, b, 2, errors)) for b in batches]
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    stop.set()
    reader.join(60)
    seen = []
    while not counts.empty():
        seen.append(counts.get())
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, problems[0]
    assert all(p.exitcode == 0 for p in [reader, *writers])
    assert seen, "the reader never completed a query"
    assert all(n == n_unique for n, n_unique in seen), f"a query returned duplicate documents: {seen}"
    assert [n for n, _ in seen] == sorted(n for n, _ in seen), f"frames disappeared while writing: {seen}"
    with open_store(store_dir) as store:
        assert store.count() == 16
        assert store.frame_ids() == {f.frame_id for f in frames}
        assert len(store.query_frames()) == 16
