"""Figures and markdown tables of the science benchmark (from the JSON of :func:`mfal.bench.science.run_science`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mfal.fileio import atomic_write_text

UNITS = {
    "e_mae_mev_atom": "E MAE (meV/atom)",
    "f_mae_mev_ang": "F MAE (meV/Å)",
    "s_mae_gpa": "S MAE (GPa)",
    "m_mae_mub": "M MAE (μB)",
}


ZERO_SHOT_E_OTHER_ZERO_MEV = 1000.0  # meV/atom: beyond this the labels use another energy zero
ZERO_SHOT_E_NOTE = (
    " (E: the labels' energy zero differs from CHGNet's, e.g. CP2K total energies; trained models refit AtomRef, "
    "the zero-shot model cannot, so its E is not comparable)"
)


def _fmt(mean: float | None, std: float | None = None, digits: int = 1) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    if std is None or not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _size_ticks(ax, sizes) -> None:
    """Log x axis with the HF sizes as plain tick labels."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ticks: list[int] = []
    for n in sorted({int(n) for n in sizes}, reverse=True):  # drop a tick crowding a larger one (99 next to 100)
        if not ticks or ticks[-1] / max(n, 1) >= 1.15:
            ticks.append(n)
    ticks.sort()
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(n) for n in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _curve(ax, ns: list[int], pts: dict[str, Any], key: str, label: str) -> None:
    """Mean per HF size; error bars (± std over seeds) only where more than one seed was run, and the legend
    says how many seeds each curve rests on."""
    mean = [pts[str(n)][f"{key}_mean"] for n in ns]
    std = [pts[str(n)].get(f"{key}_std", 0.0) for n in ns]
    seeds = sorted({int(pts[str(n)].get("n_seeds", 1)) for n in ns})
    many = max(seeds) > 1
    what = f"mean ± std, {'/'.join(map(str, seeds))} seeds" if many else "1 seed"
    if many:
        ax.errorbar(ns, mean, yerr=std, marker="o", capsize=3, label=f"{label} ({what})")
    else:
        ax.plot(ns, mean, marker="o", label=f"{label} ({what})")


def _save(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG (110 dpi) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_figures(result: dict[str, Any], out_dir: str | Path, prefix: str = "science") -> list[Path]:
    """Learning curves, ablation bars and AL vs random as PNGs in ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = " [SURROGATE labels]" if result.get("surrogate_labels") else ""
    paths: list[Path] = []
    curves = result["learning_curves"]

    # learning curves: one row per start, E and F columns
    starts = list(curves)
    if starts:
        fig, axes = plt.subplots(len(starts), 2, figsize=(10, 3.6 * len(starts)), squeeze=False)
        for r, start in enumerate(starts):
            for c, key in enumerate(("f_mae_mev_ang", "e_mae_mev_atom")):
                ax = axes[r][c]
                for method, pts in sorted(curves[start].items()):
                    ns = sorted(int(n) for n in pts)
                    if len(ns) < 2 and method not in ("SF", "TL", "MF-F"):
                        continue  # ablation points are in the bar chart
                    _curve(ax, ns, pts, key, method)
                _size_ticks(ax, [n for pts in curves[start].values() for n in pts])
                ax.set_xlabel("HF training frames")
                ax.set_ylabel(UNITS[key])
                ax.set_title(f"{start} start{tag}", fontsize=9)
                ax.legend(fontsize=8)
        paths.append(_save(fig, out / f"{prefix}_learning_curves.png"))

    # ablation bars at the ablation sizes
    abl = result["config"].get("ablation_sizes") or []
    bars = []
    for start in starts:
        for n in abl:
            items = [(m, v[str(n)]) for m, v in curves[start].items() if str(n) in v]
            if len(items) > 2:
                bars.append((start, n, sorted(items, key=lambda t: t[1]["f_mae_mev_ang_mean"])))
    if bars:
        fig, axes = plt.subplots(1, len(bars), figsize=(5.5 * len(bars), 3.8), squeeze=False)
        for ax, (start, n, items) in zip(axes[0], bars, strict=True):
            from matplotlib.patches import Patch

            names = [m for m, _ in items]
            seeds = max(int(v.get("n_seeds", 1)) for _, v in items)
            ax.bar(
                names,
                [v["f_mae_mev_ang_mean"] for _, v in items],
                yerr=[v["f_mae_mev_ang_std"] for _, v in items] if seeds > 1 else None,
                capsize=3,
                color=["C3" if m == "MF-F" else "C7" if m in ("SF", "TL") else "C0" for m in names],
            )
            ax.legend(
                handles=[Patch(color="C3", label="MF-F (all of E, M, R, C)"), Patch(color="C0", label="MF subsets"),
                         Patch(color="C7", label="baselines (SF, TL)")],
                fontsize=7,
            )  # fmt: skip
            ax.set_ylabel(UNITS["f_mae_mev_ang"])
            ax.set_title(
                f"ablation, {n} HF frames, {start} start, "
                f"{'mean ± std of ' + str(seeds) + ' seeds' if seeds > 1 else '1 seed'}{tag}",
                fontsize=9,
            )
            ax.tick_params(axis="x", rotation=45)
        paths.append(_save(fig, out / f"{prefix}_ablation.png"))

    # AL vs random
    if result.get("al_curve"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, curve in (
            ("AL+MF", result["al_curve"]),
            ("random+MF", result.get("random_mf_curve", {})),
            ("random+SF", result.get("random_sf_curve", {})),
        ):
            ns = sorted(int(n) for n in curve)
            if ns:
                _curve(ax, ns, curve, "f_mae_mev_ang", name)
        sf_all = result.get("sf_all", {})
        if sf_all.get("f_mae_mev_ang_mean") is not None:
            ax.axhline(sf_all["f_mae_mev_ang_mean"], color="k", ls="--", label=f"SF, all {sf_all['n_hf']} HF")
        _size_ticks(
            ax, [*result["al_curve"], *result.get("random_mf_curve", {}), *result.get("random_sf_curve", {})]
        )
        ax.set_xlabel("HF labels (∝ HF core-hours)")
        ax.set_ylabel(UNITS["f_mae_mev_ang"])
        ax.set_title(f"AL vs random ({result['config']['al']['start']} start){tag}", fontsize=9)
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / f"{prefix}_al_vs_random.png"))
    return paths


def markdown_tables(result: dict[str, Any]) -> str:
    """Markdown tables of the learning curves, ratios and AL summary."""
    lines: list[str] = []
    lines.append(f"Labels: {result['labels']}.")
    if result.get("surrogate_labels"):
        lines.append("**SURROGATE labels** (pretrained CHGNet teachers), not DFT.")
    gap = result.get("gap")
    if gap:
        dp = "" if gap.get("dP_mean_gpa") is None else f", ΔP {gap['dP_mean_gpa']:+.2f} ± {gap['dP_std_gpa']:.2f} GPa"
        lines.append(
            f"Pair: {result.get('pair')}; LF/HF gap |ΔF|/|F| = {gap['dF_over_F']:.2f}, "
            f"ΔE {gap['dE_mean_ev_atom']:+.3f} ± {gap['dE_std_ev_atom']:.3f} eV/atom{dp}."
        )
    pool = result["pool"]
    lines.append(
        f"Pool: {pool['n_pool_hf']} HF / {pool['n_pool_lf']} LF pool frames (LF used: {pool['n_lf_used']}), "
        f"{pool['n_val']} val, {pool['n_test']} HF test structures (never trained on)."
        + (" No validation frames: each run keeps its lowest-training-loss epoch." if pool["n_val"] == 0 else "")
    )
    for start, methods in result["learning_curves"].items():
        lines.append("")
        lines.append(f"HF test MAE, **{start}** start (mean ± std over seeds):")
        lines.append("")
        lines.append("| method | HF frames | seeds | E (meV/atom) | F (meV/Å) | S (GPa) | M (μB) |")
        lines.append("|---|---|---|---|---|---|---|")
        for method, pts in sorted(methods.items()):
            for n in sorted(pts, key=int):
                v = pts[n]
                lines.append(
                    f"| {method} | {n} | {v['n_seeds']} | {_fmt(v['e_mae_mev_atom_mean'], v['e_mae_mev_atom_std'])} | "
                    f"{_fmt(v['f_mae_mev_ang_mean'], v['f_mae_mev_ang_std'])} | "
                    f"{_fmt(v['s_mae_gpa_mean'], v['s_mae_gpa_std'], 3)} | "
                    f"{_fmt(v['m_mae_mub_mean'], v['m_mae_mub_std'], 3)} |"
                )
    lines.append("")
    for start, ratios in result.get("mf_over_sf_force_mae_by_start", {}).items():
        tl = result.get("mf_over_tl_force_mae_by_start", {}).get(start, {})
        cells = ", ".join(f"{n}: {r:.2f}" for n, r in sorted(ratios.items(), key=lambda t: int(t[0])))
        cells_tl = ", ".join(f"{n}: {r:.2f}" for n, r in sorted(tl.items(), key=lambda t: int(t[0])))
        lines.append(f"- {start}: MF-F / SF force MAE {{{cells or '–'}}}; MF-F / TL {{{cells_tl or '–'}}}")
        for key in ("variant_over_sf_force_mae_by_start", "variant_over_tl_force_mae_by_start"):
            for method, v in result.get(key, {}).get(start, {}).items():
                cells_v = ", ".join(f"{n}: {r:.2f}" for n, r in sorted(v["by_n"].items(), key=lambda t: int(t[0])))
                lines.append(f"- {start}: {method} / {v['over']} force MAE {{{cells_v}}}")
    zs = result.get("warm_start", {}).get("zero_shot_hf_test")
    if zs:
        lines.append(
            f"- zero-shot warm-start model (CHGNet {result['warm_start']['version']}, no training) on the HF test: "
            f"E {_fmt(zs['e_mae_mev_atom'])} meV/atom, F {_fmt(zs['f_mae_mev_ang'])} meV/Å"
            + (ZERO_SHOT_E_NOTE if zs["e_mae_mev_atom"] > ZERO_SHOT_E_OTHER_ZERO_MEV else "")
        )
    if result.get("al_curve"):
        lines.append("")
        lines.append("| HF labels | AL+MF F (meV/Å) | random+MF | random+SF |")
        lines.append("|---|---|---|---|")
        rm, rs = result.get("random_mf_curve", {}), result.get("random_sf_curve", {})
        for n in sorted({*result["al_curve"], *rm, *rs}, key=int):
            a = result["al_curve"].get(n, {})
            lines.append(
                f"| {n} | {_fmt(a.get('f_mae_mev_ang_mean'), a.get('f_mae_mev_ang_std'))} | "
                f"{_fmt(rm.get(n, {}).get('f_mae_mev_ang_mean'), rm.get(n, {}).get('f_mae_mev_ang_std'))} | "
                f"{_fmt(rs.get(n, {}).get('f_mae_mev_ang_mean'), rs.get(n, {}).get('f_mae_mev_ang_std'))} |"
            )
        sf = result.get("sf_all", {})
        lines.append("")
        lines.append(
            f"- SF on all {sf.get('n_hf')} pool HF frames: F {_fmt(sf.get('f_mae_mev_ang_mean'), sf.get('f_mae_mev_ang_std'))}"
            f" meV/Å, cost {sf.get('cost_core_s', float('nan')):.0f} core-s"
        )
        lines.append(
            f"- AL+MF HF labels to match it: {_fmt(result.get('al_hf_labels_to_match_sf_all'))}; total cost "
            f"fraction (LF + HF): {_fmt(result.get('al_cost_fraction_to_match_sf_all'), None, 3)}; HF-only cost "
            f"fraction: {_fmt(result.get('al_hf_cost_fraction_to_match_sf_all'), None, 3)}"
        )
        lines.append(
            f"- random+MF HF labels to match it: {_fmt(result.get('random_mf_hf_labels_to_match_sf_all'))}; "
            f"calibration ρ (ensemble force std vs error on the HF test, mean over rounds): "
            f"{_fmt(result.get('calibration_rho'), None, 2)}"
        )
    if result.get("targets"):
        lines.append("")
        lines.append("| target | measured | verdict |")
        lines.append("|---|---|---|")
        for t in result["targets"]:
            if t["met"] is None:
                verdict = f"not measured ({t['why']})" if t["why"] else "not measured"
            elif t["met"]:
                verdict = "met"
            elif t["margin"] is None:
                verdict = f"**missed**: {t['why']}"
            else:
                verdict = f"**missed** by {t['margin']:.3g}"
            lines.append(f"| {t['target']} | {_fmt(t['measured'], None, 3)} | {verdict} |")
    lines.append("")
    lines.append(f"Wall time: {result['timing_s']['total']:.0f} s.")
    return "\n".join(lines)


def write_report(
    result: dict[str, Any], out_dir: Path, figures: Path | None = None, prefix: str = "science"
) -> list[Path]:
    """Figures (in ``out_dir`` and, if given, ``figures``) and ``out_dir/science.md``; returns the PNG paths."""
    paths = make_figures(result, out_dir, prefix=prefix)
    if figures is not None:
        paths += make_figures(result, figures, prefix=prefix)
    atomic_write_text(Path(out_dir) / "science.md", markdown_tables(result) + "\n")
    return paths
