"""mfal CLI commands (module store): ``mfal import``, ``mfal query`` and ``mfal raw``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from flows.cli.app import app

STORE_HELP = "store directory (or store YAML); created by import if missing"
DIR_HELP = "campaign directory (uses its store/ or the store: section of campaign.yaml)"


@app.command("import")
def import_cmd(
    paths: list[Path] = typer.Argument(
        ..., help="VASP run directories, vasprun*.xml(.gz), *.xyz/*.extxyz, *.json"
    ),
    store: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    campaign_dir: Path | None = typer.Option(None, "--dir", help=DIR_HELP),
    fidelity: str = typer.Option("auto", "--fidelity", help="lf, hf or auto (VASP: ISPIN=2 -> hf, 1 -> lf)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar while parsing"),
) -> None:
    """Import existing DFT frames (every ionic step) into a store; importing twice adds nothing."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from mfal.store import open_store
    from mfal.store.config import store_from_options
    from mfal.store.importer import check_fidelity_choice, discover, read_sources, store_sources

    check_fidelity_choice(fidelity)
    cfg = store_from_options(store, campaign_dir)
    sources = discover(paths)  # bad paths fail here, before the store is touched
    console = _console()
    err_console = Console(stderr=True)
    show = progress and err_console.is_terminal  # no bar residue in logs/pipes
    with Progress(console=err_console, disable=not show, transient=True) as bar:
        task = bar.add_task("parsing", total=len(sources))
        read_sources(sources, fidelity=fidelity, on_source=lambda _: bar.advance(task))
    with open_store(cfg) as fs:  # opened only once every input parsed: a bad file leaves no trace
        summary = store_sources(fs, sources)
    table = Table(title=f"import into {fs.location}")
    for col in ("source", "kind", "frames", "fidelity", "not ok"):
        table.add_column(col, justify="right" if col in ("frames", "not ok") else "left")
    for src in summary.sources:
        fids = ",".join(sorted({f.fidelity for f in src.frames}))
        table.add_row(
            str(src.path),
            src.kind,
            str(len(src.frames)),
            fids,
            str(sum(f.status != "ok" for f in src.frames)),
        )
    console.print(table)
    console.print(
        f"{summary.total} frames: {summary.new} new, {summary.already_present} already present, "
        f"{summary.not_ok} quarantined/failed (kept out of training)"
    )


def _console():
    """rich Console; wide when writing to a pipe/file so rows are not folded."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def _frame_row(f) -> list[str]:
    import numpy as np

    e = f.energy_per_atom
    fmax = "" if f.forces is None else f"{float(np.linalg.norm(np.asarray(f.forces), axis=1).max()):.3f}"
    reason = f.status_reason or ""
    reason = reason if len(reason) <= 60 else reason[:59] + "…"
    status = f.status if f.status == "ok" else f"{f.status}: {reason}"
    return [
        f.frame_id,
        f.formula,
        str(f.nsites),
        f.fidelity,
        f.source,
        status,
        "" if e is None else f"{e:.4f}",
        fmax,
        "" if f.round is None else str(f.round),
    ]


@app.command("query")
def query_cmd(
    store: Path | None = typer.Option(None, "--store", help="store directory or store YAML"),
    campaign_dir: Path | None = typer.Option(None, "--dir", help=DIR_HELP),
    fidelity: list[str] | None = typer.Option(None, "--fidelity", help="lf or hf (repeatable)"),
    status: list[str] | None = typer.Option(None, "--status", help="ok, failed or quarantined (repeatable)"),
    round_: list[int] | None = typer.Option(None, "--round", help="acquisition round (repeatable)"),
    elements: str | None = typer.Option(
        None, "--elements", help="comma-separated, all must be present: Fe,O"
    ),
    source: list[str] | None = typer.Option(None, "--source", help="vasp, cp2k, teacher, replay, import"),
    campaign: str | None = typer.Option(None, "--campaign", help="campaign name"),
    fmt: str = typer.Option("table", "--format", help="table, json or extxyz"),
    out: Path | None = typer.Option(None, "--out", help="write to FILE instead of stdout"),
    limit: int = typer.Option(50, "--limit", help="table: show at most N rows (0 = all)"),
) -> None:
    """Show or export frames: a table with counts per fidelity and status, a JSON array, or extxyz."""
    from typing import get_args

    from mfal.errors import ConfigError
    from mfal.fidelity import check_fidelity
    from mfal.store import open_store
    from mfal.store.config import store_from_options
    from mfal.store.docs import FrameSource, FrameStatus

    formats = ("table", "json", "extxyz")
    if fmt not in formats:
        raise ConfigError(f"--format {fmt!r} not in {list(formats)}")
    for value in fidelity or []:
        check_fidelity(value)
    for opt, values, allowed in (
        ("--status", status, get_args(FrameStatus)),
        ("--source", source, get_args(FrameSource)),
    ):
        for value in values or []:
            if value not in allowed:
                raise ConfigError(f"{opt} {value!r} not in {list(allowed)}")
    if out is not None and fmt == "table":
        raise ConfigError("--out needs --format json or extxyz")
    cfg = store_from_options(store, campaign_dir)
    filters = {
        "fidelity": fidelity or None,
        "status": status or None,
        "round": round_ or None,
        "elements": elements,
        "source": source or None,
        "campaign": campaign,
    }
    with open_store(cfg, create=False) as fs:
        frames = fs.query_frames(**filters)
        location = fs.location
    if fmt == "json":
        from mfal.store.jsonio import write_json

        write_json(frames, out if out is not None else sys.stdout, indent=None if out is None else 1)
        if out is not None:
            typer.echo(f"wrote {len(frames)} frames to {out}", err=True)
        return
    if fmt == "extxyz":
        from mfal.store.extxyz import write_extxyz

        write_extxyz(frames, out if out is not None else sys.stdout)
        if out is not None:
            typer.echo(f"wrote {len(frames)} frames to {out}", err=True)
        return

    from collections import Counter

    from rich.table import Table

    console = _console()
    counts = Counter((f.fidelity, f.status) for f in frames)
    statuses = [s for s in ("ok", "quarantined", "failed") if any(k[1] == s for k in counts)]
    summary = Table(title=f"{len(frames)} frames in {location}")
    summary.add_column("fidelity")
    for s in statuses:
        summary.add_column(s, justify="right")
    summary.add_column("total", justify="right")
    for fid in sorted({k[0] for k in counts}):
        row = [counts.get((fid, s), 0) for s in statuses]
        summary.add_row(fid, *map(str, row), str(sum(row)))
    console.print(summary)
    if not frames:
        return
    shown = frames if limit <= 0 else frames[:limit]
    rows = Table(show_lines=False)
    for col in (
        "frame_id",
        "formula",
        "nsites",
        "fidelity",
        "source",
        "status",
        "E/atom (eV)",
        "max|F| (eV/Å)",
        "round",
    ):
        rows.add_column(col, overflow="fold", no_wrap=col in ("frame_id", "formula"))
    for f in shown:
        rows.add_row(*_frame_row(f))
    console.print(rows)
    if len(shown) < len(frames):
        console.print(f"({len(frames) - len(shown)} more rows; --limit 0 shows all, --format json exports)")


@app.command("raw")
def raw_cmd(
    frame_id: str = typer.Argument(..., help="frame id (see mfal query)"),
    out: Path = typer.Option(..., "--out", help="directory to unpack the DFT run's raw outputs into"),
    store: Path | None = typer.Option(None, "--store", help="store directory or store YAML"),
    campaign_dir: Path | None = typer.Option(None, "--dir", help=DIR_HELP),
) -> None:
    """Unpack the raw DFT outputs (INCAR/OUTCAR/vasprun.xml…, CP2K .inp/.out) kept with a frame's label."""
    from mfal.label.provenance import fetch_raw_outputs
    from mfal.store import open_store
    from mfal.store.config import store_from_options

    cfg = store_from_options(store, campaign_dir)
    with open_store(cfg, create=False) as fs:
        files = fetch_raw_outputs(fs, frame_id, out)
    typer.echo(f"{len(files)} files of frame {frame_id} in {out} (MANIFEST.json lists sizes and sha256)")
