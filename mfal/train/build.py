"""The model a training run starts from, and the checks a resumed run must pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mfal.errors import ConfigError
from mfal.train.config import TrainConfig


def build_model(config: TrainConfig) -> Any:
    """The model a run starts from: pretrained warm start, scratch (seeded) or a saved MFCHGNet checkpoint."""
    import torch

    from mfal.model import MFCHGNet

    kwargs = {
        "fidelities": tuple(config.fidelities),
        "components": config.components or "",
        "magnetic_fidelities": tuple(config.magnetic_fidelities),
    }
    from mfal.model.pretrained import PRETRAINED_FILES

    if config.warm_start == "pretrained":
        return MFCHGNet.from_pretrained(version=config.pretrained_version, **kwargs)
    if config.warm_start in PRETRAINED_FILES:
        return MFCHGNet.from_pretrained(version=config.warm_start, **kwargs)
    if config.warm_start == "scratch":
        torch.manual_seed(config.seed)
        return MFCHGNet(**kwargs)
    path = Path(config.warm_start)
    if not path.is_file():
        raise ConfigError(
            f"warm_start={config.warm_start!r}: expected 'pretrained', 'scratch', a pretrained CHGNet name "
            f"{list(PRETRAINED_FILES)} or an existing checkpoint file"
        )
    model = MFCHGNet.load(path)
    check_layout(model, config, where=f"warm_start checkpoint {path}")
    return model


def warm_start_name(config: TrainConfig) -> str:
    """The pretrained CHGNet name, checkpoint path or "scratch" a run starts from."""
    return config.pretrained_version if config.warm_start == "pretrained" else config.warm_start


def check_layout(model: Any, config: TrainConfig, *, where: str) -> None:
    """``model`` must have the fidelities and components ``config`` asks for (ConfigError naming ``where``)."""
    fids, comps = tuple(config.fidelities), config.components or ""
    if tuple(model.fidelities) != fids or model.components != comps:
        raise ConfigError(
            f"{where} has fidelities={list(model.fidelities)} components={model.components!r}, "
            f"config asks for {list(fids)} {comps!r}"
        )


def check_resume(state: dict[str, Any], model: Any, config: TrainConfig) -> None:
    """A resumed run must keep the model layout and the mode of the saved one."""
    saved = state.get("config", {})
    for key in ("mode", "components", "fidelities"):
        old, new = saved.get(key), getattr(config, key)
        if isinstance(new, tuple):
            new = list(new)
        if old is not None and old != new:
            raise ConfigError(f"resume: train.{key}={new!r} differs from the saved run's {old!r}")
    if list(model.model_args.get("fidelities", [])) != list(state["model_args"].get("fidelities", [])):
        raise ConfigError("resume: the model's fidelities differ from the saved run's")


def model_from_state(state: dict[str, Any]) -> Any:
    """The MFCHGNet of a saved training state (architecture from ``model_args``, weights from ``model_state``)."""
    from mfal.model import MFCHGNet

    model = MFCHGNet(**state["model_args"])
    model.load_state_dict(state["model_state"])
    return model
