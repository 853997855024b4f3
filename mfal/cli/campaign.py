"""mfal CLI commands (module campaign): registered on import."""

from __future__ import annotations
