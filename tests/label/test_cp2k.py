"""Real CP2K (Debian cp2k 2023.1) runs through the labeler on the 4-atom FeO AFM-II cell, LF and HF.

Nothing is mocked: pymatgen writes the input, custodian's Cp2kJob runs cp2k.psmp with the production settings
(PBE+U Löwdin, U(Fe) = 4 eV, 400/50 Ry, Gamma), we parse cp2k.out and the frames go through the quality gates
into a real embedded store (maggma MontyStore on sqlite). Idle 2 cores, 2 threads each, one after the other: LF ≈ 1 min, HF ≈ 2 min (recipe timings); here they run
side by side with one thread each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from mfal.label.cp2k import Cp2kLabeler

# CP2K's own WALLTIME (1 h) bounds each run; the 20-min default pytest timeout is too short on a busy machine
pytestmark = [pytest.mark.cp2k, pytest.mark.timeout(3600)]
REPO = Path(__file__).resolve().parents[2]


def feo_afm(a0: float = 4.33) -> Structure:
    """Rock-salt FeO, 4-atom rhombohedral AFM-II cell (Fe moments alternate along [111])."""
    lat = Lattice([[a0, a0 / 2, a0 / 2], [a0 / 2, a0, a0 / 2], [a0 / 2, a0 / 2, a0]])
    return Structure(lat, ["Fe", "Fe", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25] * 3, [0.75] * 3])


@pytest.fixture(scope="module")
def feo_frames(cp2k_ready, tmp_path_factory):
    """LF and HF FrameDocs of FeO from real CP2K runs (the expensive part: shared by the tests below).

    LF and HF run side by side, one OpenMP thread each (2 cores: wall ≈ the HF run alone).
    """
    from concurrent.futures import ThreadPoolExecutor

    workdir = tmp_path_factory.mktemp("cp2k_feo")
    lab = Cp2kLabeler(omp_threads=1)
    structure = feo_afm()
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [
            pool.submit(lab.label, [structure], fid, workdir=workdir, campaign="ci", round=0)
            for fid in ("lf", "hf")
        ]
        [lf], [hf] = (job.result() for job in jobs)
    return lf, hf


@pytest.mark.slow
def test_feo_lf_hf_physics(feo_frames):
    """LF: RKS, no moments; HF: UKS, Fe high-spin with opposite signs, lower energy; both pass the gates."""
    lf, hf = feo_frames
    for doc in (lf, hf):
        assert doc.status == "ok", doc.status_reason
        assert doc.source == "cp2k" and doc.calc["code"] == "cp2k" and doc.calc["kpoints"] == "Gamma"
        assert doc.calc["cutoff_ry"] == 400 and doc.calc["plus_u_method"] == "LOWDIN"
        assert doc.calc["hubbard_u"]["Fe"] == 4.0 and doc.calc["functional"] == "PBE"
        forces = np.asarray(doc.forces)
        assert forces.shape == (4, 3) and np.all(np.isfinite(forces))
        assert np.abs(forces.sum(axis=0)).max() < 0.05  # momentum conservation (eV/Å)
        assert np.linalg.norm(forces, axis=1).max() < 5.0  # 250 Ry gave up to 10 eV/Å; 400 Ry must not
        assert np.all(np.isfinite(doc.stress)) and np.allclose(
            doc.stress, np.transpose(doc.stress), atol=1e-3
        )
        assert doc.cost > 0 and doc.cost == pytest.approx(doc.calc["cp2k_time_s"] * 1)  # 1 thread
        assert Path(doc.task_dir, "cp2k.out").is_file()
    assert lf.calc["ispin"] == 1 and lf.magmoms is None and lf.calc["magmom_init"] is None
    assert hf.calc["ispin"] == 2 and hf.calc["magmom_init"] == [4.0, -4.0, 0.0, 0.0]
    m = np.asarray(hf.magmoms)
    assert 3.0 < m[0] < 4.2 and -4.2 < m[1] < -3.0  # Hirshfeld; recipe: ±3.40 (Mulliken ±3.59)
    assert np.abs(m[2:]).max() < 0.3
    assert hf.energy < lf.energy  # high-spin Fe2+ below the non-magnetic solution
    assert (hf.energy - lf.energy) / 4 < -0.5  # recipe (Mulliken +U): −1.38 eV/atom


@pytest.mark.slow
def test_feo_frames_lf_output_is_restricted_with_zero_moments(feo_frames):
    from mfal.label.cp2k_io import parse_cp2k_output

    lf, hf = feo_frames
    out_lf, out_hf = parse_cp2k_output(lf.task_dir), parse_cp2k_output(hf.task_dir)
    assert out_lf.uks is False and out_lf.magmoms_mulliken == [0.0] * 4 and out_lf.u_eff_ev == [4.0]
    assert out_hf.uks is True and out_hf.multiplicity == 1 and out_hf.u_eff_ev == [4.0, 4.0]
    assert out_lf.scf_converged and out_hf.scf_converged
    # CHGNet sign = −1 × CP2K's pressure-like stress
    assert np.allclose(hf.stress, -np.asarray(out_hf.stress))


@pytest.mark.slow
def test_feo_frames_go_into_the_store(feo_frames, tmp_path):
    from mfal.store import open_store

    lf, hf = feo_frames
    with open_store(tmp_path / "store") as store:
        assert store.upsert_frames([lf, hf]) == 2
        assert store.upsert_frames([lf, hf]) == 0  # idempotent
        got = {f.fidelity: f for f in store.training_frames(campaign="ci")}
    assert set(got) == {"lf", "hf"}
    assert got["hf"].magmoms == pytest.approx(hf.magmoms) and got["lf"].energy == pytest.approx(lf.energy)


def test_cp2k_crash_is_failed_with_the_error(cp2k_ready, tmp_path):
    """A real CP2K abort (invalid OT preconditioner in the input) → failed, reason = CP2K's message; no retry."""
    lab = Cp2kLabeler(ot_preconditioner="NOT_A_PRECONDITIONER")
    [doc] = lab.label([feo_afm()], "lf", workdir=tmp_path)
    assert doc.status == "failed" and len(doc.calc["attempts"]) == 1
    assert "CP2K aborted" in doc.status_reason and "NOT_A_PRECONDITIONER" in doc.status_reason
    assert doc.energy is None
