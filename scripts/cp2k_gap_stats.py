#!/usr/bin/env python
"""LF/HF gap statistics of a paired extxyz set (frames paired by ``cell_id``), overall and per cell kind.

    python scripts/cp2k_gap_stats.py mfal/data/science/cp2k_lmfp.extxyz [--markdown]

Per pair: |F_HF − F_LF| over all atoms and components-as-vectors (eV/Å), |F_HF| (eV/Å), E_HF − E_LF per atom
(eV/atom), and the stress gap = RMS over the 9 components of σ_HF − σ_LF (GPa) plus the pressure gap
(tr σ_HF − tr σ_LF)/3 (GPa, CHGNet sign).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np


def pairs(path: Path) -> dict[str, dict]:
    """cell_id -> {"kind", "lf": Atoms, "hf": Atoms} for cells with both fidelities."""
    from ase.io import read

    cells: dict[str, dict] = defaultdict(dict)
    for a in read(path, index=":"):
        cid = a.info["cell_id"]
        cells[cid][a.info["fidelity"]] = a
        cells[cid]["kind"] = a.info.get("cell_kind") or cid.split("-")[1]
    return {k: v for k, v in cells.items() if "lf" in v and "hf" in v}


def stats(cells: list[dict]) -> dict:
    """Gap statistics of a list of pairs."""
    dfs, fs, de, dsig, dp, cost = [], [], [], [], [], []
    for c in cells:
        lf, hf = c["lf"], c["hf"]
        f_lf, f_hf = lf.calc.results["forces"], hf.calc.results["forces"]
        dfs.append(np.linalg.norm(f_hf - f_lf, axis=1))
        fs.append(np.linalg.norm(f_hf, axis=1))
        de.append((hf.calc.results["energy"] - lf.calc.results["energy"]) / len(hf))
        s_lf = np.asarray(lf.info["mfal_stress_gpa"], float).reshape(3, 3)
        s_hf = np.asarray(hf.info["mfal_stress_gpa"], float).reshape(3, 3)
        d = s_hf - s_lf
        dsig.append(float(np.sqrt(np.mean(d**2))))
        dp.append(float(np.trace(d) / 3))
        cost.append((float(lf.info.get("cost", 0)), float(hf.info.get("cost", 0))))
    dfs_a, fs_a = np.concatenate(dfs), np.concatenate(fs)
    cost_a = np.array(cost)
    return {
        "n": len(cells),
        "mean_dF": float(dfs_a.mean()),
        "mean_F_hf": float(fs_a.mean()),
        "ratio": float(dfs_a.mean() / fs_a.mean()),
        "dE_mean": float(np.mean(de)),
        "dE_std": float(np.std(de)),
        "dsig_rms": float(np.mean(dsig)),
        "dP_mean": float(np.mean(dp)),
        "dP_std": float(np.std(dp)),
        "cost_lf": float(cost_a[:, 0].mean()),
        "cost_hf": float(cost_a[:, 1].mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", type=Path)
    args = ap.parse_args()
    cells = pairs(args.path)
    groups: dict[str, list] = defaultdict(list)
    for c in cells.values():
        groups[c["kind"]].append(c)
    print(
        "| cells | n | mean abs(F_HF−F_LF) (eV/Å) | mean abs(F_HF) (eV/Å) | ratio | E_HF−E_LF (eV/atom) "
        "| stress gap RMS (GPa) | ΔP (GPa) | mean cost LF / HF (core-s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [("all", list(cells.values()))] + sorted(groups.items())
    for name, cs in rows:
        s = stats(cs)
        print(
            f"| {name} | {s['n']} | {s['mean_dF']:.3f} | {s['mean_F_hf']:.3f} | {s['ratio']:.2f} "
            f"| {s['dE_mean']:+.3f} ± {s['dE_std']:.3f} | {s['dsig_rms']:.2f} | {s['dP_mean']:+.2f} ± {s['dP_std']:.2f} "
            f"| {s['cost_lf']:.0f} / {s['cost_hf']:.0f} |"
        )


if __name__ == "__main__":
    main()
