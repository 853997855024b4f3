"""Real CP2K on a small Mn cell: 4-atom MnO AFM-II converges at LF (restricted, zero moments) and at HF (UKS,
high-spin Mn²⁺ ≈ 4.5 μB with opposite signs), through the labeler's SCF ladder.

Nothing is mocked: pymatgen writes the input, custodian's Cp2kJob runs cp2k.psmp, the ladder decides retries,
we parse cp2k.out and the frames pass the quality gates. Minimal basis (SZV-MOLOPT-SR-GTH) and cutoff keep it
small: what this checks is convergence and the spin state, not production numbers (the FeO test in
test_cp2k.py runs the production basis/cutoff). LF and HF run side by side, one thread each; the runtimes and
SCF steps are printed into the test output (``-s`` not needed).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from mfal.label.cp2k import Cp2kLabeler
from mfal.label.cp2k_io import parse_cp2k_output

pytestmark = [pytest.mark.cp2k, pytest.mark.timeout(2400)]

#: small settings: minimal basis, 200/30 Ry, EPS_DEFAULT 1e-6 (half the grid work of 1e-8 on this 4-atom cell:
#: 5.2 vs 9.7 CPU s for 6 SCF steps + forces); the first rung (OT DIIS) is capped at 40 steps per outer loop
#: (LF converged there in 64 steps; HF stalls and the ladder's OT CG rung takes over from the atomic guess)
MNO_FAST = {
    "basis": "SZV-MOLOPT-SR-GTH", "cutoff_ry": 200.0, "rel_cutoff_ry": 30.0, "eps_default": 1e-6,
    "scf_step_limit": 40, "omp_threads": 1,
}  # fmt: skip


def mno_afm(a0: float = 4.445) -> Structure:
    """Rock-salt MnO (a = 4.445 Å), 4-atom rhombohedral AFM-II cell: Mn moments alternate along [111]."""
    lat = Lattice([[a0, a0 / 2, a0 / 2], [a0 / 2, a0, a0 / 2], [a0 / 2, a0 / 2, a0]])
    return Structure(lat, ["Mn", "Mn", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25] * 3, [0.75] * 3])


@pytest.fixture(scope="module")
def mno_frames(cp2k_ready, tmp_path_factory):
    """LF and HF FrameDocs of MnO from real CP2K runs, with each side's wall time (s)."""
    workdir = tmp_path_factory.mktemp("cp2k_mno")
    lab = Cp2kLabeler(**MNO_FAST)

    def one(fid: str):
        t0 = time.perf_counter()
        [doc] = lab.label([mno_afm()], fid, workdir=workdir, campaign="ci", round=0)
        return doc, time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=2) as pool:
        (lf, lf_s), (hf, hf_s) = pool.map(one, ("lf", "hf"))
    return {"lf": lf, "hf": hf, "wall_s": {"lf": lf_s, "hf": hf_s}}


def _report(capsys, frames, fid: str) -> None:
    doc = frames[fid]
    scf = doc.calc.get("scf_attempts", doc.calc["attempts"])  # HF: "attempts" are the spin rungs
    rungs = ", ".join(f"{a['rung']}:{a['status']}:{a['scf_steps']}" for a in scf)
    with capsys.disabled():
        print(
            f"\n[cp2k MnO {fid}] wall {frames['wall_s'][fid]:.0f} s, CP2K {doc.calc['cp2k_time_s'] or 0:.0f} s, "
            f"SCF steps {doc.calc['scf_steps']}, rungs {rungs}, status {doc.status}"
        )


@pytest.mark.slow
def test_mno_lf_restricted_converges(mno_frames, capsys):
    """LF: restricted (RKS), converged, zero moments on every atom, +U on Mn."""
    _report(capsys, mno_frames, "lf")
    lf = mno_frames["lf"]
    assert lf.status == "ok", lf.status_reason
    assert lf.calc["ispin"] == 1 and lf.magmoms is None and lf.calc["scf_treatment"] == "restricted"
    out = parse_cp2k_output(lf.task_dir)
    assert out.uks is False and out.scf_converged and out.multiplicity == 1
    assert out.magmoms_mulliken == [0.0] * 4 and out.u_eff_ev == [3.9]
    assert np.all(np.isfinite(lf.forces)) and np.abs(np.sum(lf.forces, axis=0)).max() < 0.05


@pytest.mark.slow
def test_mno_hf_is_high_spin_afm(mno_frames, capsys):
    """HF: UKS AFM (multiplicity 1), Mn²⁺ high spin (|m| 4.0–4.9 μB, opposite signs), O ≈ 0, below LF.

    Measured with these settings: Mulliken ±4.41, Hirshfeld ±4.26 μB (the minimal basis gives a little less than
    the ≈ 4.6 μB of larger bases); E_HF − E_LF ≈ −2.2 eV/atom.
    """
    _report(capsys, mno_frames, "hf")
    lf, hf = mno_frames["lf"], mno_frames["hf"]
    assert hf.status == "ok", hf.status_reason
    assert hf.calc["ispin"] == 2 and hf.calc["magmom_init"][:2] == [5.0, -5.0]
    assert [a["ordering"] for a in hf.calc["attempts"]] == ["afm"]  # the first spin rung was accepted
    out = parse_cp2k_output(hf.task_dir)
    assert out.uks is True and out.scf_converged and out.multiplicity == 1
    for moments in (np.asarray(hf.magmoms), np.asarray(out.magmoms_mulliken)):  # Hirshfeld, Mulliken
        assert 4.0 < moments[0] < 4.9 and -4.9 < moments[1] < -4.0
        assert abs(moments[0] + moments[1]) < 0.1  # AFM: equal and opposite (a wrong state had 3.39/−3.95)
        assert np.abs(moments[2:]).max() < 0.1
    assert hf.energy < lf.energy  # high-spin d5 far below the restricted solution
