"""Multi-fidelity CHGNet model, ensemble, checkpoints, ASE calculator."""
