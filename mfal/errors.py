"""Exception types. User-facing errors subclass :class:`MfalError`; the CLI prints them as one line."""

from __future__ import annotations


class MfalError(Exception):
    """Base class of errors that the CLI reports as one clear line (exit status 1)."""


class ConfigError(MfalError, ValueError):
    """A config file or value is invalid (message names the field)."""


class DataError(MfalError, ValueError):
    """A frame, structure or output file is unusable (message names the frame/file)."""


class StoreError(MfalError):
    """The store cannot be opened, read or written."""


class LabelError(MfalError):
    """A labeler could not be set up or run (not a failed calculation: those are recorded)."""
