"""A self-contained campaign dashboard: one ``report.html`` with the round table, the figures embedded as data
URIs and the failed frames with their reasons. No network, no scripts beyond a few lines; it reloads itself while
the campaign runs (``<meta http-equiv="refresh">``), so a browser tab left open follows the campaign.

Pure rendering: :func:`render_html` takes what ``mfal status --json`` reports plus figure files and returns text.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mfal.fileio import atomic_write_text

#: seconds between reloads while the campaign is running
REFRESH_S = 30
FINISHED_STATES = ("done", "stopped", "failed")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.2em 2em;color:#1b1f24;max-width:1400px}
h1{font-size:1.45em;margin:.2em 0} h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #d0d7de}
.banner{background:#fff4d6;border:1px solid #e0b84c;padding:.5em .8em;border-radius:6px;margin:.6em 0}
.meta{color:#57606a;font-size:.9em}
table{border-collapse:collapse;font-size:.9em;margin:.3em 0}
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:right} th{background:#f6f8fa}
td.l,th.l{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0;flex:1 1 420px;max-width:640px}
figure img{width:100%;border:1px solid #d0d7de;border-radius:4px} figcaption{font-size:.85em;color:#57606a}
.state-running{color:#0969da} .state-done{color:#1a7f37} .state-stopped,.state-failed{color:#cf222e}
"""

#: figure file name -> caption (what the plot shows and its units)
FIGURE_CAPTIONS: dict[str, str] = {
    "hf_mae_vs_labels.png": "HF validation force MAE (eV/Å) of the promoted ensemble vs HF labels and HF core-hours",
    "uncertainty_vs_error.png": "Calibration per round: predicted (calibrated) force std max (eV/Å) vs observed "
    "max force error of the frames just labeled; dashed line = ideal (error = std); ρ = Spearman rank correlation, "
    "area = miscalibration area",
    "parity.png": "Parity per fidelity: ensemble-mean prediction vs DFT/teacher label of the labeled frames",
    "selection.png": "What was selected and why: per round, candidates by uncertainty, picks marked per fidelity",
    "budget.png": "Label budget spent vs planned per fidelity (core-hours)",
}


def _fmt(x: Any, spec: str = "{:.3f}") -> str:
    return "–" if x is None else spec.format(x)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"data:image/png;base64,{data}"


def _scale(r: Mapping[str, Any]) -> str:
    """``applied → fitted`` HF force-spread scale; ``1 (uncalibrated)`` before any fit; – in old campaigns."""
    applied, fitted = r.get("hf_uncertainty_scale_applied"), r.get("hf_uncertainty_scale")
    if applied is None and fitted is None:
        return "–"
    now = f"{applied:.3g}" if r.get("hf_uncertainty_calibrated") else "1 (uncalibrated)"
    return now + (f" → {fitted:.3g}" if fitted is not None else "")


def _round_rows(st: Mapping[str, Any]) -> str:
    bpr = st["budget_per_round"]
    rows = []
    for r in st["rounds"]:
        state = r["state"] + ("" if r.get("promoted") in (None, True) else " (kept old)")
        cells = [
            str(r["round"]),
            str(r["n_candidates"]),
            str(r["n_lf_labeled"]),
            str(r["n_hf_labeled"]),
            str(r["n_failed"]),
            _fmt(r.get("hf_force_mae")),
            _fmt(r.get("calibration_rho"), "{:.2f}"),
            _scale(r),
            _fmt(r.get("hf_uncertainty_mean"), "{:.4f}"),
            _fmt(r.get("hf_miscalibration_area"), "{:.2f}"),
            f"{_fmt(r.get('hf_coverage_1sigma'), '{:.2f}')} / {_fmt(r.get('hf_coverage_2sigma'), '{:.2f}')}",
            _fmt(r.get("hf_force_atoms_rho"), "{:.2f}"),
            _fmt(r.get("hf_force_atoms_area"), "{:.2f}"),
            _fmt(r.get("hf_force_atoms_coverage_1sigma"), "{:.2f}"),
            f"{r['cost_lf'] / 3600:.3f} / {bpr['lf'] / 3600:.3f}",
            f"{r['cost_hf'] / 3600:.3f} / {bpr['hf'] / 3600:.3f}",
        ]
        tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        tds += f'<td class="l state-{html.escape(r["state"])}">{html.escape(state)}</td>'
        tds += f'<td class="l">{html.escape(r.get("stop_reason") or "")}</td>'
        rows.append(f"<tr>{tds}</tr>")
    return "\n".join(rows)


def _failed_rows(failed: Sequence[Mapping[str, Any]]) -> str:
    if not failed:
        return "<p>No failed or quarantined labels.</p>"
    head = "".join(f'<th class="l">{h}</th>' for h in ("round", "fidelity", "status", "reason", "frame"))
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="l">{html.escape(str(f.get(k, "")))}</td>'
            for k in ("round", "fidelity", "status", "reason", "frame_id")
        )
        + "</tr>"
        for f in failed
    )
    return f"<table><tr>{head}</tr>\n{body}</table>"


def render_html(
    status: Mapping[str, Any],
    figures: Sequence[Path] = (),
    failed: Sequence[Mapping[str, Any]] = (),
    *,
    generated_at: datetime | None = None,
    refresh_s: int = REFRESH_S,
) -> str:
    """The dashboard page for ``status`` (the dict of ``mfal status --json``; costs in core-seconds).

    ``figures``: PNG files, embedded in the page; ``failed``: one mapping per failed/quarantined frame
    (round, fidelity, status, reason, frame_id). The page reloads every ``refresh_s`` s until the campaign
    has finished.
    """
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    running = status["state"] not in FINISHED_STATES
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if running else ""
    name = html.escape(str(status["campaign"]))
    banner = ""
    if status.get("surrogate"):
        banner = (
            '<div class="banner"><b>Surrogate labels.</b> This campaign is labeled by the "teacher" — two '
            "pretrained CHGNet models standing in for the two DFT fidelities — not by DFT. Its numbers show that "
            "the loop works, not how accurate a DFT-trained model is.</div>"
        )
    spent, total = status["spent"], status["budget_total"]
    budget = ", ".join(
        f"{f.upper()} {spent.get(f, 0.0) / 3600:.3f} of {total[f] / 3600:.3f} core-hours" for f in total
    )
    stop = f" — stop: {html.escape(status['stop_reason'])}" if status.get("stop_reason") else ""
    figs = "\n".join(
        f'<figure><img alt="{html.escape(p.name)}" src="{_img(p)}">'
        f"<figcaption>{html.escape(FIGURE_CAPTIONS.get(p.name, p.stem))}</figcaption></figure>"
        for p in figures
    )
    cols = (
        "round", "candidates", "LF ok", "HF ok", "failed", "HF F-MAE (eV/Å)", "ρ HF", "HF σ scale",
        "HF mean σ (eV/Å)", "HF miscal. area", "HF 1σ / 2σ coverage", "HF ρ per atom", "HF area per atom",
        "HF 1σ coverage per atom",
        "LF core-h (round / per-round budget)", "HF core-h (round / per-round budget)", "state", "stop reason",
    )  # fmt: skip
    head = "".join(f'<th{" class=l" if c in ("state", "stop reason") else ""}>{html.escape(c)}</th>' for c in cols)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<title>mfal campaign {name}</title><style>{_CSS}</style></head>
<body>
<h1>Campaign {name}: <span class="state-{html.escape(status["state"])}" id="state">{html.escape(status["state"])}</span>{stop}</h1>
<p class="meta">Updated {when}{" — reloads every " + str(int(refresh_s)) + " s while running" if running else ""}.
Budget spent: {html.escape(budget)}.</p>
{banner}
<h2>Rounds</h2>
<table id="rounds"><tr>{head}</tr>
{_round_rows(status)}
</table>
<p class="meta">HF F-MAE: force MAE of the promoted ensemble on the HF validation frames. ρ HF: Spearman rank
correlation between the predicted HF force std and the observed max force error of the round's new HF labels
(1 = uncertainty ranks errors perfectly; – below 3 labels). HF σ scale: the factor the raw ensemble force
spread was multiplied by this round → the factor fitted on this round's new labels and validation frames for the
next (1 = uncalibrated, before any fit). HF mean σ: mean calibrated force_std_max of the candidates (eV/Å; trust
windows and the stop rule compare this). Miscal. area: area between the observed and the Gaussian-expected
fraction of errors within z·σ over all quantile levels (0 = calibrated, 0.5 = worst); coverage: fraction of
errors within 1σ / 2σ (0.68 / 0.95 ideal). These judge the max-atom force error, whose area stays ≈ 0.15 even
for a perfectly calibrated ensemble. Per atom: the same frames judged per force component (signed error vs the
component's member std scaled by its own fitted factor; area 0 and 1σ coverage 0.68 when calibrated; ρ ranks
atoms by spread norm vs error norm).</p>
<h2>Figures</h2>
<div class="figs">{figs or "<p>No figures yet (they appear after the first trained round).</p>"}</div>
<h2>Failed and quarantined labels</h2>
{_failed_rows(failed)}
</body></html>
"""


def write_html(path: str | Path, status: Mapping[str, Any], figures: Sequence[Path] = (), **kw: Any) -> Path:
    """Render :func:`render_html` into ``path`` atomically (a reloading browser never sees half a page)."""
    return atomic_write_text(path, render_html(status, figures, **kw))
