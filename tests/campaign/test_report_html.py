"""The campaign dashboard (report.html) as a user sees it: opened in a real headless Chromium."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from mfal.campaign.report_html import render_html, write_html


def _status(state: str = "running") -> dict:
    return {
        "campaign": "lmfp-<demo>",
        "state": state,
        "stop_reason": None if state == "running" else "max_rounds=2 reached",
        "surrogate": True,
        "sources": ["teacher"],
        "budget_per_round": {"lf": 3600.0, "hf": 360.0},
        "budget_total": {"lf": 18000.0, "hf": 3600.0},
        "spent": {"lf": 1200.0, "hf": 300.0},
        "rounds": [
            {"round": 0, "n_candidates": 6, "n_lf_labeled": 4, "n_hf_labeled": 2, "n_failed": 1,
             "hf_force_mae": 0.12, "calibration_rho": None, "cost_lf": 800.0, "cost_hf": 200.0,
             "state": "done", "promoted": True, "stop_reason": None},
            {"round": 1, "n_candidates": 6, "n_lf_labeled": 2, "n_hf_labeled": 1, "n_failed": 0,
             "hf_force_mae": 0.09, "calibration_rho": 0.71, "cost_lf": 400.0, "cost_hf": 100.0,
             "state": state if state != "running" else "running", "promoted": False, "stop_reason": None},
        ],
    }  # fmt: skip


def _png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [3, 2, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return path


def test_page_is_self_contained_escaped_and_reloads_only_while_running(tmp_path):
    fig = _png(tmp_path / "hf_mae_vs_labels.png")
    failed = [{"round": 0, "fidelity": "hf", "status": "quarantined", "reason": "moment collapse <Fe>",
               "frame_id": "abc"}]  # fmt: skip
    page = render_html(_status("running"), [fig], failed)
    assert 'http-equiv="refresh"' in page
    assert base64.b64encode(fig.read_bytes()).decode() in page  # embedded, not linked
    assert "src=\"http" not in page and "href=\"http" not in page  # no network
    assert "lmfp-&lt;demo&gt;" in page and "moment collapse &lt;Fe&gt;" in page  # escaped
    assert "Surrogate labels" in page
    done = render_html(_status("done"), [fig], [])
    assert 'http-equiv="refresh"' not in done and "No failed or quarantined labels" in done


def test_dashboard_in_headless_chromium_shows_table_and_plots_without_console_errors(tmp_path, browser):
    figs = [_png(tmp_path / "hf_mae_vs_labels.png"), _png(tmp_path / "parity.png")]
    page = write_html(tmp_path / "report.html", _status("done"), figs)
    shot = tmp_path / "shot.png"
    driver, console = browser(page.as_uri(), screenshot=shot)
    assert [m for m in console if m["level"] == "SEVERE"] == []
    rows = driver.find_elements("css selector", "#rounds tr")
    assert len(rows) == 3  # header + 2 rounds
    imgs = driver.find_elements("css selector", "figure img")
    assert len(imgs) == 2 and all(driver.execute_script("return arguments[0].naturalWidth", i) > 0 for i in imgs)
    assert shot.stat().st_size > 10_000  # a real 1280x800 render, not a blank page
    from PIL import Image

    assert Image.open(shot).size == (1280, 800)


def test_per_atom_force_calibration_columns_and_old_status_without_them():
    st = _status("done")
    st["rounds"][1].update(hf_miscalibration_area=0.171, hf_force_atoms_rho=0.634, hf_force_atoms_area=0.0423,
                           hf_force_atoms_coverage_1sigma=0.667)  # fmt: skip
    page = render_html(st, [], [])
    assert "HF area per atom" in page and "HF ρ per atom" in page
    row = page.split("<tr>")[-1]  # round 1's row: max-atom area, then ρ / area / 1σ coverage per atom
    assert all(f"<td>{v}</td>" in row for v in ("0.17", "0.63", "0.04", "0.67"))
    assert page.split("<tr>")[-2].count("<td>–</td>") >= 3  # round 0 (no such keys, e.g. an old campaign): dashes
