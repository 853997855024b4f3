#!/usr/bin/env python
"""Label cells of the CP2K science plan with the product's CP2K labeler (``mfal.label.cp2k.Cp2kLabeler``).

Unlike ``make_cp2k_science_set.py`` (its own SCF table), this runs exactly what a campaign's ``kind: cp2k``
labeler runs: its settings, SCF ladder, quality gates and FrameDoc. Used to measure the LF without +U
(``--no-u``: restricted PBE, the labeler's smeared ``NO_U_LADDER``) on the Mn-substituted and delithiated cells.

One JSON line per labeled frame in ``--log`` (status, reason, rungs with SCF steps, CPU/wall s, energy); frames
with status ok are appended to ``--out`` (mfal extxyz, ``cell_id``/``cell_kind``/``lf_scheme`` in the info).
Resumable: a cell/fidelity/scheme already in the log is skipped, finished CP2K runs in ``--workdir`` are reused.

    nohup nice -n 19 python scripts/cp2k_label_cells.py --fidelity lf --no-u \
        --cells cp2k-li75-0-00,cp2k-mn25-0-00 --stop-at 23:10 > /tmp/cp2k-cells.log 2>&1 &
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
import cp2k_lmfp as C  # noqa: E402
import make_cp2k_science_set as M  # noqa: E402

DATA = Path("mfal/data/science")


def cell(cell_id: str):
    """(structure, rattle σ) of a planned cell id such as ``cp2k-mn25-0-00``."""
    for cid, s, sigma in M.plan(18, 6, ["mn25", "li75", "mn50", "li50"], 0):
        if cid == cell_id:
            return s, sigma
    kind, i = cell_id.split("-")[1], int(cell_id.split("-")[2])
    got = C.make_cell(kind, i, 0)  # kinds outside the plan (mn25li75: probe only)
    return got[1], got[2]


def pair(argv: list[str]) -> None:
    """``pair``: the LF frames of ``--lf`` with the HF frames of the same cells (``--hf`` extxyz, or a finished
    HF run of ``make_cp2k_science_set.py`` given as ``--hf-run CELL=RUN_DIR``) into one paired extxyz ``--out``.
    The atoms of both frames must agree (1e-6 Å), else the cell is left out with a message."""
    import numpy as np
    from ase.io import read, write

    ap = argparse.ArgumentParser(prog="cp2k_label_cells.py pair", description=pair.__doc__.splitlines()[0])
    ap.add_argument("--lf", type=Path, default=DATA / "cp2k_cells.extxyz")
    ap.add_argument("--hf", type=Path, action="append", help="HF extxyz (repeatable; default: cp2k_lmfp.extxyz)")
    ap.add_argument("--hf-run", action="append", default=[], help="CELL=RUN_DIR (cp2k.out of an HF run)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    lf = {a.info["cell_id"]: a for a in read(args.lf, index=":") if a.info["fidelity"] == "lf"}
    hf = {
        a.info["cell_id"]: a
        for path in args.hf or [DATA / "cp2k_lmfp.extxyz"]
        for a in read(path, index=":")
        if a.info["fidelity"] == "hf"
    }
    for spec in args.hf_run:
        cell_id, run_dir = spec.split("=", 1)
        s, sigma = cell(cell_id)
        res = C.parse_output(Path(run_dir) / "cp2k.out", len(s))
        scf = Path(run_dir).name
        logged = [x for x in M.read_log(DATA / "cp2k_lmfp_runs.jsonl")
                  if (x["cell_id"], x["fidelity"], x["scf"]) == (cell_id, "hf", scf)]  # fmt: skip
        r = {**res, "scf": scf, "cpu_s": logged[-1].get("cpu_s") if logged else None,
             "wall_s": logged[-1].get("wall_s") if logged else None}  # fmt: skip
        hf[cell_id] = M.frame_atoms(cell_id, cell_id.split("-")[1], s, sigma, "hf", r, Path(run_dir).parents[2])
    frames = []
    for cell_id, a in lf.items():
        if cell_id not in hf:
            print(f"{cell_id}: no HF frame", flush=True)
            continue
        other = hf[cell_id]  # symbols first: positions of cells with other atom counts cannot be compared
        if a.get_chemical_symbols() != other.get_chemical_symbols() or np.abs(a.positions - other.positions).max() > 1e-6:
            print(f"{cell_id}: LF and HF atoms differ; left out", flush=True)
            continue
        frames += [a, other]
    write(args.out, frames, format="extxyz")
    print(f"{len(frames) // 2} pairs -> {args.out}", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["pair"]:
        return pair(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", required=True, help="comma-separated cell ids of the plan")
    ap.add_argument("--fidelity", choices=("lf", "hf"), required=True)
    ap.add_argument("--no-u", action="store_true", help="LF as restricted PBE without +U (hubbard_u: {})")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--walltime", type=float, default=2400.0, help="CP2K WALLTIME per attempt (s)")
    ap.add_argument("--workdir", type=Path, default=Path.home() / ".cache/mfal/cp2k-cells")
    ap.add_argument("--log", type=Path, default=DATA / "cp2k_cells_runs.jsonl")
    ap.add_argument("--out", type=Path, default=DATA / "cp2k_cells.extxyz")
    ap.add_argument("--stop-at", default="", help="HH:MM UTC: start no cell at or after it")
    args = ap.parse_args()
    M.setup_env()

    from ase.io import write

    from mfal.label.cp2k import Cp2kLabeler
    from mfal.store.extxyz import frame_to_atoms

    scheme = "pbe" if args.no_u else "pbe+u"
    opts = {"omp_threads": args.threads, "wall_time_limit_s": args.walltime}
    if args.no_u:
        opts["hubbard_u"] = {}
    lab = Cp2kLabeler(**opts)
    done = set()
    if args.log.exists():
        for ln in args.log.read_text().splitlines():
            r = json.loads(ln)
            done.add((r["cell_id"], r["fidelity"], r["scheme"]))
    for cell_id in filter(None, args.cells.split(",")):
        if (cell_id, args.fidelity, scheme) in done:
            continue
        if args.stop_at and dt.datetime.now(dt.UTC).strftime("%H:%M") >= args.stop_at:
            print(f"--stop-at {args.stop_at} reached; {cell_id} not started", flush=True)
            break
        s, sigma = cell(cell_id)
        t0 = time.time()
        [doc] = lab.label([s], args.fidelity, workdir=args.workdir / cell_id / scheme, campaign="cp2k-cells")
        attempts = [
            {k: a.get(k) for k in ("rung", "status", "reason", "scf_steps", "cp2k_time_s", "wall_s", "cost_core_s")}
            for a in (doc.calc.get("scf_attempts") or doc.calc.get("attempts") or [])
        ]
        rec = {
            "cell_id": cell_id, "kind": cell_id.split("-")[1], "fidelity": args.fidelity, "scheme": scheme,
            "n_atoms": len(s), "status": doc.status, "reason": doc.status_reason, "energy_ev": doc.energy,
            "cost_core_s": doc.cost, "wall_s": round(time.time() - t0, 1), "attempts": attempts,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        with args.log.open("a") as fh:
            fh.write(json.dumps(rec, default=str) + "\n")
        print(json.dumps({k: rec[k] for k in ("cell_id", "fidelity", "scheme", "status", "reason", "wall_s")}),
              flush=True)  # fmt: skip
        if doc.status == "ok":
            atoms = frame_to_atoms(doc)
            atoms.info.update(cell_id=cell_id, cell_kind=rec["kind"], rattle_sigma=sigma, lf_scheme=scheme)
            write(args.out, [atoms], format="extxyz", append=True)


if __name__ == "__main__":
    main()
