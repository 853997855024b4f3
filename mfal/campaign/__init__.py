"""The active-learning campaign: config, state, round steps (used by ``flows.campaign``), status and report."""

from __future__ import annotations

from mfal.campaign.config import CampaignConfig, load_config

__all__ = ["CampaignConfig", "load_config"]
