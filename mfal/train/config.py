"""Settings of one training run: :class:`TrainConfig` (YAML section ``train``) and :class:`TLConfig`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mfal.fidelity import DEFAULT_FIDELITIES, HF, LF, MAGNETIC_FIDELITIES
from mfal.train.loss import LossConfig

#: the fidelity components of MF-CHGNet (E embedding, M message bias, R readout, C composition model)
COMPONENTS = "EMRC"


#: recipe defaults (set by the measurements in docs/benchmarks.md, "Training recipe")
WARM_TRUNK_LR_FACTOR = 1.0
#: loss weight of a non-target (LF) frame relative to a target (HF) frame: 1 let a large LF/HF gap pull the
#: shared trunk away from HF (realistic pair, 50 HF, 8 epochs: MF-F / SF 1.50 → 0.90 with 0.25; trained 16 epochs,
#: SF catches up: 1.02 ± 0.06, docs/benchmarks.md "Correction")
LF_FRAME_WEIGHT = 0.25


class TLConfig(BaseModel):
    """Transfer-learning baseline: LF pre-training, then HF fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    lf_epochs: int | None = Field(None, ge=0, description="epochs on LF frames (default: `epochs`)")
    hf_lr_factor: float = Field(1.0, gt=0, description="HF fine-tuning learning rate = lr × this")
    refit_atomref: bool = Field(True, description="refit the AtomRef on HF energies before fine-tuning")


class TrainConfig(BaseModel):
    """Everything one training run needs (YAML section ``train``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["mf", "sf", "tl"] = Field("mf", description="mf, sf (HF only) or tl (LF then HF)")
    fidelities: tuple[str, ...] = Field(DEFAULT_FIDELITIES, description="model fidelities, index 1, 2, ...")
    magnetic_fidelities: tuple[str, ...] = Field(MAGNETIC_FIDELITIES, description="fidelities with moments")
    target_fidelity: str = Field(HF, description="fidelity of early stopping and of sf/tl fine-tuning")
    lf_fidelity: str = Field(LF, description="fidelity of the tl pre-training stage")
    components: str | None = Field(None, description='subset of "EMRC" (mf default "EMRC"; sf/tl always "")')
    warm_start: str = Field(
        "pretrained",
        description='"pretrained" (CHGNet `pretrained_version`), a pretrained CHGNet name (0.2.0, 0.3.0, r2scan), '
        '"scratch" or an MFCHGNet checkpoint path',
    )
    pretrained_version: str = Field("0.3.0", description="CHGNet version of the pretrained warm start")
    epochs: int = Field(20, ge=0, description="maximum epochs (per stage in tl)")
    steps: int | None = Field(
        None,
        ge=1,
        description="optimizer-step budget of the stage that trains on the target fidelity (mf/sf 'main', tl "
        "'fine'): its epoch count becomes ceil(steps / batches per epoch), replacing `epochs`. Equal `steps` is "
        "equal training for methods that see different numbers of frames (at equal epochs SF, which sees only "
        "the HF frames, takes 2.5-4x fewer steps than MF: docs/benchmarks.md, 'Correction')",
    )
    lr: float = Field(3e-4, gt=0, description="Adam learning rate (3e-4 suits fine-tuning pretrained CHGNet)")
    min_lr_factor: float = Field(0.05, gt=0, le=1, description="cosine schedule ends at lr × this")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1)
    grad_clip: float | None = Field(10.0, gt=0, description="max gradient norm (None: no clipping)")
    loss: LossConfig = Field(default_factory=LossConfig)
    hf_oversample: float = Field(
        1.0, ge=1.0, description="target-fidelity frames appear this many times per epoch (fraction random)"
    )
    fidelity_balance: float = Field(
        0.0,
        ge=0,
        le=1,
        description="per-fidelity loss balance: frame weight ∝ N_f^-this (0: per frame; 1: every fidelity the "
        "same total weight, so few HF frames are not drowned by many LF frames)",
    )
    lf_frame_weight: float = Field(
        LF_FRAME_WEIGHT,
        ge=0,
        description="loss weight of each frame of a fidelity other than target_fidelity, relative to a target "
        "frame (every term; on top of fidelity_balance); < 1 keeps a large LF/HF gap out of the shared trunk",
    )
    lf_gradient_projection: bool = Field(
        False,
        description="mode mf: on the shared trunk, when a batch's gradient of the other fidelities' frames points "
        "against the target frames' gradient (negative dot product), remove that opposing component (gradient "
        "projection, PCGrad-style) so LF frames can only help HF; costs a second backward pass per batch",
    )
    head_warmup_epochs: int = Field(
        0,
        ge=0,
        description="mode mf: epochs of a first stage 'heads' that trains only the fidelity parameters (readouts "
        "R, E, M; AtomRef refitted) with the shared trunk frozen, before the joint stage (linear probe, then "
        "fine-tune): each fidelity's head absorbs its own offset before LF gradients reach the trunk; 0 = off",
    )
    fidelity_lr_factor: float = Field(
        1.0,
        gt=0,
        description="learning rate of the fidelity parameters E and M = lr × this (mode mf); > 1 lets the "
        "zero-initialised fidelity switches of a warm start take up the LF-specific part of the gap before the "
        "much larger shared trunk does",
    )
    hf_finetune_epochs: int = Field(
        0,
        ge=0,
        description="mode mf: epochs of a last stage 'hf-fine' on the target-fidelity frames only (all parameters, "
        "target AtomRef refitted, early stopping on its validation force MAE), after the joint stage; 0 = off",
    )
    trunk_lr_factor: float | None = Field(
        None,
        gt=0,
        description="learning rate of the shared trunk = lr × this; readouts and fidelity parameters (E, M, R) "
        "keep lr (< 1 protects pretrained features). None: 1 from scratch, WARM_TRUNK_LR_FACTOR for a warm start",
    )
    patience: int | None = Field(10, ge=1, description="epochs without improvement before stopping")
    seed: int = Field(0, description="seeds model init (scratch), shuffling and bootstrap")
    device: str = Field("auto", description="auto, cpu or cuda")
    fit_atomref: bool = Field(True, description="least-squares AtomRef per fidelity before training")
    eval_batch_size: int = Field(16, ge=1)
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: leave as is)")
    tl: TLConfig = Field(default_factory=TLConfig)

    def trunk_lr(self) -> float:
        """The trunk learning-rate factor in effect (``trunk_lr_factor`` or its start-dependent default)."""
        if self.trunk_lr_factor is not None:
            return self.trunk_lr_factor
        return 1.0 if self.warm_start == "scratch" else WARM_TRUNK_LR_FACTOR

    @field_validator("components")
    @classmethod
    def _components(cls, v: str | None) -> str | None:
        if v is None:
            return v
        bad = sorted(set(v) - set(COMPONENTS))
        if bad or len(set(v)) != len(v):
            raise ValueError(f"components={v!r}: expected distinct letters from {COMPONENTS!r} (or F = EMRC)")
        return "".join(c for c in COMPONENTS if c in v)

    @field_validator("components", mode="before")
    @classmethod
    def _full(cls, v: Any) -> Any:
        return COMPONENTS if v == "F" else v

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if len(self.fidelities) < 2 or len(set(self.fidelities)) != len(self.fidelities):
            raise ValueError(f"fidelities={list(self.fidelities)}: need at least 2 distinct names")
        for name in ("target_fidelity", "lf_fidelity"):
            if getattr(self, name) not in self.fidelities:
                raise ValueError(f"{name}={getattr(self, name)!r} not in fidelities {list(self.fidelities)}")
        unknown = [f for f in self.magnetic_fidelities if f not in self.fidelities]
        if unknown:
            raise ValueError(f"magnetic_fidelities {unknown} not in fidelities {list(self.fidelities)}")
        if self.mode == "mf" and self.components is None:
            self.components = COMPONENTS
        elif self.mode in ("sf", "tl"):
            if self.components:
                raise ValueError(
                    f"components={self.components!r}: mode {self.mode!r} uses the plain CHGNet "
                    'architecture (components "")'
                )
            self.components = ""
        return self
