"""mfal CLI commands (module bench_model): registered on import."""

from __future__ import annotations
