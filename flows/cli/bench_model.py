"""mfal CLI commands (module bench_model): ``mfal bench model``."""

from __future__ import annotations

import typer

from flows.cli.app import bench_app
from mfal.fileio import dumps_strict


@bench_app.command("model")
def bench_model(
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    n_structures: int = typer.Option(
        8, "--n-structures", help="Rattled LiFePO4 cells (28 atoms) per timing."
    ),
    repeats: int = typer.Option(3, "--repeats", help="Timing pairs per ratio (median of per-pair ratios)."),
    threads: int = typer.Option(2, "--threads", help="torch.set_num_threads for the whole run."),
    k: int = typer.Option(4, "--k", help="Ensemble size."),
    seed: int = typer.Option(0, "--seed", help="Seed of the rattles, readout noise and probes."),
) -> None:
    """MF-CHGNet vs CHGNet 0.3.0: forward, K-member uncertainty (with calibration) and train-step cost ratios."""
    import warnings

    from mfal.bench.model import TARGETS, run_model_bench

    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
    result = run_model_bench(
        n_structures=n_structures, repeats=repeats, threads=threads, k=k, seed=seed, progress=not json_output
    )
    if json_output:
        typer.echo(dumps_strict(result, indent=None))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mfal bench model ({result['date']}, {threads} torch threads)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for key in (
        "mf_over_chgnet_forward",
        "scorer_over_single",
        "ensemble4_over_single",
        "ensemble4_sketch_over_single",
        "train_step_mf_over_chgnet",
    ):
        target = TARGETS.get(key, TARGETS["ensemble4_over_single"] if key.startswith("ensemble") else None)
        table.add_row(key, f"{result[key]:.3f}", f"<= {target}" if target else "")
    for variant in ("sketch", "exact"):
        cal = result["calibration"][variant]
        table.add_row(
            f"spearman rho force std vs error ({variant}, per atom)", f"{cal['rho_per_atom']:.3f}", ""
        )
        table.add_row(
            f"spearman rho force std vs error ({variant}, per frame)", f"{cal['rho_per_frame_max']:.3f}", ""
        )
    for kind, ratio in result["scorer_by_kind_over_single"].items():
        table.add_row(f"scorer {kind} / CHGNet forward", f"{ratio['cpu']:.3f}", "")
    for kind in ("independent", "heads"):
        for fid, cal in result["ensemble_kinds"][kind]["calibration"].items():
            rho = cal.get("rho")
            table.add_row(
                f"spearman rho force_std_max vs max error ({kind}, {fid}, held-out)",
                "n/a" if rho is None else f"{rho:.3f}",
                "",
            )
    table.add_row("load average start/end", str(result["load_average_start_end"]), "")
    Console().print(table)
    typer.echo(f"scorer: {result['scorer_method']}")
    typer.echo(result["ensemble4_method"])
    typer.echo(f"sketch: {result['ensemble4_sketch_method']}")
