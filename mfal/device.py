"""Torch device selection: ``auto`` uses CUDA when present, else CPU."""

from __future__ import annotations

from typing import Literal

from mfal.errors import ConfigError

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(device: str = "auto") -> str:
    """Map ``auto|cpu|cuda[:N]`` to a torch device string; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} requested but no CUDA device is available (use auto or cpu)")
        return device
    raise ConfigError(f"device={device!r} not in ['auto', 'cpu', 'cuda']")
