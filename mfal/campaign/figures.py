"""The campaign's figures, one function each (matplotlib, Agg): they take what ``campaign_status`` and the round
artifacts hold and write one PNG. Counts get integer ticks; a legend names only what is drawn.
Units: forces and their std eV/Å, costs core-hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HOUR = 3600.0


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def hf_error_curve(status: Mapping[str, Any], path: Path, *, high: str, tag: str = "") -> Path:
    """HF validation force MAE of the promoted ensemble vs cumulative HF labels (integer axis) and vs HF
    core-hours spent."""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    rows = status["rounds"]
    n_hf = np.cumsum([r["n_hf_labeled"] for r in rows])
    hours = np.cumsum([r["cost_hf"] for r in rows]) / HOUR
    mae = [r["hf_force_mae"] for r in rows]
    keep = [i for i, m in enumerate(mae) if m is not None]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for ax, x, label in ((axes[0], n_hf, f"{high.upper()} labels (cumulative)"),
                         (axes[1], hours, f"{high.upper()} core-hours spent (cumulative)")):  # fmt: skip
        ax.plot([x[i] for i in keep], [mae[i] for i in keep], "o-")
        for i in keep:
            ax.annotate(f"r{rows[i]['round']}", (x[i], mae[i]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(label)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel(f"{high.upper()} validation force MAE (eV/Å)")
    fig.suptitle(f"{high.upper()} force error vs labels and cost{tag}", fontsize=9)
    return _save(fig, path)


def calibration_plot(points: Mapping[str, Mapping[int, tuple[Sequence[float], Sequence[float]]]], path: Path,
                     *, tag: str = "") -> Path:  # fmt: skip
    """Per fidelity, predicted force std max (calibrated: raw × the round's scale) vs observed max force error
    of each round's new labels, with the ideal line (error = std) and Spearman ρ and miscalibration area per
    round in the legend."""
    from mfal.uncertainty.calibration import calibration_stats

    plt = _plt()
    fids = list(points)
    fig, axes = plt.subplots(1, len(fids), figsize=(4.2 * len(fids), 3.6), squeeze=False)
    for ax, fid in zip(axes[0], fids, strict=True):
        top = 1e-3
        for r, (std, err) in sorted(points[fid].items()):
            if not std:
                continue
            st = calibration_stats(std, err)
            rho = f"ρ = {st.rho:.2f}" if st.rho is not None else "ρ: n < 3"
            area = f", area {st.miscalibration_area:.2f}" if st.miscalibration_area is not None else ""
            ax.scatter(std, err, s=14, label=f"round {r} ({rho}{area})")
            top = max(top, max(std), max(err))
        ax.plot([0, top * 1.05], [0, top * 1.05], "k--", lw=0.8, label="ideal: error = std")
        ax.set_xlabel(f"{fid.upper()} predicted force std max, calibrated (eV/Å)")
        ax.set_ylabel("observed max force error (eV/Å)")
        ax.set_title(f"{fid.upper()} calibration{tag}", fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)


def selection_plot(rounds: Sequence[Mapping[str, Any]], path: Path, *, high: str, low: str, lo: float,
                   tag: str = "") -> Path:  # fmt: skip
    """One panel per round: candidates ranked by HF uncertainty (x: rank, integer), picks marked per fidelity.
    Picks below the top ranks were taken for diversity; round 0 has no model (diverse picks only).

    ``rounds``: ``{"round", "scores": [n] HF force std max or None, "picks": {fidelity: [candidate index]}}``.
    """
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    n = max(len(rounds), 1)
    fig, axes = plt.subplots(1, n, figsize=(min(3.2 * n, 12), 3.4), squeeze=False, sharey=True)
    drawn: set[str] = set()
    for ax, rd in zip(axes[0], rounds, strict=False):
        s = rd["scores"]
        ax.set_title(f"round {rd['round']}" + ("" if s is not None else " (no model: diverse picks)"), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("candidate rank by HF std")
        if s is None:
            continue
        order = np.argsort(-np.asarray(s, dtype=float))
        rank = np.empty(len(order), dtype=int)
        rank[order] = np.arange(1, len(order) + 1)
        ax.scatter(rank, s, s=10, c="lightgray", label=None if "c" in drawn else "candidate")
        drawn.add("c")
        for fid, marker, color in ((low, "o", "tab:blue"), (high, "*", "tab:red")):
            idx = rd["picks"].get(fid, [])
            if idx:
                ax.scatter(rank[idx], np.asarray(s)[idx], s=48 if fid == high else 20, marker=marker,
                           facecolors="none" if fid == low else color, edgecolors=color,
                           label=None if fid in drawn else f"{fid.upper()} pick")  # fmt: skip
                drawn.add(fid)
        ax.axhline(lo, ls=":", c="k", lw=0.8)
    axes[0][0].set_ylabel(f"{high.upper()} force std max (eV/Å); dotted: trust lo")
    handles = [h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]]
    if handles:
        axes[0][-1].legend(fontsize=7)
    fig.suptitle("What was selected and why" + tag, fontsize=9)
    return _save(fig, path)


def budget_plot(status: Mapping[str, Any], path: Path, *, roles: Mapping[str, str], tag: str = "") -> Path:
    """Cumulative label cost per fidelity (core-hours) against the planned per-round budget and the total.

    ``roles``: status key (``lf``/``hf``) -> the config's fidelity name shown on the axes."""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    rows = status["rounds"]
    rounds = [r["round"] for r in rows]
    fig, axes = plt.subplots(1, len(roles), figsize=(4 * len(roles), 3.3), squeeze=False)
    for ax, (role, fid) in zip(axes[0], roles.items(), strict=True):
        spent = np.cumsum([r.get(f"cost_{role}", 0.0) for r in rows]) / HOUR
        planned = np.cumsum([status["budget_per_round"][role] / HOUR] * len(rows))
        ax.plot(rounds, spent, "o-", label="spent")
        ax.plot(rounds, planned, "s--", c="gray", label="planned (per-round budget)")
        ax.axhline(status["budget_total"][role] / HOUR, c="tab:red", lw=0.8, label="campaign total")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("round")
        ax.set_ylabel(f"{fid.upper()} core-hours (cumulative)")
        ax.set_title(f"{fid.upper()} budget{tag}", fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)
