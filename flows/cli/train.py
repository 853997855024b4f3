"""mfal CLI commands (module train): ``mfal train CONFIG.yaml``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from flows.cli.app import app
from mfal.fileio import atomic_write_json
from mfal.runopts import check_device_name


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


@app.command("train")
def train_cmd(
    config: Path = typer.Argument(..., help="training YAML (data, train, ensemble, out_dir)"),
    out: Path | None = typer.Option(None, "--out", help="output directory (overrides out_dir)"),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda (overrides train.device)"),
    resume: Path | None = typer.Option(None, "--resume", help="continue from a train_state.pt"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar per stage"),
) -> None:
    """Train a multi-fidelity CHGNet (or a baseline / an ensemble) and write checkpoints + metrics JSON."""
    from rich.console import Console
    from rich.table import Table

    from mfal.train.run import load_run_config, run_training

    console = Console()
    cfg = load_run_config(config)
    if device is not None:
        cfg.train.device = check_device_name(device)
    fids = list(cfg.train.fidelities)
    widths = [6, 6, 5, 10] + [15] * len(fids) + [8]
    header = ["member", "stage", "epoch", "loss"] + [f"{f} E/F meV" for f in fids] + ["time s"]
    typer.echo(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))

    def on_epoch(member: int, row: dict[str, Any]) -> None:
        cells = [str(member), row["stage"], str(row["epoch"]), f"{row['train_loss']:.4g}"]
        for f in fids:
            m = row["val"].get(f)
            cells.append("-" if m is None else f"{_fmt(m['e_mae_mev_atom'])}/{_fmt(m['f_mae_mev_ang'])}")
        cells.append(f"{row['time_s']:.1f}" + (" *" if row["improved"] else "  "))
        typer.echo(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))

    results = run_training(cfg, out_dir=out, resume=resume, progress=progress, callback=on_epoch)
    table = Table(title="best validation metrics (each frame at its own fidelity)")
    for col in ("member", "fidelity", "frames", "E meV/atom", "F meV/Å", "S GPa", "M μB"):
        table.add_column(col, justify="right")
    for i, res in enumerate(results):
        for fid, m in res.metrics.items():
            table.add_row(
                str(i),
                fid,
                str(int(m["n_frames"])),
                _fmt(m["e_mae_mev_atom"]),
                _fmt(m["f_mae_mev_ang"]),
                _fmt(m["s_mae_gpa"], 3),
                _fmt(m["m_mae_mub"], 3),
            )
    console.print(table)
    sources = results[0].extra.get("sources", {})
    note = " (teacher labels are SURROGATE: pretrained CHGNet, not DFT)" if "teacher" in sources else ""
    n_train, n_val = results[0].extra.get("n_train"), results[0].extra.get("n_val")
    typer.echo(f"frames: {n_train} train, {n_val} val; label sources {sources}{note}")
    out_dir = Path(out or cfg.out_dir)
    summary = {
        "config": str(config),
        "sources": sources,
        "members": [
            {
                "checkpoint": str(r.checkpoint),
                "sha256": r.sha256,
                "best_epoch": r.best_epoch,
                "metrics": r.metrics,
            }
            for r in results
        ],
    }
    atomic_write_json(out_dir / "summary.json", summary)
    for r in results:
        typer.echo(f"checkpoint {r.checkpoint} sha256 {r.sha256}")
    typer.echo(f"metrics: {out_dir / 'summary.json'}")
