"""``python -m flows.cli`` = the ``mfal`` console script (SLURM steps call it this way: no PATH lookup)."""

from __future__ import annotations

from flows.cli import main

if __name__ == "__main__":
    main()
