"""Reading YAML configs safely and turning validation errors into one line that names the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mfal.errors import ConfigError


def read_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of ``path``; unreadable file, bad YAML or a Python tag -> one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        if "python/" in str(err):
            problem = f"YAML tags such as !!python/... are not allowed ({problem})"
        raise ConfigError(f"{path}:{where} invalid YAML: {problem}".replace("\n", " ")) from err


def validation_message(err: ValidationError, path: str | Path) -> str:
    """``<path>: field a.b.c: <problem> (got <value>) (+N more)`` for the first error of ``err``."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<top level>"
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    shown = "" if first["type"] in ("extra_forbidden", "missing") else f" (got {first.get('input')!r})"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: field {loc}: {msg}{shown}{more}".replace("\n", " ")
