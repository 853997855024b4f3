"""`mfal bench scale`: cost of scoring and of one training epoch vs cell size and vs number of candidates.

Every point runs in its own Python subprocess (so peak RSS, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, is
that point's alone), with one torch thread unless told otherwise. Structures: LMFP supercells of mfal's
built-in LiFePO4 cell (28 atoms; every 4th Fe → Mn, i.e. LiMn0.25Fe0.75PO4), rattled 0.05 Å.

- ``atoms``: scoring (``score_candidates``: K members of the campaign's default ensemble kind, all fidelities,
  energy + forces + moments, graphs built inside, the campaign's ``force_spread``) and one training epoch
  (``train_on_datasets``, E+F+S(+M) loss, labels from the pretrained model) of a few cells of 28, 112, 224, 448 atoms; the fitted exponent b of
  CPU time per structure ∝ atoms^b;
- ``candidates``: 100, 1,000 (quick) and 10,000 (full) 28-atom candidates scored in a stream of batches
  (:func:`score_stream`: ``score_candidates`` per batch, only the scores kept);
- ``throughput``: candidates/s per model pass of the scorer (a shared-trunk ensemble makes one pass per
  fidelity, independent members K per fidelity) vs CHGNet 0.3.0's own batched ``predict_structure`` at the
  same batch size, side by side in one process.
Units: seconds, MB (RSS), atoms per cell. Memory: the exact scorer held ≈ 5 MB per atom of a batch (the K-probe
batched backward keeps the trunk graph; a 50 × 28-atom batch was OOM-killed on a 23 GB shared machine), so batches
are 8 candidates (≈ 224 atoms).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from mfal.errors import ConfigError, MfalError

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"atoms": [28, 56], "atoms_cells": 1, "candidates": [4], "batch": 2, "throughput_n": 2, "k": 2},
    "quick": {
        "atoms": [28, 112, 224, 448],
        "atoms_cells": 2,
        "candidates": [100, 1000],
        "batch": 8,
        "throughput_n": 32,
        "k": 4,
    },
    "full": {
        "atoms": [28, 112, 224, 448],
        "atoms_cells": 4,
        "candidates": [100, 1000, 10000],
        "batch": 8,
        "throughput_n": 64,
        "k": 4,
    },
}
#: supercell of the 28-atom cell giving each size
SUPERCELLS = {28: (1, 1, 1), 56: (2, 1, 1), 112: (2, 2, 1), 224: (2, 2, 2), 448: (4, 2, 2)}
TARGETS = {"time_exponent_max": 1.1, "rss_mb_10000_max": 4096.0, "per_pass_over_chgnet_min": 0.8}


def lmfp_cells(n_atoms: int, n: int, *, seed: int = 0, rattle: float = 0.05) -> Iterator[Any]:
    """``n`` rattled LiMn0.25Fe0.75PO4 supercells of ``n_atoms`` atoms (generated lazily)."""
    from mfal.explore.structures import lifepo4_structure

    if n_atoms not in SUPERCELLS:
        raise ConfigError(f"n_atoms={n_atoms} not in {sorted(SUPERCELLS)}")
    base = lifepo4_structure()
    base.make_supercell(SUPERCELLS[n_atoms])
    fe = [i for i, site in enumerate(base) if site.specie.symbol == "Fe"]
    for i in fe[::4]:
        base.replace(i, "Mn")
    for j in range(n):
        cell = base.copy()
        cell.perturb(rattle, seed=seed + j) if _perturb_takes_seed() else cell.perturb(rattle)
        yield cell


def _perturb_takes_seed() -> bool:
    import inspect

    from pymatgen.core import Structure

    return "seed" in inspect.signature(Structure.perturb).parameters


def bench_ensemble(k: int, kind: str | None = None) -> Any:
    """K members of ``kind`` (default: the campaign's) built from pretrained CHGNet 0.3.0 without training:
    heads share the trunk (readout noise), independent members get trunk noise too (cost is what counts)."""
    import copy

    import torch

    from mfal.model import MFCHGNet, MFEnsemble, readout_ensemble

    if kind is None:
        from mfal.bench.model import campaign_kind

        kind = campaign_kind()
    base = MFCHGNet.from_pretrained("0.3.0")
    if kind == "heads":
        return readout_ensemble(base, k, seed=0, noise=0.02)
    gen = torch.Generator().manual_seed(0)
    members = []
    for _ in range(k):
        m = copy.deepcopy(base)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(1e-3 * p.abs() * torch.randn(p.shape, generator=gen))
        members.append(m)
    return MFEnsemble(members)


def score_stream(ensemble: Any, structures: Iterable[Any], fidelities: Any, *, batch: int) -> dict[str, np.ndarray]:
    """Scores of a stream of candidates in batches of ``batch`` (``score_candidates`` per batch; only the score
    arrays are kept, forces and moments are dropped): ``{fidelity: {score name: [n]}}`` flattened as
    ``"<fidelity>/<score>"`` -> array."""
    from mfal.bench.kinds import campaign_scorer
    from mfal.uncertainty import score_candidates

    out: dict[str, list[float]] = {}
    chunk: list[Any] = []
    scorer = campaign_scorer(ensemble)  # what the campaign's score step passes

    def flush() -> None:
        for fid, sc in score_candidates(ensemble, chunk, fidelities, batch_size=batch, **scorer).items():
            for name, values in sc.scores.items():
                out.setdefault(f"{fid}/{name}", []).extend(values)
        chunk.clear()

    for s in structures:
        chunk.append(s)
        if len(chunk) >= batch:
            flush()
    if chunk:
        flush()
    return {key: np.asarray(v) for key, v in out.items()}


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KB


def _clock(fn: Any) -> dict[str, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}


def run_point(point: dict[str, Any]) -> dict[str, Any]:
    """One measurement (in this process): ``point["what"]`` in score_atoms, train_atoms, candidates,
    throughput."""
    import torch

    torch.set_num_threads(int(point.get("threads", 1)))
    what, k = point["what"], int(point["k"])
    ens = bench_ensemble(k, point.get("kind"))
    fids = ens.fidelities
    rss0 = _rss_mb()
    from mfal.bench.kinds import campaign_scorer

    res: dict[str, Any] = {
        **point, "kind": "heads" if ens.shared_trunk else "independent", "scorer": campaign_scorer(ens)
    }  # fmt: skip
    if what == "score_atoms":
        cells = list(lmfp_cells(point["n_atoms"], point["n"]))
        score_stream(ens, cells[:1], fids, batch=1)  # warm-up
        res.update(_clock(lambda: score_stream(ens, cells, fids, batch=len(cells))))
    elif what == "train_atoms":
        res.update(_train_epoch(ens.members[0], list(lmfp_cells(point["n_atoms"], point["n"]))))
    elif what == "candidates":
        cells = lmfp_cells(28, point["n"])  # generated lazily, never all in memory
        res.update(_clock(lambda: score_stream(ens, cells, fids, batch=point["batch"])))
    elif what == "throughput":
        res.update(_throughput(ens, list(lmfp_cells(28, point["n"])), point["batch"], point.get("repeats", 2)))
    else:
        raise ConfigError(f"bench scale: unknown point {what!r}")
    res["rss_setup_mb"] = round(rss0, 1)
    res["rss_peak_mb"] = round(_rss_mb(), 1)
    return res


def _train_epoch(model: Any, cells: list) -> dict[str, float]:
    """One epoch (batch 1, E+F+S+M loss) on ``cells`` labeled by the model itself (cost, not accuracy)."""
    from mfal.store.docs import FrameDoc
    from mfal.train.config import TrainConfig
    from mfal.train.data import FrameDataset
    from mfal.train.trainer import train_on_datasets

    fid = model.fidelities[-1]
    preds = model.predict(cells, fid, task="efsm", batch_size=4)
    frames = [
        FrameDoc.from_structure(
            s, fidelity=fid, energy=float(p["e"]) * len(s), forces=np.asarray(p["f"]).tolist(),
            stress=np.asarray(p["s"]).tolist(), magmoms=np.asarray(p["m"]).tolist(), source="import",
        )
        for s, p in zip(cells, preds, strict=True)
    ]
    ds = FrameDataset.build(frames, model)
    cfg = TrainConfig(epochs=1, batch_size=1, patience=None, device="cpu", fit_atomref=False)
    return _clock(lambda: train_on_datasets(model, ds, ds.subset([]), cfg))


def _throughput(ens: Any, cells: list, batch: int, repeats: int) -> dict[str, Any]:
    """Candidates/s of the scorer per model pass and of CHGNet's batched predict_structure, rotated."""
    import contextlib
    import io

    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):
        chgnet = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
    fids = ens.fidelities
    passes = len(fids) * (1 if ens.shared_trunk else len(ens.members))
    fns = {
        "chgnet": lambda: chgnet.predict_structure(cells, task="efsm", batch_size=batch),
        "scorer": lambda: score_stream(ens, cells, fids, batch=batch),
    }
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for rep in range(repeats):
        for name in (list(fns) if rep % 2 == 0 else list(fns)[::-1]):
            times[name].append(_clock(fns[name])["cpu_s"])
    t_chg, t_sc = float(np.median(times["chgnet"])), float(np.median(times["scorer"]))
    return {
        "passes": passes,
        "chgnet_candidates_per_s": len(cells) / t_chg,
        "scorer_candidates_per_s": len(cells) / t_sc,
        "scorer_candidates_per_s_per_pass": len(cells) * passes / t_sc,
        "per_pass_over_chgnet": (len(cells) * passes / t_sc) / (len(cells) / t_chg),
        "cpu_s": t_sc,
        "chgnet_cpu_s": t_chg,
    }


def _subprocess_point(point: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run :func:`run_point` in a fresh interpreter (peak RSS of this point only)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "point.json")
        code = (
            "import json, sys, warnings; warnings.filterwarnings('ignore'); "
            "from mfal.bench.scale import run_point; "
            "json.dump(run_point(json.loads(sys.argv[1])), open(sys.argv[2], 'w'))"
        )
        env = {**os.environ, "OMP_NUM_THREADS": str(point.get("threads", 1))}
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(point), out],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )
        if proc.returncode != 0 or not os.path.isfile(out):
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise MfalError(f"bench scale point {point}: exit {proc.returncode}: {tail[0]}")
        with open(out) as fh:
            return json.load(fh)


def fit_exponent(atoms: list[float], seconds: list[float]) -> float | None:
    """Slope b of log(seconds) vs log(atoms) (least squares); None with fewer than 2 finite points."""
    pairs = [(a, s) for a, s in zip(atoms, seconds, strict=True) if a > 0 and s > 0 and np.isfinite(s)]
    if len(pairs) < 2:
        return None
    x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(x, y, 1)[0])


#: point groups of ``--points`` (``atoms`` = both per-atom series)
POINT_KINDS = ("score_atoms", "train_atoms", "candidates", "throughput")


def parse_points(spec: str | None) -> set[str]:
    """Point kinds of a ``--points`` value such as ``atoms`` or ``score_atoms,throughput`` (None/"" = all)."""
    if not spec:
        return set(POINT_KINDS)
    out: set[str] = set()
    for name in filter(None, (x.strip() for x in spec.split(","))):
        if name == "atoms":
            out |= {"score_atoms", "train_atoms"}
        elif name in POINT_KINDS:
            out.add(name)
        else:
            raise ConfigError(f"--points: {name!r} is not one of atoms, {', '.join(POINT_KINDS)}")
    return out


def run_scale_bench(preset: str = "quick", *, threads: int = 1, kind: str | None = None,
                    timeout: float = 3600.0, progress: Any = None, points: str | None = None) -> dict[str, Any]:
    """The points of ``preset`` (tiny | quick | full) of the kinds in ``points`` (see :func:`parse_points`;
    default all), each in a subprocess; returns the report (see module)."""
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} not in {sorted(PRESETS)}")
    wanted = parse_points(points)
    p = PRESETS[preset]
    common = {"k": p["k"], "threads": threads, "kind": kind}
    started = time.perf_counter()
    load0 = os.getloadavg()[0]
    todo: list[dict[str, Any]] = []
    for n_atoms in p["atoms"]:
        todo.append({**common, "what": "score_atoms", "n_atoms": n_atoms, "n": p["atoms_cells"]})
        todo.append({**common, "what": "train_atoms", "n_atoms": n_atoms, "n": p["atoms_cells"]})
    for n in p["candidates"]:
        todo.append({**common, "what": "candidates", "n": n, "batch": p["batch"]})
    todo.append({**common, "what": "throughput", "n": p["throughput_n"], "batch": p["batch"]})
    results = []
    for point in (t for t in todo if t["what"] in wanted):
        results.append(_subprocess_point(point, timeout))
        if progress is not None:
            progress(results[-1])
    report: dict[str, Any] = {"preset": preset, "threads": threads, "points": results}
    for what in ("score_atoms", "train_atoms"):
        rows = [r for r in results if r["what"] == what]
        atoms = [float(r["n_atoms"]) for r in rows]
        report[f"{what}_exponent_cpu"] = fit_exponent(atoms, [r["cpu_s"] / r["n"] for r in rows])
        report[f"{what}_exponent_wall"] = fit_exponent(atoms, [r["wall_s"] / r["n"] for r in rows])
    cand = [r for r in results if r["what"] == "candidates"]
    report["candidates"] = {
        str(r["n"]): {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "rss_peak_mb": r["rss_peak_mb"]} for r in cand
    }
    report["rss_peak_mb_max_candidates"] = max((r["rss_peak_mb"] for r in cand), default=None)
    thr = next((r for r in results if r["what"] == "throughput"), {})
    report["per_pass_over_chgnet"] = thr.get("per_pass_over_chgnet")
    report["kind"] = thr.get("kind", kind)
    report["scorer"] = thr.get("scorer")  # score_candidates options the campaign uses (force_spread, force_probes)
    report["point_kinds"] = sorted(wanted)
    report["targets"] = TARGETS
    report["load_average_start_end"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return report
