"""The resumable training state ``train_state.pt``: tensors and plain Python values only.

It is loadable with ``torch.load(..., weights_only=True)`` (pickles are refused) and written atomically after
every epoch, so a killed run resumes after its last finished epoch.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfal.errors import DataError
from mfal.fileio import atomic_write_bytes

if TYPE_CHECKING:
    import torch

STATE_FORMAT = "mfal-train-state/1"
STATE_FILE = "train_state.pt"


def state_dict_copy(model: Any) -> dict[str, torch.Tensor]:
    """Detached copy of ``model.state_dict()`` (a snapshot that later steps do not change)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save_train_state(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomic write of a weights_only-loadable training state."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Load a training state written by the trainer (``weights_only=True``; pickles are refused)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"resume checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"resume checkpoint {path}: cannot be loaded with weights_only=True ({err})") from err
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise DataError(f"resume checkpoint {path}: not an mfal training state (format {STATE_FORMAT!r})")
    return state
