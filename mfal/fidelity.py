"""Fidelity names and indices — the one place they are decided.

Paper notation: index 1 is the cheap non-magnetic fidelity (LF), index 2 the spin-polarized one (HF). The
names are the config's (``fidelities:`` in a campaign or train config); code asks a :class:`Fidelities` for
``.low``/``.high``/``.magnetic`` instead of writing ``"lf"``/``"hf"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mfal.errors import ConfigError

FidelityName = Literal["lf", "hf"]
#: default names, in paper order (index 1, 2)
LF, HF = "lf", "hf"
DEFAULT_FIDELITIES: tuple[str, ...] = (LF, HF)
#: fidelities whose labels carry per-site magnetic moments by default
MAGNETIC_FIDELITIES: tuple[str, ...] = (HF,)


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


class Fidelities(BaseModel):
    """The fidelities of a campaign or model, cheapest first (index 1 = ``low``, last = ``high``, the target)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    names: tuple[str, ...] = Field(DEFAULT_FIDELITIES, min_length=2, description="cheapest first (f = 1, 2, …)")
    magnetic: tuple[str, ...] = Field(MAGNETIC_FIDELITIES, description="fidelities whose labels carry moments (μB)")

    @model_validator(mode="after")
    def _check(self) -> Fidelities:
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"fidelities.names={list(self.names)}: names must be unique")
        unknown = [m for m in self.magnetic if m not in self.names]
        if unknown:
            raise ValueError(f"fidelities.magnetic={unknown} not in names {list(self.names)}")
        return self

    @property
    def low(self) -> str:
        """The cheap, non-magnetic fidelity (paper f = 1)."""
        return self.names[0]

    @property
    def high(self) -> str:
        """The target fidelity (paper f = 2): spin-polarized, the one the campaign is judged on."""
        return self.names[-1]

    def index(self, name: str) -> int:
        """1-based paper index of ``name``; unknown names raise :class:`UnknownFidelityError`."""
        return fidelity_index(name, self.names)

    def check(self, name: str) -> str:
        """``name`` if known, else :class:`UnknownFidelityError` listing the known ones."""
        return check_fidelity(name, self.names)

    def is_magnetic(self, name: str) -> bool:
        return self.check(name) in self.magnetic


DEFAULT = Fidelities()
