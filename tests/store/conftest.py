"""Store test helpers: small labeled frames built from the real LiFePO4 cell."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mfal.store.docs import FrameDoc


def make_frames(structure, n: int, *, fidelity: str = "hf", seed: int = 0, **fields) -> list[FrameDoc]:
    """``n`` distinct rattled copies of ``structure`` with random but physical-looking labels."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        s = structure.copy()
        s.perturb(0.05, min_distance=0.01)
        nat = len(s)
        stress = rng.normal(0, 1.0, (3, 3))
        frames.append(
            FrameDoc.from_structure(
                s,
                fidelity=fidelity,
                source=fields.get("source", "teacher"),
                calc={"code": "chgnet-teacher", "model": "0.3.0" if fidelity == "hf" else "0.2.0"},
                energy=float(-6.5 * nat + rng.normal()),
                forces=rng.normal(0, 0.5, (nat, 3)),
                stress=(stress + stress.T) / 2,
                magmoms=rng.uniform(0, 4.5, nat) if fidelity == "hf" else None,
                **{k: v for k, v in fields.items() if k != "source"},
            )
        )
    return frames


@pytest.fixture
def frames_factory(lifepo4):
    def factory(n: int = 3, *, structure=None, **kw):
        return make_frames(structure if structure is not None else lifepo4, n, **kw)

    return factory


@pytest.fixture
def unprivileged() -> list[str]:
    """Command prefix that runs a child without root's permission overrides (root ignores chmod).

    ``setpriv --bounding-set`` drops CAP_DAC_OVERRIDE/CAP_FOWNER, so the kernel enforces file permissions for
    the child exactly as for a normal user; as a normal user no prefix is needed.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only for a child process")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable", "--"]


@pytest.fixture
def read_only_tree():
    """``with read_only_tree(root):`` removes write permission from ``root`` and everything below, then restores."""

    def chmod(root: Path, writable: bool) -> None:
        for path in [root, *root.rglob("*")]:
            mode = path.stat().st_mode
            path.chmod(mode | 0o200 if writable else mode & ~0o222)

    @contextlib.contextmanager
    def make(root: Path):
        chmod(root, writable=False)
        try:
            yield root
        finally:
            chmod(root, writable=True)

    return make
