"""The labeler interface: structures + fidelity -> FrameDocs (ok, or failed/quarantined with a reason).

Every labeler records the cost of each label in core-seconds. A failed calculation is returned as a
FrameDoc with ``status="failed"`` or ``"quarantined"`` and ``status_reason``; it never raises for a
single bad calculation (it raises :class:`mfal.errors.LabelError` only when it cannot run at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel
from pymatgen.core import Structure

from mfal.errors import ConfigError
from mfal.store.docs import FrameDoc

ConfigT = TypeVar("ConfigT", bound=BaseModel)


@runtime_checkable
class Labeler(Protocol):
    """Labels structures at one fidelity."""

    name: str

    def label(
        self,
        structures: Sequence[Structure],
        fidelity: str,
        *,
        workdir: Path | None = None,
        campaign: str | None = None,
        round: int | None = None,
    ) -> list[FrameDoc]:
        """Return one FrameDoc per structure, in order (status ok, failed or quarantined)."""
        ...


def labeler_config(name: str, cls: type[ConfigT], config: ConfigT | None, options: dict[str, Any]) -> ConfigT:
    """``config`` or ``cls(**options)`` (not both); invalid options -> ConfigError naming the labeler."""
    if config is not None and options:
        raise ConfigError(f"{name} labeler: pass either config or keyword options, not both")
    try:
        return config or cls(**options)
    except ValueError as err:
        raise ConfigError(f"{name} labeler options: {err}") from err


def validate_structures(structures: Sequence[Structure], labeler: str) -> None:
    """Every structure usable (:func:`mfal.store.validate_structure`) before anything runs or is charged.

    One-line DataError naming the labeler and the structure's position, e.g. an unknown element ``Xx``.
    """
    from mfal.store.validate import validate_structure

    for i, structure in enumerate(structures):
        validate_structure(structure, f"{labeler} labeler: structure {i + 1} of {len(structures)}")

