"""mfal CLI commands (module bench_scale): ``mfal bench scale``."""

from __future__ import annotations

import typer

from flows.cli.app import bench_app
from mfal.fileio import dumps_strict


@bench_app.command("scale")
def bench_scale(
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    preset: str = typer.Option("quick", "--preset", help="tiny | quick (up to 1,000 candidates) | full (10,000)."),
    threads: int = typer.Option(1, "--threads", help="torch threads of every measured subprocess."),
    kind: str = typer.Option(
        None, "--kind", help="ensemble kind to score with (independent | heads; default: the campaign's)."
    ),
    points: str = typer.Option(
        None, "--points", help="only these points: atoms, score_atoms, train_atoms, candidates, throughput "
        "(comma-separated; default all)."
    ),
) -> None:
    """Scoring and training-epoch cost vs atoms per cell and vs number of candidates (wall, CPU, peak RSS)."""
    from mfal.bench.scale import TARGETS, run_scale_bench

    def show(row: dict) -> None:
        if not json_output:
            typer.echo(
                f"{row['what']:12s} atoms={row.get('n_atoms', 28):4d} n={row['n']:6d} "
                f"wall={row.get('wall_s', float('nan')):8.2f}s cpu={row.get('cpu_s', float('nan')):8.2f}s "
                f"rss={row['rss_peak_mb']:7.0f}MB",
                err=True,
            )

    result = run_scale_bench(preset, threads=threads, kind=kind, progress=show, points=points)
    if json_output:
        typer.echo(dumps_strict(result, indent=None))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mfal bench scale (preset {preset}, {threads} torch thread(s), kind {result['kind']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    table.add_row("score: exponent of CPU time vs atoms", fmt(result["score_atoms_exponent_cpu"]),
                  f"<= {TARGETS['time_exponent_max']}")
    table.add_row("train epoch: exponent of CPU time vs atoms", fmt(result["train_atoms_exponent_cpu"]),
                  f"<= {TARGETS['time_exponent_max']}")
    for n, row in result["candidates"].items():
        table.add_row(f"{n} candidates: wall s / peak RSS MB", f"{row['wall_s']:.1f} / {row['rss_peak_mb']:.0f}",
                      f"RSS <= {TARGETS['rss_mb_10000_max']:.0f}" if n == "10000" else "")
    if result["per_pass_over_chgnet"] is not None:
        table.add_row("scorer per model pass / CHGNet predict_structure", fmt(result["per_pass_over_chgnet"]),
                      f">= {TARGETS['per_pass_over_chgnet_min']}")
    Console().print(table)
