"""Cluster submission: any jobflow Flow to FireWorks (``fireworks``) or straight to SLURM (``slurm``)."""

from __future__ import annotations

from flows.submit.config import ClusterConfig, QueueConfig, load_cluster_config

__all__ = ["ClusterConfig", "QueueConfig", "load_cluster_config"]
