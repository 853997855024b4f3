"""mfal: multi-fidelity CHGNet force fields trained by an active-learning campaign.

``mfal`` computes (model, train, uncertainty, acquire, label, explore, store, cli);
the sibling package ``flows`` orchestrates it with jobflow.
"""

from __future__ import annotations

__version__ = "0.1.0"
