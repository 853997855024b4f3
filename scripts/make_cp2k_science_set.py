#!/usr/bin/env python
"""Make the real-DFT LF/HF set of the science benchmark (CP2K PBE+U, olivine LiMn_xFe_{1-x}PO4 cells).

Each cell (28-atom olivine, rattled σ 0.02–0.06 Å and strained ±2 %) is labeled twice with CP2K 2023.1:

* LF: restricted (RKS) PBE+U, no moments                         (fidelity "lf")
* HF: unrestricted (UKS) PBE+U, AFM high-spin initial moments     (fidelity "hf"; Mulliken moments per site)

Cell kinds (``scripts/cp2k_lmfp.py``): ``lfp`` LiFePO4, ``mn25``/``mn50`` LiMn_xFe_{1-x}PO4, ``li75``/``li50``
Li_{1-y}FePO4, ``mn25li75``. Basis/cutoff/+U as the tested recipe (DZVP-MOLOPT-SR-GTH, GTH-PBE, 400/50 Ry,
EPS_DEFAULT 1e-8, Γ only, LOWDIN U_eff Fe 4.0 / Mn 3.9 eV). Each fidelity has a ladder of SCF settings
(``--lf-ladder``/``--hf-ladder``, names in ``cp2k_lmfp.SCF``); the first that converges is kept. Every attempt,
failed or not, is one line of the runs log (JSONL, with reason, SCF steps, CPU and wall time); a failed attempt
is never retried and a cell whose ladder fails at either fidelity never enters the set.

Resumable: cells in ``--out`` are skipped, finished CP2K runs in ``--workdir`` are reused, attempts in the runs
log are not repeated. One thread per CP2K run; start it under ``nice -n 19``:

    bash scripts/setup-cp2k.sh
    nohup nice -n 19 python scripts/make_cp2k_science_set.py --stop-at 13:35 > /tmp/cp2k-set.log 2>&1 &

The output is mfal's extxyz layout (``mfal.store.extxyz``): energy eV (total), forces eV/Å, stress GPa in
CHGNet's sign (= −1 × CP2K's pressure-like stress), HF Mulliken moments μB, ``cost`` = CPU core-seconds of the
CP2K process, plus ``cell_id``/``cell_kind`` pairing the LF and HF frame of a cell.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # mfal from this checkout when not installed
import cp2k_lmfp as C  # noqa: E402

DATA = Path("mfal/data/science")
FIRST_SET = DATA / "cp2k_lifepo4.extxyz"
# measured (README): diagonalisation + smearing oscillated on Mn/delithiated RKS cells, OT is variational;
# even electron counts take closed-shell OT-CG, odd ones ROKS (main() filters the ladder by parity)
LF_LADDER = "ot-cg-gap0.002,roks-ot-fsi,roks-ot-cg,ot-cg"
HF_LADDER = "ot,ot-cg"


def setup_env() -> Path:
    """Point pymatgen at the CP2K basis/potential DB built by scripts/setup-cp2k.sh; returns it."""
    data = Path(os.environ.get("MFAL_CP2K_DATA", Path.home() / ".cache/mfal/cp2k")) / "pmg_cp2k_data"
    os.environ["PMG_CP2K_DATA_DIR"] = str(data)
    os.environ.setdefault("PMG_DEFAULT_CP2K_FUNCTIONAL", "PBE")
    os.environ.pop("CP2K_DATA_DIR", None)
    if not (data / "Fe").is_file():
        sys.exit(f"make_cp2k_science_set: error: no CP2K data DB at {data}; run `bash scripts/setup-cp2k.sh`")
    return data


def plan(n_lfp: int, n_each: int, kinds: list[str], seed: int) -> list:
    """Cells in the order they are computed: one of each kind per turn, two LiFePO4 cells per turn."""
    lfp = C.make_lfp_cells(n_lfp, seed)
    out, li = list(lfp[:6]), 6  # the first set's six cells first (imported, not recomputed)
    for i in range(n_each):
        for kind in kinds:
            out.append(C.make_cell(kind, i, seed))
        out.extend(lfp[li : li + 2])
        li += 2
    return out + lfp[li:]


def read_log(path: Path) -> list[dict]:
    """Attempt records of earlier invocations."""
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


@contextlib.contextmanager
def locked(path: Path):
    """Exclusive lock (a file in the temp dir, not beside ``path``) so shards side by side append whole records."""
    with open(Path(tempfile.gettempdir()) / f"mfal-{Path(path).name}.lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lk, fcntl.LOCK_UN)


def append_log(path: Path, rec: dict) -> None:
    """One attempt (JSON line), flushed at once."""
    with locked(path), open(path, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")


def label(cell_id: str, s, fid: str, ladder: list[str], args, log: list[dict], data_dir: Path) -> dict | None:
    """Run the SCF ladder of one fidelity; the first converged result (with its attempt record) or None."""
    for name in ladder:
        scf = C.SCF[name]
        prev = [r for r in log if r["cell_id"] == cell_id and r["fidelity"] == fid and r["scf"] == name]
        run_dir = args.workdir / cell_id / fid / name
        if prev and not prev[-1]["ok"] and not prev[-1].get("retryable") and not args.retry_failed:
            continue  # failed before (a settings failure, not the clock): next rung
        rec = {"cell_id": cell_id, "fidelity": fid, "scf": name, "n_atoms": len(s)}
        out = run_dir / "cp2k.out"
        if prev and prev[-1]["ok"] and out.exists():
            try:
                res = C.parse_output(out, len(s))
                return {**res, **prev[-1], "reused": True}
            except (RuntimeError, IndexError, ValueError):
                pass
        if args.stop_at and dt.datetime.now(dt.UTC).strftime("%H:%M") >= args.stop_at:
            print(f"{cell_id} {fid}: --stop-at {args.stop_at} reached, not started", flush=True)
            raise SystemExit(0)
        C.write_input(s, fid, scf, run_dir, args.walltime, data_dir)
        handoff(args.workdir / cell_id / fid, ladder, name, run_dir)
        rec["started_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        rec["loadavg_1min"] = os.getloadavg()[0]
        wall, cpu = C.run_cp2k(run_dir, args.walltime + 120)
        rec.update(wall_s=round(wall, 1), cpu_s=round(cpu, 1))
        try:
            res = C.parse_output(out, len(s))
            rec.update(ok=True, reason=None, scf_steps=res["scf_steps"])
        except (RuntimeError, IndexError, ValueError) as err:
            lines = out.read_text(errors="replace").splitlines() if out.exists() else []
            rec.update(ok=False, reason=str(err)[:200], scf_steps=C.scf_steps(lines))
            if wall >= 0.97 * args.walltime or "wall-time" in rec["reason"]:
                rec.update(retryable=True, reason=f"wall-time limit {args.walltime} s: {rec['reason']}"[:200])
            res = None
        append_log(args.log, rec)
        log.append(rec)
        print(
            f"{cell_id} {fid} {name}: {'ok' if rec['ok'] else 'FAILED ' + rec['reason']} "
            f"steps={rec['scf_steps']} cpu={cpu:.0f}s wall={wall:.0f}s",
            flush=True,
        )
        if res is not None:
            return {**res, **rec}
        if rec.get("retryable"):  # out of time, not a settings failure: same rung again next invocation
            return None
    return None


def handoff(fid_dir: Path, ladder: list[str], name: str, run_dir: Path) -> None:
    """An OT rung without a wavefunction of its own starts from the last earlier OT rung's (same spin treatment:
    the ladder is filtered by parity), as the labeler's ``restart_from_previous`` does; SCF_GUESS RESTART reads it."""
    own = run_dir / "CP2K-RESTART.wfn"
    if own.exists() or not C.SCF[name].ot:
        return
    for prev in reversed(ladder[: ladder.index(name)]):
        wfn = fid_dir / prev / "CP2K-RESTART.wfn"
        if C.SCF[prev].ot and C.SCF[prev].roks == C.SCF[name].roks and wfn.exists():
            shutil.copyfile(wfn, own)
            print(f"{run_dir}: starts from {wfn}", flush=True)
            return


def append_cell(args, cell_id: str, kind: str, s, sigma: float, results: dict) -> None:
    """Append the LF and HF frames of one cell to --out (mfal extxyz layout)."""
    from ase.io import write

    frames = [frame_atoms(cell_id, kind, s, sigma, fid, results[fid], args.workdir) for fid in ("lf", "hf")]
    with locked(args.out):
        write(args.out, frames, format="extxyz", append=True)
    print(f"{cell_id}: appended LF+HF to {args.out}", flush=True)


def frame_atoms(cell_id: str, kind: str, s, sigma: float, fid: str, r: dict, workdir: Path):
    """One labeled frame (ASE Atoms in mfal's extxyz layout) from a parsed run ``r`` of this script's SCF table."""
    from mfal.store.docs import FrameDoc
    from mfal.store.extxyz import frame_to_atoms

    plain = s.copy()
    plain.remove_site_property("magmom")
    scf = C.SCF[r["scf"]]
    calc = {
        "code": "cp2k",
        "version": "2023.1",
        "functional": "PBE",
        "ispin": 2 if fid == "hf" else 1,
        "hubbard_u": {el: u for el, u in C.HUBBARD_U.items() if el in plain.symbol_set},
        "plus_u_method": "LOWDIN",
        "basis": "DZVP-MOLOPT-SR-GTH",
        "cutoff_ry": 400,
        "kpoints": "Gamma",
        "magmom_init": [round(m, 1) for m in s.site_properties["magmom"]] if fid == "hf" else None,
        "multiplicity": C.multiplicity(s) if fid == "hf" else 1,
        "moments": "Mulliken" if fid == "hf" else None,
        "scf_steps": r["scf_steps"],
        "wall_s": r["wall_s"],
        "cost_kind": "CPU core-s of one cp2k.psmp thread (nice 19, shared cores)",
        **scf.summary(),
    }
    doc = FrameDoc.from_structure(
        plain,
        fidelity=fid,
        source="cp2k",
        calc=calc,
        energy=r["energy"],
        forces=r["forces"],
        stress=r["stress"],
        magmoms=r["magmoms"] if fid == "hf" else None,
        cost=r["cpu_s"],
        task_dir=str(workdir / cell_id / fid / r["scf"]),
    )
    atoms = frame_to_atoms(doc)
    atoms.info.update(cell_id=cell_id, cell_kind=kind, rattle_sigma=sigma)
    return atoms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DATA / "cp2k_lmfp.extxyz")
    ap.add_argument("--log", type=Path, default=DATA / "cp2k_lmfp_runs.jsonl", help="attempt log (JSONL)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mfal-cp2k-science"))
    ap.add_argument(
        "--n-lfp", type=int, default=18, help="rattled/strained LiFePO4 cells (first 6 = first set)"
    )
    ap.add_argument("--n-each", type=int, default=6, help="cells per substituted/delithiated kind")
    ap.add_argument("--kinds", default="mn25,li75,mn50,li50", help=f"of {','.join(C.KINDS)}")
    ap.add_argument("--only", default="", help="comma-separated cell ids (probe runs)")
    ap.add_argument("--lf-ladder", default=LF_LADDER)
    ap.add_argument("--hf-ladder", default=HF_LADDER)
    ap.add_argument("--lf-ladder-lfp", default="ot", help="LF ladder of plain LiFePO4 cells (gapped RKS)")
    ap.add_argument(
        "--walltime", type=int, default=7200, help="CP2K WALLTIME per attempt (s); killed 120 s later"
    )
    ap.add_argument("--stop-at", default="", help="HH:MM UTC: start no CP2K run at or after it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--shard", default="0/1", help="i/n: this process takes planned cells with index %% n == i"
    )
    ap.add_argument(
        "--only-fidelity", choices=("lf", "hf"), help="label only this fidelity (runs are reused later)"
    )
    ap.add_argument("--retry-failed", action="store_true", help="rerun attempts the log records as failed")
    args = ap.parse_args()
    data_dir = setup_env()

    from ase.io import read

    with locked(args.out):  # start from the first set's 6 LiFePO4 cells (same settings as "ot")
        if not args.out.exists() and FIRST_SET.exists() and args.out != FIRST_SET:
            shutil.copyfile(FIRST_SET, args.out)
            print(f"started {args.out} from {FIRST_SET}", flush=True)
    done = {a.info.get("cell_id") for a in read(args.out, index=":")} if args.out.exists() else set()
    log = read_log(args.log)
    only = set(filter(None, args.only.split(",")))
    shard, n_shards = (int(x) for x in args.shard.split("/"))
    for idx, (cell_id, s, sigma) in enumerate(
        plan(args.n_lfp, args.n_each, args.kinds.split(","), args.seed)
    ):
        if cell_id in done or (only and cell_id not in only) or idx % n_shards != shard:
            continue
        kind = cell_id.split("-")[1]
        results = {}
        for fid in ("lf", "hf"):
            if args.only_fidelity and fid != args.only_fidelity:
                continue
            ladder = args.lf_ladder_lfp if (fid == "lf" and kind == "lfp") else getattr(args, f"{fid}_ladder")
            rungs = ladder.split(",")
            if (
                fid == "lf"
            ):  # odd electron count: closed-shell OT is impossible (ROKS or smearing); even: no ROKS
                odd = C.n_electrons(s) % 2 == 1
                rungs = [n for n in rungs if not C.SCF[n].ot or C.SCF[n].roks == odd]
            r = label(cell_id, s, fid, rungs, args, log, data_dir)
            if r is None:
                print(f"{cell_id} {fid}: every SCF setting failed; cell not in the set", flush=True)
                break
            results[fid] = r
        if len(results) == 2:
            append_cell(args, cell_id, kind, s, sigma, results)


if __name__ == "__main__":
    main()
