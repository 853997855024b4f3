"""Acquisition: trust windows, cost model, diversity, and cost-aware per-fidelity selection (pure numpy)."""

from __future__ import annotations

from mfal.acquire.cost import CostModel
from mfal.acquire.diversity import farthest_point_order, structure_descriptor
from mfal.acquire.select import Selection, SelectionPolicy, TrustWindow, select, split_by_trust

__all__ = [
    "CostModel",
    "Selection",
    "SelectionPolicy",
    "TrustWindow",
    "farthest_point_order",
    "select",
    "split_by_trust",
    "structure_descriptor",
]
