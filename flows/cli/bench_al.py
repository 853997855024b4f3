"""mfal CLI commands (module bench_al): ``mfal bench al``."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.app import bench_app
from mfal.fileio import dumps_strict


def _fmt(stat: dict | None, digits: int = 1) -> str:
    if not stat or stat.get("mean") is None:
        return "—"
    std = stat.get("std")
    return f"{stat['mean']:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


@bench_app.command("al")
def bench_al_cmd(
    preset: str = typer.Option(
        "quick", "--preset", help="quick (CI, ≤ 10 min on 2 cores) | mid (4 rounds, 3 seeds, ≈ 80 min) | hetero (mid with a redundant 36-candidate pool, 5 test compositions) | realistic (hetero on the realistic teacher pair) | full (≤ 3 h) | a YAML"
    ),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="seeds 0..N-1 (default: the preset's)"),
    first_seed: int = typer.Option(
        0, "--seed", min=0, help="first seed: runs seeds SEED..SEED+N-1 (a later run over all seeds reuses them)"
    ),
    json_output: bool = typer.Option(False, "--json", help="print one JSON object instead of a table"),
    out: Path | None = typer.Option(
        None, "--out", help="output folder (default: bench-al-<preset>); resumes"
    ),
) -> None:
    """AL (uncertainty) vs random vs SF through the campaign's own rounds, on a teacher-driven MD test set."""
    import warnings

    from mfal.bench.al import bench_al

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    say = None if json_output else (lambda msg: typer.echo(msg, err=True))
    res = bench_al(preset, seeds=seeds, first_seed=first_seed, out_dir=out, progress=say)
    if json_output:
        typer.echo(dumps_strict({k: v for k, v in res.items() if k != "rows"}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"mfal bench al — {res['preset']}, {res['seeds']} seed(s), HF test (MD) MAE")
    for col in ("strategy", "round", "HF labels", "HF core-h", "F meV/Å", "E meV/atom", "S GPa", "M μB"):
        t.add_column(col, justify="right")
    for s, pts in res["curves"].items():
        for p in pts:
            t.add_row(
                s,
                str(p["round"]),
                _fmt(p["n_hf"], 0),
                _fmt(p["hf_core_hours"], 2),
                _fmt(p["f_mae_mev_ang"]),
                _fmt(p["e_mae_mev_atom"]),
                _fmt(p["s_mae_gpa"], 3),
                _fmt(p["m_mae_mub"], 3),
            )
    Console(width=130).print(t)
    typer.echo(f"AL / random force MAE by HF labels: {res['al_over_random_force_mae']} (target ≤ 0.75)")
    typer.echo(
        f"HF labels AL needs to match SF at its full HF budget: {res['al_hf_labels_to_match_sf_all']} "
        f"(cost fraction {res['al_cost_fraction_to_match_sf_all']})"
    )
    typer.echo(f"MD stability (900 K NVT, share physical): {res['md_stability']}")
    typer.echo(f"JSON: {res['out_dir']}/bench_al.json  figure: {res['figure']}  wall {res['wall_s']:.0f} s")
