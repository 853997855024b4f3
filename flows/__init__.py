"""Orchestration of mfal with jobflow: jobs, Makers, FireWorks/SLURM submission (imports go flows -> mfal)."""
