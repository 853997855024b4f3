"""Tiny campaign configs for the campaign tests (8-atom cells, k=3, 1 epoch, 2 rounds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def tiny_cell_cif(path: Path) -> Path:
    """An 8-atom rocksalt-ordered Li2Fe2O4 cell (cubic 4.2 Å) written as CIF."""
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s.replace(0, "Li")
    s.replace(1, "Li")
    s.to(filename=str(path))
    return path


def tiny_config(tmp: Path, **overrides) -> dict:
    """A campaign config dict that runs in about a minute on 2 cores (teacher labels)."""
    tiny_cell_cif(tmp / "cell.cif")
    cfg = {
        "name": "tiny",
        "seed": 3,
        "device": "cpu",
        "start_structures": [{"path": "cell.cif"}],
        "explore": {
            "rattle": {"n": 4, "stdev": 0.05},
            "strain": {"n": 1, "max_strain": 0.02},
            "max_candidates": 6,
        },
        "ensemble": {"k": 3, "bootstrap": True},
        "train": {
            "epochs": 1,
            "batch_size": 4,
            "lr": 0.0003,
            "patience": None,
            "device": "cpu",
            "threads": 1,
        },
        "labelers": {"lf": {"kind": "teacher"}, "hf": {"kind": "teacher"}},
        "budget": {"per_round": {"lf": 1.0, "hf": 0.1}, "total": {"lf": 5.0, "hf": 1.0}},
        "trust": {
            "lf": {"lo": 0.0, "hi": 5.0, "max_per_round": 2},
            "hf": {"lo": 0.0, "hi": 5.0, "max_per_round": 2},
            "diversity_pool": 1.0,
        },
        "initial": {"n_lf": 2, "n_hf": 2},
        "stop": {"max_rounds": 2},
        # orchestration tests: the default warm start (CHGNet 0.3.0) is also the HF teacher here
        "allow_teacher_warm_start": True,
        "ratio_failed": 0.5,
        "promotion_margin": 0.05,
        "validation_fraction": 0.3,
    }
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def write_config(tmp: Path, cfg: dict, name: str = "campaign.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def make_config():
    """``make_config(tmp, **overrides) -> dict`` (see :func:`tiny_config`)."""
    return tiny_config


@pytest.fixture
def save_config():
    """``save_config(tmp, cfg, name) -> Path``."""
    return write_config


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the real CLI entry point (``flows.cli.main``) in-process; returns (exit code, stdout, stderr)."""
    import sys

    from flows.cli import main

    old = sys.argv
    sys.argv = ["mfal", *argv]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def mfal_cli(capsys):
    """``mfal_cli(argv) -> (exit code, stdout, stderr)`` of the real CLI run in-process."""
    return lambda argv: run_cli(argv, capsys)
