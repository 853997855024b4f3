"""Campaign directory layout and the small state file (with the store, the source of truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mfal.campaign.artifacts import CheckpointRef, RoundDir
from mfal.errors import ConfigError, DataError
from mfal.fileio import atomic_write_json, atomic_write_text, read_json

__all__ = [
    "CampaignDir",
    "CampaignState",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
]

CAMPAIGN_FILE = "campaign.yaml"
STATE_FILE = "state.json"
CALLS_LOG = "labeler_calls.log"

CampaignStateName = Literal["new", "running", "done", "stopped", "failed"]


class CampaignState(BaseModel):
    """What the campaign has finished; rewritten atomically after every step."""

    model_config = ConfigDict(extra="forbid")

    campaign: str
    state: CampaignStateName = "new"
    round: int = Field(0, ge=0, description="round in progress (or the next one)")
    checkpoints: list[CheckpointRef] = Field(
        default_factory=list, description="promoted ensemble (keys relative to the campaign directory)"
    )
    hf_force_mae: float | None = Field(
        None, description="target-fidelity validation force MAE of the promoted ensemble (eV/Å)"
    )
    spent: dict[str, float] = Field(default_factory=dict, description="label cost per fidelity (core-seconds)")
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

    def round(self, r: int) -> RoundDir:
        """Round ``r``'s artifacts (load/save)."""
        return RoundDir(self.root, r)

    def round_dir(self, r: int) -> Path:
        return self.round(r).path

    def label_dir(self, r: int, fidelity: str) -> Path:
        return self.round(r).label_dir(fidelity)

    def model_dir(self, r: int) -> Path:
        return self.round(r).model_dir

    def load_state(self) -> CampaignState:
        """The state file; missing, truncated or invalid -> one line naming the file."""
        data = read_json(self.state_path)  # binary/truncated -> DataError naming the file
        if data is None:
            raise ConfigError(
                f"{self.root}: not a campaign directory (no {STATE_FILE}); start one with mfal run"
            )
        try:
            return CampaignState.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "<top level>"
            raise DataError(f"{self.state_path}: not a campaign state (field {loc}: {first['msg']})") from err

    def save_state(self, state: CampaignState) -> None:
        atomic_write_json(self.state_path, state.model_dump(mode="json"))

    def record_time(self, r: int, stage: str, seconds: float) -> None:
        """Add ``seconds`` of wall time to ``stage`` of round ``r`` (rounds/NNN/times.json)."""
        self.round(r).record_time(stage, seconds)

    def times(self, r: int) -> dict[str, float]:
        return self.round(r).times()
