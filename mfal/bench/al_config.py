"""Settings of ``mfal bench al`` (``configs/bench-al-<preset>.yaml``) and the campaign config of each strategy.

Strategies (all at the same HF budget, core-hours, and the same seed per run):

- ``uncertainty`` — the campaign as shipped: MF training, picks by uncertainty (``strategy: uncertainty``);
- ``random`` — the same campaign with ``strategy: random`` (uniform picks among the same candidates, same caps);
- ``sf`` — single fidelity: HF labels only (no LF budget, no pairing), ``train.mode: sf``, random picks.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mfal.config_io import read_yaml
from mfal.errors import ConfigError

STRATEGIES = ("uncertainty", "random", "sf")
PRESETS = ("quick", "mid", "hetero", "realistic", "full")
#: the LF budget of the SF strategy (core-hours): positive (a zero total would end the campaign as "spent")
#: but below any label's cost, so no LF label is ever made
SF_LF_BUDGET_H = 1e-6


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeldOutConfig(_Strict):
    """HF test set: Langevin NVT trajectories driven by the HF teacher's own model, plus i.i.d. frames."""

    compositions: list[dict[str, float]] = Field(
        description="start-structure overrides (mn_fraction, li_fraction)"
    )
    temperatures: list[float] = Field(description="MD temperatures (K)")
    md_steps: int = Field(ge=1, description="MD steps per trajectory")
    snapshots: int = Field(ge=1, description="frames kept per trajectory (evenly spaced)")
    timestep_fs: float = Field(2.0, gt=0)
    iid: int = Field(0, ge=0, description="rattled/strained start structures (i.i.d. with the candidates)")
    seed: int = Field(12345, description="test-set seed (independent of the campaigns' seeds)")


class StabilityConfig(_Strict):
    """Short NVT runs of each final model: physical = no atom pair below ``min_distance`` Å and the potential
    energy per atom never more than ``max_energy_change`` eV/atom from its start."""

    temperature: float = Field(900.0, gt=0, description="K")
    runs: int = Field(1, ge=0, description="runs per final model (one per start structure, cycled)")
    steps: int = Field(20, ge=1)
    timestep_fs: float = Field(2.0, gt=0)
    min_distance: float = Field(0.7, gt=0, description="Å")
    max_energy_change: float = Field(1.0, gt=0, description="eV/atom")


class AlBenchConfig(_Strict):
    """One preset of ``mfal bench al``."""

    rounds: int = Field(ge=2, description="rounds per campaign (round 0 included)")
    seeds: int = Field(1, ge=1, description="default number of seeds (0..N-1)")
    campaign: dict[str, Any] = Field(
        description="the base campaign config (strategy-specific keys are set here)"
    )
    test: HeldOutConfig
    md_stability: StabilityConfig = Field(default_factory=StabilityConfig)


def preset_path(preset: str) -> Path:
    """``configs/bench-al-<preset>.yaml`` of the source tree."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: expected one of {list(PRESETS)}")
    return Path(__file__).resolve().parents[2] / "configs" / f"bench-al-{preset}.yaml"


def _deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in: nested mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = _deep_update(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


def _preset_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML mapping of ``path``; a top-level ``base: NAME`` (a preset name or YAML path) is read first and this
    file's keys are merged over it (:func:`_deep_update`), so a variant preset states only what differs."""
    if path in seen:
        raise ConfigError(f"{path}: base: presets include each other ({' -> '.join(p.name for p in (*seen, path))})")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of preset settings")
    if "base" not in raw:
        return raw
    name = str(raw.pop("base"))
    base_path = Path(name) if name.endswith((".yaml", ".yml")) else preset_path(name)
    return _deep_update(_preset_raw(base_path, (*seen, path)), raw)


def load_preset(preset: str | Path) -> AlBenchConfig:
    """A preset by name (quick, full) or a YAML path; problems -> one-line ConfigError."""
    from pydantic import ValidationError

    from mfal.config_io import validation_message

    path = Path(preset) if str(preset).endswith((".yaml", ".yml")) else preset_path(str(preset))
    raw = _preset_raw(path.resolve())
    try:
        return AlBenchConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(validation_message(err, path)) from err


def strategy_config(base: dict[str, Any], strategy: str, seed: int, rounds: int) -> dict[str, Any]:
    """The campaign config dict of ``strategy`` for ``seed`` (same HF budget for every strategy)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r}: expected one of {list(STRATEGIES)}")
    cfg = copy.deepcopy(base)
    cfg["seed"] = seed
    cfg["stop"] = {**cfg.get("stop", {}), "max_rounds": rounds}
    cfg["strategy"] = "uncertainty" if strategy == "uncertainty" else "random"
    if strategy == "sf":
        names = (cfg.get("fidelities") or {}).get("names", ["lf", "hf"])
        budget = cfg["budget"]
        for f in names[:-1]:
            budget["per_round"][f] = SF_LF_BUDGET_H
            budget["total"][f] = SF_LF_BUDGET_H
        cfg["trust"] = {**cfg["trust"], "pair_hf_with_lf": False}
        cfg["train"] = {**cfg.get("train", {}), "mode": "sf", "components": None}
        cfg["name"] = f"{cfg['name']}-sf"
    return cfg
