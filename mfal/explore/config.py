"""Exploration settings and start-structure specs (pydantic, extra="forbid")."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartStructure(_Strict):
    """One start structure: a bundled one or a file, optionally substituted/delithiated/enlarged."""

    builtin: str | None = Field(None, description="bundled structure name: 'lifepo4'")
    path: str | None = Field(
        None, description="structure file (CIF, POSCAR, pymatgen JSON); relative to the config"
    )
    mn_fraction: float = Field(0.0, ge=0, le=1, description="fraction of Fe sites replaced by Mn")
    li_fraction: float = Field(1.0, ge=0, le=1, description="fraction of Li sites kept (delithiation Li_x)")
    supercell: list[int] | None = Field(None, min_length=3, max_length=3, description="supercell scaling")
    name: str | None = Field(None, description="label used in candidate origins")

    @model_validator(mode="after")
    def _one_source(self) -> StartStructure:
        if (self.builtin is None) == (self.path is None):
            raise ValueError("give exactly one of 'builtin' or 'path'")
        if self.builtin is not None and self.builtin not in BUILTINS:
            raise ValueError(f"builtin={self.builtin!r} not in {list(BUILTINS)}")
        return self

    def resolved_path(self, base_dir: Path) -> Path | None:
        """The file path made absolute against ``base_dir`` (the config's folder)."""
        if self.path is None:
            return None
        p = Path(self.path).expanduser()
        return p if p.is_absolute() else (base_dir / p)


BUILTINS = ("lifepo4",)


class RattleConfig(_Strict):
    n: int = Field(2, ge=0, description="rattled copies per base structure")
    stdev: float = Field(0.03, ge=0, description="displacement std per component (Å)")


class StrainConfig(_Strict):
    n: int = Field(1, ge=0, description="strained copies per base structure")
    max_strain: float = Field(0.02, ge=0, le=0.2, description="max strain component (fraction)")
    stdev: float = Field(0.02, ge=0, description="extra rattle of strained copies (Å)")


class SubstitutionConfig(_Strict):
    fractions: list[float] = Field(default_factory=list, description="Mn fractions on Fe sites to generate")
    n: int = Field(1, ge=0, description="random orderings per fraction and base")
    stdev: float = Field(0.02, ge=0, description="rattle of substituted copies (Å)")


class DelithiationConfig(_Strict):
    fractions: list[float] = Field(default_factory=list, description="Li fractions kept (Li_x) to generate")
    n: int = Field(1, ge=0, description="random Li/vacancy orderings per fraction and base")
    stdev: float = Field(0.02, ge=0, description="rattle of delithiated copies (Å)")


class MDConfig(_Strict):
    temperatures: list[float] = Field(default_factory=list, description="Langevin NVT temperatures (K)")
    steps: int = Field(10, ge=1, description="MD steps per run")
    snapshots: int = Field(2, ge=1, description="frames kept per run")
    timestep_fs: float = Field(1.0, gt=0, description="time step (fs)")
    fidelity: str | None = Field(None, description="model head that drives the MD (default: the target fidelity)")


class ExploreConfig(_Strict):
    """What candidates each round generates from every base structure."""

    rattle: RattleConfig = Field(default_factory=RattleConfig)
    strain: StrainConfig = Field(default_factory=StrainConfig)
    substitution: SubstitutionConfig = Field(default_factory=SubstitutionConfig)
    delithiation: DelithiationConfig = Field(default_factory=DelithiationConfig)
    md: MDConfig = Field(default_factory=MDConfig)
    max_candidates: int = Field(64, ge=1, description="cap on candidates per round (seeded subsample)")
