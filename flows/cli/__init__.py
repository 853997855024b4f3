"""Command-line interface: ``mfal``. Commands parse arguments and call library functions.

It lives in ``flows`` because it needs both packages (imports go ``flows`` -> ``mfal``, never back). Each command
module registers its commands on :data:`flows.cli.app.app` (or ``bench_app``) at import. Heavy imports (torch,
chgnet, atomate2, fireworks) happen inside command bodies so ``mfal --help`` stays fast.

Error contract (see :func:`main`): a user error is one line on stderr, ``mfal: error: <file/field>: <what was
expected>``; exit status 2 for usage and config errors (:class:`~mfal.errors.ConfigError`), 1 for data and
runtime errors (any other :class:`~mfal.errors.MfalError`, ``OSError``, ``MemoryError``); no traceback unless
``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence

from flows.cli.app import app, bench_app
from flows.cli.errors import exit_code, one_line

_COMMAND_MODULES = (
    "train",  # mfal train
    "store",  # mfal import, mfal query
    "label",  # mfal label
    "inputs",  # mfal inputs
    "campaign",  # mfal run, status, report
    "submit",  # mfal submit, cluster-status, fireworks-config, jobflow-config
    "bench_model",  # mfal bench model
    "bench_scale",  # mfal bench scale
    "bench_campaign",  # mfal bench campaign
    "bench_science",  # mfal bench science
    "bench_al",  # mfal bench al
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"flows.cli.{_name}")

__all__ = ["app", "bench_app", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the app; user errors become one line on stderr and exit 2 (config) or 1 (data/runtime).

    ``--debug`` anywhere on the command line re-raises them with their traceback instead.
    """
    from flows.cli.errors import usage_exceptions

    click_exit, click_abort, click_error, no_args = usage_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    logging.basicConfig(
        level=os.environ.get("MFAL_LOG_LEVEL", "DEBUG" if debug else "WARNING"),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code = app(args=args, prog_name="mfal", standalone_mode=False)
    except click_exit as err:
        sys.exit(err.exit_code)
    except (click_abort, KeyboardInterrupt):
        code = 130
    except no_args as err:  # plain ``mfal`` / ``mfal bench``: the help text
        err.show()
        sys.exit(err.exit_code)
    except click_error as err:  # usage: bad option, missing argument, bad value (exit 2)
        if debug:
            raise
        ctx = getattr(err, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        print(f"mfal: error: {one_line(err.format_message())}{hint}", file=sys.stderr)
        sys.exit(err.exit_code)
    except Exception as err:
        status = exit_code(err)
        if status is None or debug:
            raise  # a bug (or --debug): the traceback is the report
        print(f"mfal: error: {one_line(err)}", file=sys.stderr)
        sys.exit(status)
    if code == 130:
        print("mfal: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
