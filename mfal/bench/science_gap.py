"""LF/HF gap statistics of a paired label set (the numbers of the fidelity-gap table in docs/benchmarks.md).

The one implementation (``scripts/cp2k_gap_stats.py`` calls it for the CP2K set): per atom |F_HF − F_LF| (vector norm, eV/Å) over mean |F_HF|,
ΔE = (E_HF − E_LF) / n_atoms (eV/atom, mean ± std over structures), ΔP = tr(σ_HF − σ_LF) / 3 (GPa, CHGNet sign,
mean ± std) and the RMS over the 9 stress components (GPa).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mfal.errors import DataError
from mfal.store.docs import FrameDoc


def gap_stats(pairs: Sequence[tuple[FrameDoc, FrameDoc]]) -> dict[str, float | int | None]:
    """Gap statistics of ``(lf, hf)`` frame pairs of the same structures (stress terms None without stress)."""
    if not pairs:
        raise DataError("gap_stats: no LF/HF pairs")
    df, f, de, dp, rms = [], [], [], [], []
    for lf, hf in pairs:
        if lf.nsites != hf.nsites:
            raise DataError(
                f"gap_stats: pair {lf.frame_id[:12]}/{hf.frame_id[:12]} has different atom counts"
            )
        f_lf, f_hf = np.asarray(lf.forces, float), np.asarray(hf.forces, float)
        df.append(np.linalg.norm(f_hf - f_lf, axis=1))
        f.append(np.linalg.norm(f_hf, axis=1))
        de.append((hf.energy - lf.energy) / hf.nsites)
        if lf.stress is not None and hf.stress is not None:
            d = np.asarray(hf.stress, float).reshape(3, 3) - np.asarray(lf.stress, float).reshape(3, 3)
            dp.append(float(np.trace(d)) / 3)
            rms.append(float(np.sqrt(np.mean(d**2))))
    df_a, f_a = np.concatenate(df), np.concatenate(f)
    return {
        "n_pairs": len(pairs),
        "mean_dF_ev_ang": float(df_a.mean()),
        "mean_F_hf_ev_ang": float(f_a.mean()),
        "dF_over_F": float(df_a.mean() / f_a.mean()),
        "dE_mean_ev_atom": float(np.mean(de)),
        "dE_std_ev_atom": float(np.std(de)),
        "dP_mean_gpa": float(np.mean(dp)) if dp else None,
        "dP_std_gpa": float(np.std(dp)) if dp else None,
        "dsigma_rms_gpa": float(np.mean(rms)) if rms else None,
    }


def gap_row(name: str, stats: dict) -> str:
    """One markdown row of the fidelity-gap table."""
    dp = (
        f"ΔP {stats['dP_mean_gpa']:+.2f} ± {stats['dP_std_gpa']:.2f} GPa (RMS {stats['dsigma_rms_gpa']:.2f})"
        if stats.get("dP_mean_gpa") is not None
        else "–"
    )
    return (
        f"| {name} | {stats['n_pairs']} | {stats['mean_dF_ev_ang']:.3f} / {stats['mean_F_hf_ev_ang']:.3f} eV/Å = "
        f"**{100 * stats['dF_over_F']:.0f} %** | {stats['dE_mean_ev_atom']:+.3f} ± {stats['dE_std_ev_atom']:.3f} | {dp} |"
    )
