"""Keep database passwords out of logs, documents and process arguments."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from mfal.fileio import check_private_file

logger = logging.getLogger(__name__)

_URI_CREDS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@\s]+)@")
_KEY_VALUE = re.compile(r"(?i)(?P<key>['\"]?password['\"]?\s*[:=]\s*)(?P<q>['\"]?)(?P<pw>[^'\"\s,}]+)")


def redact(text: str) -> str:
    """Replace passwords in URIs (``scheme://user:PW@``) and ``password: PW`` pairs by ``***``."""
    text = _URI_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['key']}{m['q']}***", text)


def check_private(path: str | Path, what: str = "credentials file") -> str | None:
    """Warn (and return the warning) if ``path`` is readable or writable by group/others."""
    return check_private_file(path, what)


def write_private(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` created with mode 0600 (atomically replaced)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def expand_env(text: str, *, source: str) -> str:
    """Substitute ``${VAR}`` from the environment; a missing variable is an error naming it and ``source``."""
    from mfal.errors import ConfigError

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{source} uses ${{{name}}} but the environment variable {name} is not set")
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, text)
