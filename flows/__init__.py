"""Orchestration of mfal with jobflow: jobs, Makers, FireWorks/SLURM submission and the ``mfal`` command line.

Imports go one way, ``flows`` -> ``mfal``: the CLI (:mod:`flows.cli`) lives here because it needs both.
"""
