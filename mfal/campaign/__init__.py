"""The active-learning campaign: config, typed round artifacts, pure policy, the round's steps (run by
``mfal.campaign.round.run_round`` or as jobs by ``flows.campaign``), status and report."""

from __future__ import annotations

from mfal.campaign.config import CampaignConfig, load_config

__all__ = ["CampaignConfig", "load_config"]
