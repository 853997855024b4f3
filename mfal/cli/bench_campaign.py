"""mfal CLI commands (module bench_campaign): registered on import."""

from __future__ import annotations
