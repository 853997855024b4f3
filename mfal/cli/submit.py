"""mfal CLI commands (module submit): registered on import."""

from __future__ import annotations
