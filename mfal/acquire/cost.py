"""Per-fidelity label cost model learned from recorded costs (core-seconds)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field


class CostModel(BaseModel):
    """Cost of one label ≈ ``rate × n_atoms`` core-seconds.

    ``rate`` (core-seconds per atom) starts at the labeler's configured prior and is updated from recorded
    costs as a weighted mean: the prior counts as ``prior_weight_atoms`` atoms of evidence.
    """

    model_config = ConfigDict(extra="forbid")

    prior_rate: float = Field(gt=0, description="prior cost per atom (core-seconds/atom)")
    prior_weight_atoms: float = Field(28.0, ge=0, description="weight of the prior, in atoms of evidence")
    observed_cost: float = Field(0.0, ge=0, description="sum of recorded costs (core-seconds)")
    observed_atoms: float = Field(0.0, ge=0, description="sum of atoms of the recorded labels")

    @classmethod
    def from_prior(
        cls, cost_per_label: float, n_atoms: int, prior_weight_atoms: float | None = None
    ) -> CostModel:
        """Prior from a configured cost of one label of ``n_atoms`` atoms (core-seconds)."""
        return cls(
            prior_rate=cost_per_label / max(n_atoms, 1),
            prior_weight_atoms=float(n_atoms if prior_weight_atoms is None else prior_weight_atoms),
        )

    @property
    def rate(self) -> float:
        """Current estimate of core-seconds per atom."""
        w = self.prior_weight_atoms
        return (
            (self.prior_rate * w + self.observed_cost) / (w + self.observed_atoms)
            if w + self.observed_atoms
            else self.prior_rate
        )

    def predict(self, n_atoms: int) -> float:
        """Predicted cost of one label of ``n_atoms`` atoms (core-seconds)."""
        return self.rate * n_atoms

    def updated(self, records: Iterable[tuple[float, int]]) -> CostModel:
        """A new model with ``(cost core-seconds, n_atoms)`` records added (self is not changed)."""
        cost, atoms = self.observed_cost, self.observed_atoms
        for c, n in records:
            if c > 0 and n > 0:
                cost += float(c)
                atoms += float(n)
        return self.model_copy(update={"observed_cost": cost, "observed_atoms": atoms})
