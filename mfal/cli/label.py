"""mfal CLI commands (module label): registered on import."""

from __future__ import annotations
