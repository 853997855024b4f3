"""Campaign configuration (pydantic, ``extra="forbid"`` everywhere) and its one-line-error loader.

Budgets are in core-hours in the YAML (status and RoundDocs report core-seconds); force thresholds in eV/Å.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mfal.acquire.select import SelectionPolicy
from mfal.config_io import read_yaml, validation_message
from mfal.errors import ConfigError
from mfal.explore.config import ExploreConfig, StartStructure
from mfal.fidelity import DEFAULT_FIDELITIES
from mfal.train.trainer import TrainConfig

FIDELITIES = ("lf", "hf")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelerConfig(_Strict):
    """One labeler for one fidelity."""

    kind: str = Field(description="labeler name: teacher, vasp, cp2k or replay")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the labeler")
    cost_per_label: float | None = Field(
        None,
        gt=0,
        description="prior cost of one label of a 28-atom cell (core-seconds); default: the labeler's",
    )
    chunk_size: int = Field(
        1, ge=1, description="structures per labeler call (each chunk is stored on return)"
    )

    @field_validator("kind")
    @classmethod
    def _known(cls, v: str) -> str:
        from mfal.label import LABELERS

        if v not in LABELERS:
            raise ValueError(f"labeler kind={v!r} not in {sorted(LABELERS)}")
        return v


class LabelersConfig(_Strict):
    lf: LabelerConfig
    hf: LabelerConfig


class PerFidelity(_Strict):
    """A number per fidelity (core-hours for budgets)."""

    lf: float = Field(ge=0)
    hf: float = Field(ge=0)


class BudgetConfig(_Strict):
    per_round: PerFidelity = Field(description="label budget per round (core-hours)")
    total: PerFidelity = Field(description="label budget of the whole campaign (core-hours)")


class EnsembleConfig(_Strict):
    k: int = Field(3, ge=3, description="ensemble members (≥ 3 for a usable spread)")
    bootstrap: bool = Field(True, description="each member trains on a bootstrap resample")


class InitialConfig(_Strict):
    """Round 0 has no model: diverse picks only."""

    n_lf: int = Field(6, ge=1, description="LF labels in round 0 (besides the HF pairs)")
    n_hf: int = Field(3, ge=1, description="HF labels in round 0")


class StopConfig(_Strict):
    max_rounds: int = Field(3, ge=1, description="rounds including round 0")
    hf_uncertainty_target: float | None = Field(
        None, gt=0, description="stop when the mean HF force_std_max of the candidates falls below (eV/Å)"
    )


class CampaignConfig(_Strict):
    """Everything one campaign needs; see configs/demo.yaml."""

    name: str = Field(min_length=1, description="campaign name (stored in every FrameDoc/RoundDoc)")
    seed: int = 0
    device: str = Field("auto", description="auto, cpu or cuda for scoring and MD")
    store: dict[str, Any] | str | None = Field(
        None, description="store section (default: embedded DIR/store)"
    )
    start_structures: list[StartStructure] = Field(min_length=1)
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    labelers: LabelersConfig
    budget: BudgetConfig
    trust: SelectionPolicy
    initial: InitialConfig = Field(default_factory=InitialConfig)
    stop: StopConfig = Field(default_factory=StopConfig)
    ratio_failed: float = Field(0.2, ge=0, le=1, description="max failed-label fraction in a round")
    promotion_margin: float = Field(
        0.005, ge=0, description="new ensemble promoted unless its HF val force MAE is worse by more (eV/Å)"
    )
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="share of structures held out")

    @field_validator("train")
    @classmethod
    def _fidelities(cls, v: TrainConfig) -> TrainConfig:
        if tuple(v.fidelities) != DEFAULT_FIDELITIES:
            raise ValueError(
                f"train.fidelities={list(v.fidelities)}: a campaign needs {list(DEFAULT_FIDELITIES)}"
            )
        return v




def parse_config(raw: Any, path: Path) -> CampaignConfig:
    """Validate a mapping read from ``path``; missing start-structure files are errors too."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of campaign settings, got {type(raw).__name__}")
    try:
        cfg = CampaignConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(validation_message(err, path)) from err
    for i, spec in enumerate(cfg.start_structures):
        p = spec.resolved_path(path.parent)
        if p is not None and not p.is_file():
            raise ConfigError(f"{path}: field start_structures.{i}.path: file {str(p)!r} not found")
    return cfg




def load_config(path: str | Path) -> CampaignConfig:
    """Read and validate a campaign YAML; any problem -> one-line ConfigError naming the field."""
    path = Path(path)
    return parse_config(read_yaml(path), path)


def absolutize(cfg: CampaignConfig, base: Path) -> CampaignConfig:
    """A copy with start-structure paths made absolute against ``base`` (so the campaign copy is self-contained)."""
    specs = [
        s.model_copy(update={"path": str(s.resolved_path(base).resolve())}) if s.path else s
        for s in cfg.start_structures
    ]
    return cfg.model_copy(update={"start_structures": specs})
