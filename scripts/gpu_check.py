"""CUDA vs CPU check of mfal's three heavy paths (run by scripts/gpu-check.sh; also runs CPU-only with --device cpu).

1. model forward (energy eV/atom, forces eV/Å, stress GPa, moments μB) of MF-CHGNet on rattled LiFePO4 cells,
2. one training epoch on the built-in surrogate frames (same seed, same batches),
3. one round of ensemble scoring with the campaign's scorer (``mfal.uncertainty.score_candidates``) of a trained
   K = 3 shared-trunk heads ensemble (``train_ensemble`` with ``kind: heads``, 1 epoch), both fidelities, graphs
   built once,
each on CPU and on the device; prints max |Δ| per quantity, pass/fail against float32 tolerances, and the
device/CPU wall-time ratios plus MF/CHGNet forward ratio on the device. Exit 1 if any check fails.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np
import torch

TOL = {"e": 1e-4, "f": 2e-3, "s": 2e-2, "m": 2e-3, "loss": 1e-3, "score": 2e-3}


def _timed(fn, repeats: int = 3) -> tuple[float, object]:
    out = fn()  # warm-up (CUDA kernels, caches)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats, out


def _max_diff(a: list[dict], b: list[dict], key: str) -> float:
    return max(float(np.max(np.abs(np.asarray(x[key]) - np.asarray(y[key])))) for x, y in zip(a, b, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="device to compare with the CPU (default cuda)")
    ap.add_argument("--cells", type=int, default=8, help="rattled 28-atom LiFePO4 cells")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu-check: torch sees no CUDA device; nothing to check.")
        return 0

    from chgnet.model import CHGNet

    from mfal.fidelity import DEFAULT
    from mfal.model import MFCHGNet
    from mfal.train.example import load_builtin, perturbed_lifepo4
    from mfal.train.trainer import TrainConfig, train_model

    dev = args.device
    ok = True
    report: list[tuple[str, float, float]] = []
    cells = perturbed_lifepo4(args.cells, seed=1)

    # 1. forward
    cpu = MFCHGNet.from_pretrained("0.3.0")
    gpu = copy.deepcopy(cpu).to(dev)
    graphs = cpu.graphs(cells)
    t_cpu, p_cpu = _timed(lambda: cpu.predict(cells, DEFAULT.high, graphs=graphs))
    t_dev, p_dev = _timed(lambda: gpu.predict(cells, DEFAULT.high, graphs=graphs))
    for key in "efsm":
        d = _max_diff(p_cpu, p_dev, key)
        report.append((f"forward {key}", d, TOL[key]))
    chg = CHGNet.load(model_name="0.3.0", use_device=dev, verbose=False)
    t_chg, _ = _timed(lambda: chg.predict_structure(cells, batch_size=16))
    ratios = {"forward device/cpu": t_dev / t_cpu, "MF/CHGNet forward on device": t_dev / t_chg}

    # 2. one training epoch, same seed and batches
    frames = load_builtin()  # 48 LF + 24 HF surrogate frames; a small mixed slice keeps it fast
    lf = [f for f in frames if f.fidelity == DEFAULT.low]
    hf = [f for f in frames if f.fidelity == DEFAULT.high]
    train, val = lf[:12] + hf[:6], lf[12:14] + hf[6:8]
    losses = {}
    for name in ("cpu", dev):
        cfg = TrainConfig(epochs=1, batch_size=8, patience=None, device=name, seed=0, threads=None)
        t0 = time.perf_counter()
        res = train_model(train, val, cfg)
        losses[name] = (time.perf_counter() - t0, res)
    ltr = {k: float(v[1].history[-1]["train_loss"]) for k, v in losses.items()}  # mean loss of the epoch
    report.append(("train epoch loss", abs(ltr["cpu"] - ltr[dev]) / max(abs(ltr["cpu"]), 1e-12), TOL["loss"]))
    ratios["train epoch device/cpu"] = losses[dev][0] / losses["cpu"][0]

    # 3. one round of ensemble scoring: the campaign's scorer on a trained heads ensemble (shared trunk)
    from mfal.model import MFEnsemble
    from mfal.train.ensemble import EnsembleConfig, train_ensemble
    from mfal.uncertainty import score_candidates

    heads_cfg = TrainConfig(epochs=1, batch_size=8, patience=None, device="cpu", seed=0, threads=None)
    members = train_ensemble(train, val, heads_cfg, EnsembleConfig(k=3, bootstrap=True, kind="heads"), seed=0)
    ens_cpu = MFEnsemble([r.model for r in members])
    if not ens_cpu.shared_trunk:
        print("gpu-check: the heads ensemble lost its shared trunk")
        return 1
    ens_dev = MFEnsemble([copy.deepcopy(m).to(dev) for m in ens_cpu.members])
    fids = ens_cpu.fidelities
    from mfal.bench.kinds import campaign_scorer

    for spread in dict.fromkeys([campaign_scorer(ens_cpu)["force_spread"], "exact"]):  # the campaign's first
        opts = {**campaign_scorer(ens_cpu), "force_spread": spread}
        t_c, s_c = _timed(lambda o=opts: score_candidates(ens_cpu, cells, fids, graphs=graphs, **o), repeats=1)
        t_d, s_d = _timed(lambda o=opts: score_candidates(ens_dev, cells, fids, graphs=graphs, **o), repeats=1)
        for fid in fids:
            d = float(np.max(np.abs(s_c[fid].array("force_std_max") - s_d[fid].array("force_std_max"))))
            report.append((f"scoring {fid} force_std_max ({spread})", d, TOL["score"]))
            d = float(np.max(np.abs(s_c[fid].array("energy") - s_d[fid].array("energy")) / len(cells[0])))
            report.append((f"scoring {fid} energy/atom ({spread})", d, TOL["e"]))
        ratios[f"scoring ({spread}, all fidelities) device/cpu"] = t_d / t_c

    print(f"{'check':44s} {'max |Δ|':>10s} {'tolerance':>10s}  result")
    for name, d, tol in report:
        good = bool(np.isfinite(d) and d <= tol)
        ok &= good
        print(f"{name:44s} {d:10.2e} {tol:10.1e}  {'ok' if good else 'FAIL'}")
    for name, r in ratios.items():
        print(f"{name:44s} {r:10.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
