"""Settings of the science benchmark: :class:`ScienceConfig` (+ :class:`ALConfig`), presets, method names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mfal.errors import ConfigError
from mfal.fidelity import LF, Fidelities
from mfal.train.config import COMPONENTS, TLConfig, TrainConfig


class ALConfig(BaseModel):
    """Pool-based active learning (AL+MF) settings."""

    model_config = ConfigDict(extra="forbid")

    sizes: list[int] = Field(
        description="HF labels after each round, e.g. [25, 50, 100]; the first are random"
    )
    k: int = Field(3, ge=2, description="ensemble members that score the pool")
    start: Literal["scratch", "pretrained"] = Field("pretrained", description="starting point of the members")
    diversity_pool: float = Field(2.0, ge=1.0, description="FPS among the diversity_pool × n most uncertain")


class ScienceConfig(BaseModel):
    """Every knob of ``mfal bench science`` (presets: :func:`preset`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "full"
    fidelities: Fidelities = Field(
        default_factory=Fidelities, description="fidelity names, cheapest first; the last is the target (HF)"
    )
    labeler: Literal["teacher", "replay"] = "teacher"
    data: str | None = Field(None, description="paired LF/HF extxyz file (labeler replay)")
    seed: int = Field(0, description="seed of the pool, the split and (without first_run_seed) the first run")
    first_run_seed: int | None = Field(
        None, ge=0, description="first run seed (runs first_run_seed .. + seeds − 1 on the same pool; None: seed)"
    )
    n_structures: int = Field(560, ge=3, description="teacher: structures generated (pool + val + test)")
    n_test: int = Field(60, ge=1, description="HF test structures (never trained on at any fidelity)")
    n_val: int = Field(24, ge=0, description="validation structures (HF frames drive early stopping)")
    hf_sizes: list[int] = Field(default_factory=lambda: [25, 50, 100, 200, 400])
    methods: list[str] = Field(default_factory=lambda: ["SF", "TL", "MF-F"])
    ablation: list[str] = Field(
        default_factory=lambda: ["MF-E", "MF-M", "MF-R", "MF-C", "MF-EM", "MF-RC", "MF-EMR"],
        description="extra MF component subsets, run at ablation_sizes only",
    )
    ablation_sizes: list[int] = Field(default_factory=lambda: [50])
    starts: list[Literal["scratch", "pretrained"]] = Field(default_factory=lambda: ["scratch", "pretrained"])
    pair: str = Field("chgnet-020-030", description="teacher pair (mfal.label.teacher_pairs.PAIRS)")
    warm_version: str = Field(
        "r2scan",
        description="warm start: a pretrained CHGNet name (0.2.0, 0.3.0, r2scan) or an MFCHGNet checkpoint; "
        "refused when it is the HF teacher's model unless allow_teacher_warm_start",
    )
    allow_teacher_warm_start: bool = Field(
        False, description="allow (with a loud warning) warm start = HF teacher"
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="recipe variants: name -> TrainConfig overrides; method 'MF-F:name' (or 'SF:name', ...) "
        "trains with them",
    )
    seeds: int = Field(3, ge=1)
    epochs: int = Field(30, ge=1, description="max epochs, warm start")
    scratch_epochs: int = Field(60, ge=1, description="max epochs from scratch")
    lr: float = Field(1e-3, gt=0, description="learning rate, warm start")
    scratch_lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(8, ge=1)
    patience: int | None = Field(8, ge=1)
    lf_max: int | None = Field(None, ge=1, description="cap on pool LF frames used (None: all)")
    al: ALConfig | None = None
    threads: int | None = Field(2, ge=1)

    @field_validator("methods", "ablation")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        for m in v:
            method_train_kwargs(m.split(":", 1)[0])  # the base name; its variant is checked with `variants` below
        return v

    @model_validator(mode="after")
    def _variants(self) -> ScienceConfig:
        for m in [*self.methods, *self.ablation]:
            TrainConfig.model_validate(method_train_kwargs(m, self.variants))  # a bad field fails here
        return self


PRESETS = ("quick", "full", "scratch", "paper", "recipe", "converge")

#: the recipe variants compared by ``--preset recipe`` (TrainConfig overrides of today's defaults). The
#: variants measured before ``lf_frame_weight`` became 0.25 pin it to 1 (``_W1``), so they reproduce the rows of
#: docs/benchmarks.md.
_W1 = {"lf_frame_weight": 1.0}
RECIPE_VARIANTS: dict[str, dict[str, Any]] = {
    "old": {"fidelity_balance": 0.0, "trunk_lr_factor": 1.0, **_W1},  # the recipe before 2026-12-01
    "lf100": dict(_W1),  # the recipe before 2026-12-02
    "bal": {"fidelity_balance": 1.0, "trunk_lr_factor": 1.0, **_W1},
    "trunk": {"fidelity_balance": 0.0, "trunk_lr_factor": 0.1, **_W1},
    "bal+trunk": {"fidelity_balance": 1.0, "trunk_lr_factor": 0.1, **_W1},
    "lfs0": {"loss": {"per_fidelity": {LF: {"s": 0.0}}}, **_W1},
    "over4": {"hf_oversample": 4.0, **_W1},
    "heads2": {"head_warmup_epochs": 2, **_W1},
    "fid10": {"fidelity_lr_factor": 10.0, **_W1},
    "ft4": {"hf_finetune_epochs": 4, **_W1},
    "lfw25": {"lf_frame_weight": 0.25},  # = today's default; measured as loss.per_fidelity.lf = 0.25 × weights
    "lfw25+ft4": {"lf_frame_weight": 0.25, "hf_finetune_epochs": 4},
    "e8": {"epochs": 8},
    "e16": {"epochs": 16},  # = the recipe preset since 2026-12-02 (the 8-epoch rows ran it as --variant)
    "o4": {"hf_oversample": 4.0},  # + HF 4x per epoch: 1.46 -> 1.12 x SF at 274 LF / 50 HF, 448 steps
    "pcg": {"lf_gradient_projection": True},  # today's default + trunk-gradient projection
    "pcg+lf100": {"lf_gradient_projection": True, **_W1},
}


def preset(name: str) -> ScienceConfig:
    """A named setting of the benchmark (every knob can still be overridden on the command line).

    * ``quick``: CI, ≤ 5 min on 2 idle cores: HF 50, SF vs MF-F, one seed, warm start, 2 epochs.
    * ``full`` (default): the ≈ 2-h run on one core: warm start from CHGNet r2SCAN; HF 25/50/100 with SF, TL,
      MF-F; E, M, R, C alone at 50 HF; AL 25 → 50 → 100 (K = 3); 6 epochs; 100 LF frames; one seed.
    * ``scratch``: the paper's setting (random init), ≈ 75 CPU-min on one core: HF 50/100 with SF, MF-F, and
      TL and MF-C alone at 50; 20 epochs; 100 LF frames; one seed. Run it next to ``full`` (one core each).
    * ``recipe``: the training-recipe comparison on the ``realistic`` teacher pair (CP2K-like gap): 100
      structures (20 HF test, 6 val), HF 25/50, 100 LF frames (74 in this pool), SF, TL and MF-F with the recipe
      variants of :data:`RECIPE_VARIANTS` (``MF-F:lf100`` = the recipe before LF frame weight 0.25, next to
      ``MF-F`` = today's; add others with ``--methods``), 16 epochs (4 and 8 left SF under-trained — at a fixed
      epoch count SF takes fewer optimizer steps than MF, which also sees the LF frames: docs/benchmarks.md), one
      seed (``--seeds 3`` for claims).
    * ``converge``: the decisive warm-start comparison for a GPU node: every method trained to *its own*
      convergence (≤ 80 epochs, early stopping on 20 HF val structures, patience 10) on a 300-structure
      realistic pool (40 HF test), 240 LF frames, HF 25/50/100, SF, TL, MF-F and MF-F:o4 (HF 4× per
      epoch), 3 seeds. At equal steps MF-F sees each HF frame 5–6× less often than SF (docs/benchmarks.md,
      "More LF structures"); this preset removes that handicap. ≈ 50 core-hours on this CPU (MF-F ≈ 2500
      steps per point).
    * ``paper``: the issue's whole grid (HF 25–400, both starts, 7 ablation subsets, 3 seeds, 30/60 epochs,
      all LF frames): tens of core-hours, for a GPU node or a cluster allocation.
    """
    if name == "quick":
        return ScienceConfig(
            name="quick",
            n_structures=72,
            n_test=12,
            n_val=6,
            hf_sizes=[50],
            methods=["SF", "MF-F"],
            ablation=[],
            ablation_sizes=[],
            starts=["pretrained"],
            seeds=1,
            epochs=2,
            patience=None,
            lf_max=50,
            al=ALConfig(sizes=[25, 50], k=2),
        )
    if name == "full":
        return ScienceConfig(
            name="full",
            hf_sizes=[25, 50, 100],
            ablation=["MF-E", "MF-M", "MF-R", "MF-C"],
            starts=["pretrained"],
            seeds=1,
            epochs=6,
            lf_max=100,
            al=ALConfig(sizes=[25, 50, 100]),
        )
    if name == "scratch":
        return ScienceConfig(
            name="scratch",
            hf_sizes=[50, 100],
            methods=["SF", "MF-F"],
            ablation=["TL", "MF-C"],
            starts=["scratch"],
            seeds=1,
            scratch_epochs=20,
            lf_max=100,
        )
    if name in ("recipe", "converge"):
        recipe = ScienceConfig(
            name="recipe",
            pair="realistic",
            n_structures=100,
            n_test=20,
            n_val=6,
            hf_sizes=[25, 50],
            methods=["SF", "TL", "MF-F:lf100", "MF-F"],
            ablation=[],
            ablation_sizes=[],
            starts=["pretrained"],
            seeds=1,
            epochs=16,
            patience=None,
            lf_max=100,
            variants=RECIPE_VARIANTS,
        )
        if name == "recipe":
            return recipe
        converge = dict(
            name=name, n_structures=300, n_test=40, n_val=20, hf_sizes=[25, 50, 100], lf_max=240,
            methods=["SF", "TL", "MF-F", "MF-F:o4"], seeds=3, epochs=80, patience=10,
        )
        return ScienceConfig.model_validate({**recipe.model_dump(), **converge})  # validated, unlike model_copy
    if name == "paper":
        return ScienceConfig(name="paper", al=ALConfig(sizes=[25, 50, 100, 200]))
    raise ConfigError(f"preset={name!r} not in {list(PRESETS)}")


def method_train_kwargs(method: str, variants: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """TrainConfig fields of a method name: SF, TL, MF-F (= EMRC) or MF-<subset of EMRC>, optionally
    ``:variant`` (a key of ``variants`` or of :data:`RECIPE_VARIANTS`, which every preset knows: its
    TrainConfig overrides are added)."""
    if ":" in method:
        base, name = method.split(":", 1)
        known = {**RECIPE_VARIANTS, **(variants or {})}
        if name not in known:
            raise ConfigError(f"method={method!r}: variant {name!r} not in variants {sorted(known)}")
        return {**method_train_kwargs(base), **(known[name] or {})}
    if method == "SF":
        return {"mode": "sf"}
    if method == "TL":
        return {"mode": "tl"}
    if method.startswith("MF-"):
        comp = method[3:]
        comp = COMPONENTS if comp == "F" else comp
        if comp and not set(comp) - set(COMPONENTS) and len(set(comp)) == len(comp):
            return {"mode": "mf", "components": comp}
    raise ConfigError(f"method={method!r} not in ['SF', 'TL', 'MF-F', 'MF-<letters of EMRC>', e.g. 'MF-RC']")


def train_config(config: ScienceConfig, method: str, start: str, seed: int) -> TrainConfig:
    """The TrainConfig of one run: ``method`` (SF, TL, MF-…) from ``start`` (scratch | pretrained), CPU."""
    from mfal.model.pretrained import PRETRAINED_FILES

    scratch = start == "scratch"
    kw = method_train_kwargs(method, config.variants)
    fids = config.fidelities
    if scratch:
        warm = {"warm_start": "scratch"}
    elif config.warm_version in PRETRAINED_FILES:
        warm = {"warm_start": "pretrained", "pretrained_version": config.warm_version}
    else:
        warm = {"warm_start": config.warm_version}  # a checkpoint file
    base = dict(
        fidelities=fids.names,
        magnetic_fidelities=fids.magnetic,
        target_fidelity=fids.high,
        lf_fidelity=fids.low,
        **warm,
        epochs=config.scratch_epochs if scratch else config.epochs,
        lr=config.scratch_lr if scratch else config.lr,
        batch_size=config.batch_size,
        patience=config.patience,
        seed=seed,
        device="cpu",
        threads=config.threads,
        tl=TLConfig(),
    )
    return TrainConfig(**{**base, **kw})


def check_warm_start(warm: str, hf_teacher_model: str | None, *, allow: bool) -> str | None:
    """ConfigError when the warm start ``warm`` is the HF teacher's model (training from the answer) unless
    ``allow``; then the loud warning text is returned (None when they differ)."""
    if hf_teacher_model is None or warm != hf_teacher_model:
        return None
    msg = (
        f"warm start {warm!r} is the HF teacher's model: SF/TL/MF start from the HF labels' own model, so every "
        "number measures nothing"
    )
    if not allow:
        raise ConfigError(
            f"--warm-start {warm}: {msg}; pick another model or pass --allow-teacher-warm-start"
        )
    return "WARNING: " + msg


def run_seeds(config: ScienceConfig) -> list[int]:
    """The run seeds of ``config`` (they pick the HF subset, the training order and the AL picks)."""
    first = config.seed if config.first_run_seed is None else config.first_run_seed
    return [first + s for s in range(config.seeds)]
