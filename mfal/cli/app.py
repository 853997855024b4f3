"""The typer applications that command modules register on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mfal",
    help="Multi-fidelity CHGNet force fields for battery cathodes, trained by active learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks (ratios measured side by side in one run).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
