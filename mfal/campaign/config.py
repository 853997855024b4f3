"""Campaign configuration (pydantic, ``extra="forbid"`` everywhere) and its one-line-error loader.

Budgets are in core-hours in the YAML (status and RoundDocs report core-seconds); force thresholds in calibrated eV/Å (raw ensemble
spread × the per-fidelity scale the evaluate step fits each round).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mfal.acquire.select import SelectionPolicy
from mfal.config_io import read_yaml, validation_message
from mfal.errors import ConfigError
from mfal.explore.config import ExploreConfig, StartStructure
from mfal.fidelity import Fidelities
from mfal.label.config import LabelerSpec
from mfal.runopts import RunOptions, check_device_name
from mfal.train.config import TrainConfig
from mfal.train.ensemble import EnsembleConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


NonNegative = Annotated[float, Field(ge=0)]


class BudgetConfig(_Strict):
    """Label budgets per fidelity name (core-hours)."""

    per_round: dict[str, NonNegative] = Field(description="label budget per round (core-hours)")
    total: dict[str, NonNegative] = Field(description="label budget of the whole campaign (core-hours)")

    def seconds(self, which: str) -> dict[str, float]:
        """``per_round`` or ``total`` in core-seconds."""
        return {f: h * 3600.0 for f, h in getattr(self, which).items()}


class CampaignEnsemble(EnsembleConfig):
    """The one ``EnsembleConfig`` (mfal.train.ensemble) with the campaign's defaults: k ≥ 3, bootstrap."""

    k: int = Field(3, ge=3, description="ensemble members (≥ 3 for a usable spread)")
    bootstrap: bool = Field(True, description="each member trains on a bootstrap resample (per fidelity)")
    kind: Literal["independent", "heads"] = Field(
        "heads",
        description="heads (default: one shared trunk, K readout heads on their own bootstraps; cheaper to train "
        "and score, HF calibration as good in `mfal bench model`; no moment spread) or independent (K full models)",
    )
    force_probes: int | None = Field(
        None,
        ge=1,
        description="heads only: score the force spread with this many random contrast probes (1 + P backward "
        "passes per fidelity instead of K; an unbiased sketch of the member variance); null = exact member forces",
    )

    force_spread: Literal["last_layer", "exact"] = Field(
        "last_layer",
        description="heads only: how the member force spread is computed. last_layer (default): mean forces exact, "
        "member contrasts backpropagated through the last AtomConv only (scoring ≈ 1 CHGNet pass per fidelity; ranks "
        "as well as exact in `mfal bench model`, smaller raw size that the per-round calibration absorbs); exact: "
        "through the whole trunk (K backward passes per fidelity). Independent members are always exact",
    )

    def scorer_for(self, ensemble: Any) -> dict[str, Any]:
        """``score_candidates`` options for ``ensemble``: ``force_probes`` (capped at its K - 1 members) and
        ``force_spread`` for a shared-trunk ensemble; exact member forces otherwise."""
        if not ensemble.shared_trunk:
            return {"force_probes": None, "force_spread": "exact"}
        probes = None if self.force_probes is None else min(self.force_probes, len(ensemble.members) - 1)
        return {"force_probes": probes, "force_spread": self.force_spread}

    @model_validator(mode="after")
    def _probes_fit(self) -> CampaignEnsemble:
        if self.force_probes is not None:
            if self.kind != "heads":
                raise ValueError(f"force_probes={self.force_probes} needs kind: heads (got kind: {self.kind})")
            if self.force_probes > self.k - 1:
                raise ValueError(f"force_probes={self.force_probes} must be <= k - 1 = {self.k - 1} (k - 1 = exact)")
            if self.force_spread != "exact":
                raise ValueError(
                    f"force_probes={self.force_probes} sketches the exact spread: set force_spread: exact with it"
                )
        return self


class InitialConfig(_Strict):
    """Round 0 has no model: diverse picks only."""

    n_lf: int = Field(6, ge=1, description="labels at each lower fidelity in round 0 (besides the pairs)")
    n_hf: int = Field(3, ge=1, description="labels at the target (highest) fidelity in round 0")

    def per_fidelity(self, fidelities: Fidelities) -> dict[str, int]:
        """Round-0 picks per fidelity name: ``n_hf`` at the target, ``n_lf`` at every other."""
        return {f: self.n_hf if f == fidelities.high else self.n_lf for f in fidelities.names}


class StopConfig(_Strict):
    max_rounds: int = Field(3, ge=1, description="rounds including round 0")
    hf_uncertainty_target: float | None = Field(
        None,
        gt=0,
        description="stop when the mean calibrated target-fidelity force_std_max of the candidates (raw ensemble "
        "spread × the fidelity's fitted scale, eV/Å; see RoundDoc.uncertainty_scale) falls below (eV/Å)",
    )


class CampaignConfig(_Strict):
    """Everything one campaign needs; see configs/demo.yaml."""

    name: str = Field(min_length=1, description="campaign name (stored in every FrameDoc/RoundDoc)")
    seed: int = 0
    strategy: Literal["uncertainty", "random"] = Field(
        "uncertainty",
        description="select step: most uncertain + diverse picks, or uniform random picks (seeded by seed + "
        "round) among the same candidates under the same budgets and caps (a baseline)",
    )
    allow_teacher_warm_start: bool = Field(
        False,
        description="allow train.pretrained_version equal to the HF teacher's model (the model would start "
        "from the labels' own potential: nothing left to learn)",
    )
    fidelities: Fidelities = Field(default_factory=Fidelities, description="fidelity names, cheapest first")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N for scoring and MD")
    store: dict[str, Any] | str | None = Field(
        None, description="store section (default: embedded DIR/store)"
    )
    start_structures: list[StartStructure] = Field(min_length=1)
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    ensemble: CampaignEnsemble = Field(default_factory=CampaignEnsemble)
    train: TrainConfig = Field(default_factory=TrainConfig)
    labelers: dict[str, LabelerSpec] = Field(
        description="one labeler per fidelity name: {kind: teacher|vasp|cp2k|replay, options, cost_per_label, chunk_size}"
    )
    budget: BudgetConfig
    trust: SelectionPolicy
    initial: InitialConfig = Field(default_factory=InitialConfig)
    stop: StopConfig = Field(default_factory=StopConfig)
    ratio_failed: float = Field(0.2, ge=0, le=1, description="max failed-label fraction in a round")
    promotion_margin: float = Field(
        0.005, ge=0, description="new ensemble promoted unless its HF val force MAE is worse by more (eV/Å)"
    )
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="share of structures held out")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        try:
            return check_device_name(v)
        except ConfigError as err:
            raise ValueError(str(err)) from None

    @model_validator(mode="before")
    @classmethod
    def _train_fidelities(cls, data: Any) -> Any:
        """``train.fidelities`` defaults to the campaign's names (one place decides them)."""
        if isinstance(data, dict) and isinstance(data.get("fidelities"), dict):
            names = data["fidelities"].get("names")
            train = data.get("train")
            if names is not None and isinstance(train, dict | None):
                train = dict(train or {})
                train.setdefault("fidelities", list(names))
                if "magnetic" in data["fidelities"]:
                    train.setdefault("magnetic_fidelities", list(data["fidelities"]["magnetic"]))
                data = {**data, "train": train}
        return data

    @model_validator(mode="after")
    def _per_fidelity(self) -> CampaignConfig:
        names = list(self.fidelities.names)
        if list(self.train.fidelities) != names:
            raise ValueError(f"train.fidelities={list(self.train.fidelities)}: a campaign needs {names}")
        try:
            check_device_name(self.train.device)
        except ConfigError as err:
            raise ValueError(f"train.device: {err}") from None
        for where, keys in (
            ("labelers", self.labelers),
            ("budget.per_round", self.budget.per_round),
            ("budget.total", self.budget.total),
            ("trust", self.trust.windows),
        ):
            if sorted(keys) != sorted(names):
                raise ValueError(f"{where}: fidelities {sorted(keys)} must be the campaign's {names}")
        md = self.explore.md.fidelity
        if md is not None and md not in names:
            raise ValueError(f"explore.md.fidelity={md!r} not in fidelities {names}")
        return self

    def teacher_warm_start(self) -> str | None:
        """Why the warm start is refused (it is the HF teacher's own model), or None when it is fine."""
        high = self.fidelities.high
        teacher = self.teacher_model(high)
        if self.allow_teacher_warm_start or teacher is None:
            return None
        from mfal.train.build import warm_start_name

        start = warm_start_name(self.train)
        if start != teacher:
            return None
        field = "train.pretrained_version" if self.train.warm_start == "pretrained" else "train.warm_start"
        return (
            f"{field}={start!r} is the {high} teacher's model "
            f"(labelers.{high}): the model would start from its own labels; warm-start from another "
            "(e.g. 'r2scan'), use train.warm_start: scratch, or set allow_teacher_warm_start: true"
        )

    def teacher_model(self, fidelity: str) -> str | None:
        """The pretrained CHGNet name behind ``fidelity``'s teacher labeler (None for other labeler kinds)."""
        spec = self.labelers.get(fidelity)
        if spec is None or getattr(spec, "kind", None) != "teacher":
            return None
        fid = getattr(spec.options, "fidelities", {}).get(fidelity)
        return getattr(fid, "model", None)

    def md_fidelity(self) -> str:
        """The model head that drives exploration MD (default: the target fidelity)."""
        return self.explore.md.fidelity or self.fidelities.high

    def with_options(self, options: RunOptions) -> CampaignConfig:
        """A copy with ``options.device`` (if set) as ``device`` and ``train.device``."""
        if options.device is None:
            return self
        train = self.train.model_copy(update={"device": options.device})
        return self.model_copy(update={"device": options.device, "train": train})


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
    refused = cfg.teacher_warm_start()
    if refused:
        raise ConfigError(f"{path}: field {refused}")
    return cfg


def load_config(path: str | Path) -> CampaignConfig:
    """Read and validate a campaign YAML; any problem -> one-line ConfigError naming the field."""
    path = Path(path)
    return parse_config(read_yaml(path), path)


def _absolute(value: Any, base: Path) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def absolutize(cfg: CampaignConfig, base: Path) -> CampaignConfig:
    """A copy with start-structure paths and the ``store:`` paths (a store YAML, or a section's ``path`` and
    ``uri_file``) made absolute against ``base``, the config's folder (so the campaign copy is self-contained)."""
    specs = [
        s.model_copy(update={"path": str(s.resolved_path(base).resolve())}) if s.path else s
        for s in cfg.start_structures
    ]
    store = cfg.store
    if isinstance(store, str):
        store = _absolute(store, base)
    elif isinstance(store, dict):
        store = {k: _absolute(v, base) if k in ("path", "uri_file") and v else v for k, v in store.items()}
    return cfg.model_copy(update={"start_structures": specs, "store": store})
