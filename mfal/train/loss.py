"""Masked multi-fidelity loss: weighted energy (eV/atom), force (eV/Å), stress (GPa) and magmom (μB) terms.

Each term averages the element-wise criterion (Huber or MSE) over the labels that exist; a frame without a label
contributes nothing (zero gradient) to that term. Magmom loss only counts frames that carry moments. Optional
per-fidelity weights scale each frame's contribution (defaults: E 1, F 1, S 0.1, M 0.1 as in CHGNet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch

    from mfal.train.data import Batch


class LossWeights(BaseModel):
    """Weights of the loss terms (dimensionless)."""

    model_config = ConfigDict(extra="forbid")

    e: float = Field(1.0, ge=0, description="energy term weight (energy in eV/atom)")
    f: float = Field(1.0, ge=0, description="force term weight (forces in eV/Å)")
    s: float = Field(0.1, ge=0, description="stress term weight (stress in GPa)")
    m: float = Field(0.1, ge=0, description="magmom term weight (moments in μB)")


class LossConfig(BaseModel):
    """Loss criterion and weights; ``per_fidelity`` overrides the weights of one fidelity's frames."""

    model_config = ConfigDict(extra="forbid")

    criterion: Literal["huber", "mse"] = Field("huber", description="element-wise criterion")
    delta: float = Field(0.1, gt=0, description="Huber delta (in the units of each term)")
    weights: LossWeights = Field(default_factory=LossWeights)
    per_fidelity: dict[str, LossWeights] = Field(
        default_factory=dict, description="fidelity name -> weights replacing `weights` for its frames"
    )


def _elementwise(pred: torch.Tensor, target: torch.Tensor, criterion: str, delta: float) -> torch.Tensor:
    import torch.nn.functional as F

    if criterion == "mse":
        return F.mse_loss(pred, target, reduction="none")
    return F.huber_loss(pred, target, reduction="none", delta=delta)


def balance_scale(counts: Mapping[str, int], alpha: float) -> dict[str, float]:
    """Per-fidelity frame weight ∝ N_f^(−alpha), normalised so the mean frame weight is 1.

    alpha 0: every frame counts the same (a fidelity with 4× the frames gets 4× the say); alpha 1: every
    fidelity gets the same total weight, however many frames it has (the HF frames are not drowned by LF).
    """
    counts = {f: n for f, n in counts.items() if n > 0}
    if not counts or alpha == 0:
        return {f: 1.0 for f in counts}
    raw = {f: n ** (-alpha) for f, n in counts.items()}
    norm = sum(counts.values()) / sum(n * raw[f] for f, n in counts.items())
    return {f: raw[f] * norm for f in counts}


def frame_scale(counts: Mapping[str, int], alpha: float, lf_weight: float, target: str) -> dict[str, float]:
    """Per-fidelity frame weight: :func:`balance_scale` times ``lf_weight`` for every fidelity but ``target``
    (not renormalised, so the target frames keep their weight and the LF frames only lose say)."""
    scale = balance_scale(counts, alpha)
    return {f: w if f == target else w * lf_weight for f, w in scale.items()}


class MFLoss:
    """Callable loss: ``loss(prediction, batch) -> {"loss": Tensor, "e": ..., "f": ..., "s": ..., "m": ...}``.

    ``prediction`` is MFCHGNet.forward's output (``e`` [n_graphs] eV/atom, ``f``/``s``/``m`` lists per graph).
    ``fidelity_scale`` multiplies every weight of a fidelity's frames (see :func:`balance_scale`).
    The returned per-term values are the unweighted term losses (detached floats' tensors) for logging.
    """

    def __init__(
        self, config: LossConfig | None = None, *, fidelity_scale: Mapping[str, float] | None = None
    ) -> None:
        self.config = config or LossConfig()
        self.fidelity_scale = dict(fidelity_scale or {})

    def _weights(self, fidelities: Sequence[str], key: str) -> list[float]:
        cfg, scale = self.config, self.fidelity_scale
        return [getattr(cfg.per_fidelity.get(f, cfg.weights), key) * scale.get(f, 1.0) for f in fidelities]

    def task(self, available: str = "efsm") -> str:
        """The model task string: terms with a non-zero weight somewhere that are also ``available``."""
        cfg = self.config
        weights = [cfg.weights, *cfg.per_fidelity.values()]
        return "".join(k for k in "efsm" if k in available and any(getattr(w, k) > 0 for w in weights))

    def __call__(self, prediction: Mapping[str, object], batch: Batch) -> dict[str, torch.Tensor]:
        import torch

        crit, delta = self.config.criterion, self.config.delta
        e_pred = prediction["e"]
        total = e_pred.new_zeros(())
        out: dict[str, torch.Tensor] = {}

        # energy per atom: mask missing (NaN) labels
        if "e" in prediction:
            w = torch.tensor(self._weights(batch.fidelities, "e"), dtype=e_pred.dtype, device=e_pred.device)
            mask = torch.isfinite(batch.energy)
            if bool(mask.any()):
                target = batch.energy[mask]
                el = _elementwise(e_pred.reshape(-1)[mask], target, crit, delta)
                term = el.mean()
                total = total + (w[mask] * el).mean()
                out["e"] = term.detach()

        # forces, stress, magmoms: per-frame tensors, None where missing
        for key, labels in (("f", batch.forces), ("s", batch.stress), ("m", batch.magmoms)):
            preds = prediction.get(key)
            if preds is None:
                continue
            weights = self._weights(batch.fidelities, key)
            els, ws = [], []
            for pred_i, label_i, w_i in zip(preds, labels, weights, strict=True):
                if label_i is None:
                    continue
                el = _elementwise(pred_i.reshape(label_i.shape), label_i, crit, delta).reshape(-1)
                els.append(el)
                ws.append(torch.full_like(el, w_i))
            if not els:
                continue
            el = torch.cat(els)
            total = total + (torch.cat(ws) * el).mean()
            out[key] = el.mean().detach()
        out["loss"] = total
        return out
