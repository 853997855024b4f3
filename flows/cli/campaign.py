"""mfal CLI commands (module campaign): ``mfal run``, ``mfal status``, ``mfal report``."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.app import app
from flows.cli.options import call_with_options, run_options
from mfal.errors import MfalError
from mfal.fileio import dumps_strict


@app.command("run")
def run(
    config: Path = typer.Argument(..., help="campaign config YAML (see configs/demo.yaml)"),
    dir: Path = typer.Option(Path("campaign"), "--dir", help="campaign directory (store, state, rounds)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    device: str | None = typer.Option(
        None, "--device", help="auto|cpu|cuda[:N] for training/scoring/MD (default: the config's)"
    ),
) -> None:
    """Run the campaign locally on the embedded store; rerun the same command to resume after a crash."""
    import time
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    warnings.filterwarnings("ignore", message="Only FixAtoms and FixCartesian")  # pymatgen, harmless for MD frames

    from flows.campaign import run_campaign

    options = run_options(device, progress=not quiet)
    t0 = time.perf_counter()
    state = call_with_options(run_campaign, config, dir, options=options)
    took = time.perf_counter() - t0
    reason = state.get("stop_reason") or ""
    if state["state"] == "stopped":
        raise MfalError(f"campaign {state['campaign']!r} stopped in round {state['round']}: {reason}")
    typer.echo(
        f"campaign {state['campaign']!r}: {state['state']} after {state['round']} rounds ({reason}); {took:.0f} s"
    )


@app.command("status")
def status(
    dir: Path = typer.Option(Path("campaign"), "--dir", help="campaign directory"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """A table per round: candidates, LF/HF labeled/failed, HF val force MAE, calibration (ρ, σ scale, area,
    coverage; per atom: ρ and area), cost, state."""
    from mfal.campaign.report import campaign_status, status_table

    st = campaign_status(dir)
    if as_json:
        typer.echo(dumps_strict(st))
        return
    from rich.console import Console

    console = Console()
    Console(width=max(console.width, 150)).print(status_table(st))


@app.command("report")
def report(
    dir: Path = typer.Option(Path("campaign"), "--dir", help="campaign directory"),
    html: bool = typer.Option(
        False, "--html", help="also write report.html: one self-contained page that reloads while the campaign runs"
    ),
) -> None:
    """PNG plots (HF error vs labels and cost, calibration, parity, selection, budget) and a markdown summary."""
    import warnings

    from mfal.campaign.report import make_report

    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")

    out = make_report(dir, html=html)
    typer.echo(f"wrote {out}" + (" (open it in a browser; it reloads every 30 s while the campaign runs)" if html else " and its PNGs"))
