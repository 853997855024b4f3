"""MFCHGNet checkpoints: ``{"model_args", "state_dict", "mfal_version"}`` written atomically, read with
``torch.load(weights_only=True)`` and checked against a recorded sha256."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mfal.errors import DataError
from mfal.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from mfal.model.mfchgnet import MFCHGNet

#: keys every mfal checkpoint has
CHECKPOINT_KEYS = ("model_args", "state_dict")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(model: MFCHGNet, path: str | os.PathLike) -> str:
    """Write ``model``'s ``model_args`` and weights (tensors on CPU) atomically to ``path``; return its sha256."""
    import mfal

    payload = {
        "model_args": copy.deepcopy(model.model_args),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "mfal_version": mfal.__version__,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return file_sha256(path)


def read_checkpoint(path: str | os.PathLike, *, sha256: str | None = None) -> dict:
    """The payload of an mfal checkpoint (safe loading), after checking the file's sha256 when given.

    Raises DataError if the file is missing, its sha256 differs, it holds pickled Python objects, or it is not
    an mfal checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256:
            raise DataError(f"checkpoint {path}: sha256 {actual} != expected {sha256}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise DataError(
            f"checkpoint {path} contains a pickled Python object that safe loading (weights_only=True) "
            "refuses; only mfal checkpoints (model_args + state_dict tensors) are accepted"
        ) from err
    except Exception as err:  # torch raises many types for non-torch files (KeyError, RuntimeError, ...)
        raise DataError(
            f"checkpoint {path} is not a readable torch file: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(payload, dict) or not set(CHECKPOINT_KEYS) <= set(payload):
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise DataError(
            f"checkpoint {path} is not an mfal checkpoint: expected keys model_args, state_dict, got {keys}"
        )
    return payload


def load_checkpoint(
    path: str | os.PathLike,
    *,
    sha256: str | None = None,
    device: str = "cpu",
    cls: type[MFCHGNet] | None = None,
) -> MFCHGNet:
    """Rebuild the model saved at ``path`` (``cls`` defaults to MFCHGNet) on ``device`` (auto|cpu|cuda[:N])."""
    from mfal.device import resolve_device

    if cls is None:
        from mfal.model.mfchgnet import MFCHGNet as cls
    payload = read_checkpoint(path, sha256=sha256)
    model = cls(**payload["model_args"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise DataError(f"checkpoint {path}: weights do not match its model_args: {err}") from err
    return model.to(resolve_device(device))
