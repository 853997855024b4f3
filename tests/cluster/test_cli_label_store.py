"""`mfal label` opens (and checks) the store before the first label and stores each chunk as it finishes (issue 15
#7): an unreachable store costs no label, and after kill -9 a rerun labels only what was not stored yet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAKE = """
import os, sys
from pathlib import Path
import mfal.label
from mfal.store.docs import FrameDoc, make_frame_id

log = Path(os.environ["FAKE_LOG"])

class Fake:  # a labeler that logs each label it computes; KILL_AT=n: kill -9 before the n-th label (0-based)
    def label(self, structures, fidelity, *, workdir=None, campaign=None, round=None):
        out = []
        for s in structures:
            done = len(log.read_text().splitlines()) if log.exists() else 0
            if done == int(os.environ.get("KILL_AT", "-1")):
                os.kill(os.getpid(), 9)
            with log.open("a") as fh:
                fh.write(f"{s.lattice.a:.3f}\\n")
            out.append(FrameDoc(frame_id=make_frame_id(s, fidelity, {"code": "fake"}), structure=s,
                                fidelity=fidelity, source="vasp", status="failed", status_reason="fake label",
                                cost=10.0))
        return out

mfal.label.get_labeler = lambda name, **kw: Fake()
sys.argv[0] = "mfal"
from flows.cli import main
main()
"""


@pytest.fixture
def cells(tmp_path: Path) -> list[Path]:
    from pymatgen.core import Lattice, Structure

    out = []
    for i, a in enumerate((4.20, 4.25, 4.30)):
        s = Structure(Lattice.cubic(a), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        out.append(tmp_path / f"cell{i}.cif")
        s.to(filename=str(out[-1]))
    return out


def _label(cells: list[Path], store: Path, log: Path, **env) -> subprocess.CompletedProcess:
    args = ["label", "--labeler", "vasp", "--fidelity", "hf", *map(str, cells), "--store", str(store), "--no-progress"]
    return subprocess.run([sys.executable, "-c", FAKE, *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, FAKE_LOG=str(log), **env))


def _stored(store: Path) -> int:
    from mfal.store import open_store

    with open_store(store, create=False) as fs:
        return fs.count()


def test_kill_9_mid_label_loses_no_stored_label_and_rerun_reuses_them(tmp_path, cells):
    store, log = tmp_path / "store", tmp_path / "labels.log"
    p = _label(cells, store, log, KILL_AT="2")
    assert p.returncode == -9, p.stderr
    assert len(log.read_text().splitlines()) == 2 and _stored(store) == 2  # both finished labels were stored
    p = _label(cells, store, log)
    assert p.returncode == 0, p.stderr
    assert len(log.read_text().splitlines()) == 3  # only the third structure was labeled again
    assert "1 new in the store (2 already stored, not labeled again)" in " ".join(p.stdout.split())
    assert _stored(store) == 3


def test_unusable_store_fails_before_any_label(tmp_path, cells):
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    log = tmp_path / "labels.log"
    p = _label(cells, blocker / "store", log)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("mfal: error: ") and "afile" in line
    assert not log.exists()  # no label was computed (and so none was lost)
