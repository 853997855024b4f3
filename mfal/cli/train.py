"""mfal CLI commands (module train): registered on import."""

from __future__ import annotations
