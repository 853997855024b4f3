"""Label step: label the round's picks at one fidelity, storing each chunk as soon as it is done."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mfal.campaign.context import Campaign, progress_bar
from mfal.campaign.faults import fault_point
from mfal.fileio import atomic_write_json, read_json
from mfal.label.magmoms import attach_scored
from mfal.label.provenance import attach_raw_outputs
from mfal.runopts import RunOptions
from mfal.store.docs import FrameDoc


def label_round(root: str | Path, r: int, fidelity: str, options: RunOptions | None = None) -> dict[str, Any]:
    """Label round ``r``'s picks at ``fidelity``; returns counts and the cost (core-seconds).

    A label is persisted in its task file (``labels/<fidelity>/<candidate>.json``) before the store write; a
    rerun finds it there and only writes it to the store, so no finished label is computed twice. Before the
    task file is written, a DFT label's raw outputs (its ``task_dir``, any status) are bundled into the store's
    blob store and linked as ``calc["raw_outputs"]`` (:func:`mfal.label.provenance.attach_raw_outputs`), so a
    resumed step keeps the link and never bundles twice. For a labeler with ``magmom_source: model`` each pick
    carries the round's predicted moments at ``fidelity`` (site property ``mfal_predicted_magmom``, μB).
    """
    with Campaign(root, options) as c:
        c.fids.check(fidelity)
        rd = c.round(r)
        picks = rd.selection().of(fidelity)
        structures = rd.candidates().structures()
        if getattr(c.config.labelers[fidelity].options, "magmom_source", None) == "model":
            structures = attach_scored(structures, rd.scores(), fidelity)  # HF-head |m| as mfal_predicted_magmom
        by_id = {s.properties["candidate_id"]: s for s in structures}
        chunk_size = c.config.labelers[fidelity].chunk_size
        labeler = None
        n_ok = n_failed = n_reused = 0
        cost = t_label = 0.0
        t0 = time.perf_counter()
        with progress_bar(c.options.progress, len(picks), f"round {r}: label {fidelity}") as bar:
            for start in range(0, len(picks), chunk_size):
                chunk = picks[start : start + chunk_size]
                docs: list[FrameDoc] = []
                todo = []
                for cid in chunk:
                    tp = rd.task_path(fidelity, cid)
                    if tp.is_file():
                        docs.extend(FrameDoc.model_validate(d) for d in read_json(tp))
                        n_reused += 1
                    else:
                        todo.append(cid)
                if todo:
                    labeler = labeler or c.labeler(fidelity)
                    fault_point("during_label")
                    workdir = rd.label_dir(fidelity) / "work"
                    workdir.mkdir(parents=True, exist_ok=True)
                    tl = time.perf_counter()
                    new = labeler.label(
                        [by_id[cid] for cid in todo], fidelity, workdir=workdir, campaign=c.name, round=r
                    )
                    t_label += time.perf_counter() - tl
                    with open(c.dir.calls_log, "a") as fh:
                        for cid in todo:
                            fh.write(f"{r} {fidelity} {cid}\n")
                    kept = []
                    for cid, doc in zip(todo, new, strict=True):
                        doc = attach_raw_outputs(c.store, doc)
                        atomic_write_json(rd.task_path(fidelity, cid), [doc.model_dump(mode="json")])
                        kept.append(doc)
                        fault_point("after_label")
                    docs.extend(kept)
                c.store.upsert_frames(docs)
                for d in docs:
                    cost += d.cost
                    if d.status == "ok":
                        n_ok += 1
                    else:
                        n_failed += 1
                bar.update(len(chunk))
        total = time.perf_counter() - t0
        rd.record_time(f"label_{fidelity}", t_label)
        rd.record_time(f"label_{fidelity}_overhead", total - t_label)
    return {
        "round": r,
        "fidelity": fidelity,
        "n_ok": n_ok,
        "n_failed": n_failed,
        "n_reused": n_reused,
        "cost": cost,
    }
