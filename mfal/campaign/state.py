"""Campaign directory layout, atomic file writes and the small state file (with the store, the source of truth)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mfal.errors import ConfigError

CAMPAIGN_FILE = "campaign.yaml"
STATE_FILE = "state.json"
CALLS_LOG = "labeler_calls.log"

CampaignStateName = Literal["new", "running", "done", "stopped", "failed"]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    """JSON-dump ``obj`` to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=1, default=str))


def read_json(path: Path, default: Any = None) -> Any:
    """Parsed JSON of ``path`` or ``default`` when the file does not exist."""
    if not path.is_file():
        return default
    return json.loads(path.read_text())


class CampaignState(BaseModel):
    """What the campaign has finished; rewritten atomically after every step."""

    model_config = ConfigDict(extra="forbid")

    campaign: str
    state: CampaignStateName = "new"
    round: int = Field(0, description="round in progress (or the next one)")
    checkpoints: list[dict[str, str]] = Field(
        default_factory=list, description="promoted ensemble {path, sha256}"
    )
    hf_force_mae: float | None = Field(
        None, description="HF validation force MAE of the promoted ensemble (eV/Å)"
    )
    spent: dict[str, float] = Field(
        default_factory=lambda: {"lf": 0.0, "hf": 0.0}, description="core-seconds"
    )
    stop_reason: str | None = None


class CampaignDir:
    """Paths inside a campaign directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    @property
    def config_path(self) -> Path:
        return self.root / CAMPAIGN_FILE

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def calls_log(self) -> Path:
        return self.root / CALLS_LOG

    def round_dir(self, r: int) -> Path:
        return self.root / "rounds" / f"{r:03d}"

    def label_dir(self, r: int, fidelity: str) -> Path:
        return self.round_dir(r) / "labels" / fidelity

    def model_dir(self, r: int) -> Path:
        return self.round_dir(r) / "models"

    def load_state(self) -> CampaignState:
        data = read_json(self.state_path)
        if data is None:
            raise ConfigError(
                f"{self.root}: not a campaign directory (no {STATE_FILE}); start one with mfal run"
            )
        return CampaignState.model_validate(data)

    def save_state(self, state: CampaignState) -> None:
        atomic_write_json(self.state_path, state.model_dump(mode="json"))

    def record_time(self, r: int, stage: str, seconds: float) -> None:
        """Add ``seconds`` of wall time to ``stage`` of round ``r`` (rounds/NNN/times.json)."""
        path = self.round_dir(r) / "times.json"
        times = read_json(path, {})
        times[stage] = times.get(stage, 0.0) + seconds
        atomic_write_json(path, times)

    def times(self, r: int) -> dict[str, float]:
        return read_json(self.round_dir(r) / "times.json", {})
