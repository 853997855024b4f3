"""Command-line interface: ``mfal``. Commands parse arguments and call library functions.

Each command module registers its commands on :data:`mfal.cli.app.app` (or ``bench_app``) at import.
Heavy imports (torch, chgnet, atomate2) happen inside command bodies so ``mfal --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from mfal.cli.app import app, bench_app
from mfal.errors import MfalError

_COMMAND_MODULES = (
    "train",  # mfal train
    "store",  # mfal import, mfal query
    "label",  # mfal label
    "campaign",  # mfal run, status, report
    "submit",  # mfal submit
    "bench_model",  # mfal bench model
    "bench_campaign",  # mfal bench campaign
    "bench_science",  # mfal bench science
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"mfal.cli.{_name}")

__all__ = ["app", "bench_app", "main"]


def main() -> None:
    """Entry point: run the app; MfalError and bad input become one line on stderr and exit 1."""
    logging.basicConfig(
        level=os.environ.get("MFAL_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        app()
    except MfalError as err:
        print(f"mfal: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("mfal: interrupted", file=sys.stderr)
        sys.exit(130)
