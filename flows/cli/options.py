"""Run options from the command line, passed explicitly to library functions (never through the environment)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mfal.runopts import RunOptions, check_device_name


def run_options(device: str | None, progress: bool) -> RunOptions:
    """RunOptions of ``--device``/progress flags; an unknown device name is a one-line ConfigError."""
    if device is not None:
        check_device_name(device)
    return RunOptions(device=device, progress=progress)


def call_with_options(fn: Callable[..., Any], *args: Any, options: RunOptions, **kwargs: Any) -> Any:
    """``fn(*args, options=options, **kwargs)``; a function that still takes ``device``/``progress`` gets those."""
    params = inspect.signature(fn).parameters
    if "options" in params:
        return fn(*args, options=options, **kwargs)
    if "device" in params:
        kwargs["device"] = options.device
    if "progress" in params:
        kwargs["progress"] = options.progress
    return fn(*args, **kwargs)
