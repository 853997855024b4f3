#!/usr/bin/env python
"""LF/HF gap statistics of a paired extxyz set (frames paired by ``cell_id``), overall and per cell kind.

    python scripts/cp2k_gap_stats.py mfal/data/science/cp2k_lmfp.extxyz [--markdown]

Per pair: |F_HF − F_LF| over all atoms and components-as-vectors (eV/Å), |F_HF| (eV/Å), E_HF − E_LF per atom
(eV/atom), and the stress gap = RMS over the 9 components of σ_HF − σ_LF (GPa) plus the pressure gap
(tr σ_HF − tr σ_LF)/3 (GPa, CHGNet sign).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # mfal from this checkout when not installed


def pairs(path: Path) -> dict[str, dict]:
    """cell_id -> {"kind", "lf": Atoms, "hf": Atoms} for cells with both fidelities."""
    from ase.io import read

    cells: dict[str, dict] = defaultdict(dict)
    for a in read(path, index=":"):
        cid = a.info["cell_id"]
        cells[cid][a.info["fidelity"]] = a
        cells[cid]["kind"] = a.info.get("cell_kind") or cid.split("-")[1]
    return {k: v for k, v in cells.items() if "lf" in v and "hf" in v}


def _frame(a, cid: str) -> SimpleNamespace:
    """The fields :func:`mfal.bench.science_gap.gap_stats` reads, from one labeled Atoms (eV, eV/Å, GPa)."""
    return SimpleNamespace(
        frame_id=cid, nsites=len(a), energy=a.calc.results["energy"], forces=a.calc.results["forces"],
        stress=a.info["mfal_stress_gpa"],
    )  # fmt: skip


def stats(cells: list[dict]) -> dict:
    """Gap statistics of a list of pairs (the product's gap_stats) plus the mean label costs (core-s)."""
    from mfal.bench.science_gap import gap_stats

    g = gap_stats([(_frame(c["lf"], c["lf"].info["cell_id"]), _frame(c["hf"], c["hf"].info["cell_id"])) for c in cells])
    cost = np.array([(float(c["lf"].info.get("cost", 0)), float(c["hf"].info.get("cost", 0))) for c in cells])
    return {
        "n": g["n_pairs"], "mean_dF": g["mean_dF_ev_ang"], "mean_F_hf": g["mean_F_hf_ev_ang"], "ratio": g["dF_over_F"],
        "dE_mean": g["dE_mean_ev_atom"], "dE_std": g["dE_std_ev_atom"], "dsig_rms": g["dsigma_rms_gpa"],
        "dP_mean": g["dP_mean_gpa"], "dP_std": g["dP_std_gpa"],
        "cost_lf": float(cost[:, 0].mean()), "cost_hf": float(cost[:, 1].mean()),
    }  # fmt: skip


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
