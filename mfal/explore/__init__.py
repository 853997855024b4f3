"""Candidate generation: start structures and per-round exploration (rattle, strain, Mn/Fe, Li_x, MD)."""

from __future__ import annotations

from mfal.explore.config import ExploreConfig, StartStructure
from mfal.explore.explore import explore, load_start_structures
from mfal.explore.structures import lifepo4_structure

__all__ = ["ExploreConfig", "StartStructure", "explore", "lifepo4_structure", "load_start_structures"]
