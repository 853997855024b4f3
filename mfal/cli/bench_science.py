"""mfal CLI commands (module bench_science): registered on import."""

from __future__ import annotations
