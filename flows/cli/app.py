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


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="show the traceback of an error (also accepted after the command)"
    ),
) -> None:
    """Multi-fidelity CHGNet force fields for battery cathodes, trained by active learning.

    Errors are one line on stderr: exit status 2 for usage/config errors, 1 for data/runtime errors.
    """
