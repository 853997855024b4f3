"""Fidelity names and indices (paper notation: f=1 non-magnetic LF, f=2 magnetic HF)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from mfal.errors import ConfigError

FidelityName = Literal["lf", "hf"]
DEFAULT_FIDELITIES: tuple[str, ...] = ("lf", "hf")
#: fidelities whose labels carry per-site magnetic moments by default
MAGNETIC_FIDELITIES: tuple[str, ...] = ("hf",)


class UnknownFidelityError(ConfigError):
    """A fidelity name that the model/config does not know."""


def fidelity_index(name: str, fidelities: Sequence[str] = DEFAULT_FIDELITIES) -> int:
    """1-based index of ``name`` in ``fidelities`` (lf -> 1, hf -> 2 by default)."""
    try:
        return list(fidelities).index(name) + 1
    except ValueError:
        raise UnknownFidelityError(f"fidelity={name!r} not in known fidelities {list(fidelities)}") from None


def check_fidelity(name: str, fidelities: Sequence[str] = DEFAULT_FIDELITIES) -> str:
    """Return ``name`` if known, else raise :class:`UnknownFidelityError` listing the known ones."""
    fidelity_index(name, fidelities)
    return name
