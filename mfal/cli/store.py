"""mfal CLI commands (module store): registered on import."""

from __future__ import annotations
