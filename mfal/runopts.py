"""Run options set once per process (the CLI, a Maker or a SLURM step) and passed down explicitly.

mfal never reads process-wide environment variables for these: whoever starts the work decides them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mfal.errors import ConfigError

DEVICE_NAMES = ("auto", "cpu", "cuda")


def check_device_name(device: str) -> str:
    """``device`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else a ConfigError listing those."""
    ok = device in DEVICE_NAMES or (device.startswith("cuda:") and device[5:].isdigit())
    if not ok:
        raise ConfigError(f"device={device!r} not in {list(DEVICE_NAMES)} (or cuda:N)")
    return device


class RunOptions(BaseModel):
    """How to run, not what: device override and progress bars. Serialisable (jobs carry it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str | None = Field(
        None, description="auto|cpu|cuda[:N]; overrides the config's device and train.device when set"
    )
    progress: bool = Field(False, description="show progress bars (the CLI asks for them)")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return check_device_name(v)
        except ConfigError as err:
            raise ValueError(str(err)) from None
