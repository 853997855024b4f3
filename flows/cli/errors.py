"""The CLI's error contract: which exceptions are user errors, their exit status and their one-line message."""

from __future__ import annotations

#: exit status of a usage or config error (bad option, invalid YAML field, unknown name)
EXIT_CONFIG = 2
#: exit status of a data or runtime error (unreadable file, unreachable store, refused submission)
EXIT_RUNTIME = 1


def usage_exceptions() -> tuple[type[BaseException], ...]:
    """(Exit, Abort, ClickException, NoArgsIsHelpError) of the click that typer runs on (typer vendors it)."""
    import typer

    try:
        from typer._click import exceptions as cx
    except ImportError:  # older typer: plain click
        from click import exceptions as cx
    no_args = getattr(cx, "NoArgsIsHelpError", ())
    return typer.Exit, typer.Abort, cx.ClickException, no_args


def exit_code(err: BaseException) -> int | None:
    """2 for a ConfigError, 1 for any other MfalError, an OSError or a MemoryError; None for a bug."""
    from mfal.errors import ConfigError, MfalError

    if isinstance(err, ConfigError):
        return EXIT_CONFIG
    if isinstance(err, MfalError | OSError | MemoryError):
        return EXIT_RUNTIME
    return None


def one_line(err: BaseException | str) -> str:
    """The message of ``err`` on one line; an OSError names its file, a MemoryError says what ran out."""
    if isinstance(err, str):
        text = err
    elif isinstance(err, MemoryError):
        text = f"out of memory{f' ({err})' if str(err) else ''}: the input is too large for this machine"
    elif isinstance(err, OSError) and err.strerror:
        files = [str(f) for f in (err.filename, err.filename2) if f is not None]
        text = f"{' -> '.join(files)}: {err.strerror}" if files else err.strerror
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())
