"""mfal CLI commands (module bench_campaign): ``mfal bench campaign``."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.app import bench_app
from mfal.fileio import dumps_strict
from mfal.runopts import RunOptions


@bench_app.command("campaign")
def bench_campaign_cmd(
    json_output: bool = typer.Option(False, "--json", help="print one JSON object instead of a table"),
    config: Path | None = typer.Option(None, "--config", help="campaign config (default: configs/demo.yaml)"),
    run_dir: Path | None = typer.Option(
        None, "--dir", help="keep the run here (default: a temp dir, removed)"
    ),
    from_dir: Path | None = typer.Option(
        None, "--from-dir", help="only analyse an existing finished campaign directory (no run)"
    ),
    cores: int = typer.Option(2, "--cores", help="cores that the configured DFT label costs are divided by"),
) -> None:
    """Orchestration overhead per round (everything but labeling and training) and the demo's wall time."""
    import warnings

    from flows.campaign import run_campaign
    from mfal.bench.campaign import bench_campaign, mean_shares, round_breakdown

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    if from_dir is not None:
        rows = round_breakdown(from_dir, cores=cores)
        res = {"config": str(from_dir), "wall_s": None, "rounds": rows, **mean_shares(rows)}
    else:  # mfal never imports flows: the campaign runner is passed in
        options = RunOptions(progress=not json_output)
        res = bench_campaign(config, runner=run_campaign, run_dir=run_dir, options=options, cores=cores)
    if json_output:
        typer.echo(dumps_strict(res))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"mfal bench campaign — {res['config']}")
    for col in (
        "round",
        "wall s",
        "label s",
        "train s",
        "inference s",
        "orchestr. s",
        "overhead %",
        "orchestr. %",
        "overhead % (DFT-cost labels)",
    ):
        t.add_column(col, justify="right")
    for r in res["rounds"]:
        t.add_row(
            str(r["round"]),
            f"{r['wall_s']:.1f}",
            f"{r['label_s']:.1f}",
            f"{r['train_s']:.1f}",
            f"{r['inference_s']:.1f}",
            f"{r['orchestration_s']:.1f}",
            f"{100 * r['overhead_share']:.1f}",
            f"{100 * r['orchestration_share']:.1f}",
            f"{100 * r['overhead_share_with_configured_labels']:.2f}",
        )
    console = Console()
    Console(width=max(console.width, 130)).print(t)
    if res.get("wall_s") is not None:
        typer.echo(
            f"campaign wall time: {res['wall_s']:.0f} s ({res.get('state')}: {res.get('stop_reason')})"
        )
