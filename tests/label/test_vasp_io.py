"""VASP output parsing and quality gates on real VASP outputs (tests/test_data/vasp, see its README)."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from pymatgen.io.vasp import Oszicar, Outcar

from mfal.errors import DataError
from mfal.label.vasp_io import oszicar_convergence, outcar_step_moments, parse_vasp_dir


@pytest.fixture(scope="module")
def vasp(test_data):
    return test_data / "vasp"


@pytest.mark.parametrize(
    ("folder", "fidelity", "n_frames", "n_ok"),
    [
        ("atomate2_MgMn2O4_static_afm", "hf", 1, 1),
        ("atomate2_Si_static_nonspin", "lf", 1, 1),
        ("custodian_FeO_afm_ggaU_relax", "hf", 28, 3),  # AFM start collapses at ionic step 4
        ("pymatgen_LiFePO4_ggaU_afm_relax", "hf", 11, 0),  # no OUTCAR: spin state unverifiable
        ("pymatgen_V2O5_ggaU_unconverged", "hf", 5, 0),  # every SCF at NELM=100
    ],
)
def test_every_reference_calculation(vasp, folder, fidelity, n_frames, n_ok):
    frames = parse_vasp_dir(vasp / folder)
    assert len(frames) == n_frames
    assert {f.fidelity for f in frames} == {fidelity}
    assert sum(f.status == "ok" for f in frames) == n_ok
    assert all(f.status_reason for f in frames if f.status != "ok")
    assert len({f.frame_id for f in frames}) == n_frames  # every ionic step is its own frame
    for f in frames:
        assert f.source == "import" and f.calc["code"] == "vasp"
        assert (f.magmoms is not None) == (
            fidelity == "hf" and "LiFePO4" not in folder and "V2O5" not in folder
        )


def _outcar_last_block(path):
    """Forces (eV/Å), stress (kB) and energy(sigma->0) (eV) of the last ionic step, read with plain regexes."""
    with gzip.open(path, "rt") as fh:
        text = fh.read()
    block = text.rsplit("POSITION                                       TOTAL-FORCE", 1)[1].splitlines()[2:]
    forces = []
    for line in block:
        if line.startswith(" ---"):
            break
        forces.append([float(x) for x in line.split()[3:6]])
    stress_kb = [float(x) for x in re.findall(r"^\s+in kB\s+(.*)$", text, re.M)[-1].split()]
    energy = float(re.findall(r"energy\(sigma->0\) =\s+(\S+)", text)[-1])
    return np.array(forces), stress_kb, energy


def test_hf_static_matches_the_outcar(vasp):
    folder = vasp / "atomate2_MgMn2O4_static_afm"
    (frame,) = parse_vasp_dir(folder)
    forces, stress_kb, energy = _outcar_last_block(folder / "outputs" / "OUTCAR.gz")
    assert frame.energy == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(frame.forces, forces, atol=1e-6)
    # OUTCAR "in kB": XX YY ZZ XY YZ ZX; stored stress is GPa with CHGNet's sign (× −0.1)
    s = np.asarray(frame.stress)
    np.testing.assert_allclose(np.diag(s), -0.1 * np.array(stress_kb[:3]), atol=1e-5)
    assert s[0, 1] == pytest.approx(-0.1 * stress_kb[3], abs=1e-5)
    tot = [site["tot"] for site in Outcar(str(folder / "outputs" / "OUTCAR.gz")).magnetization]
    np.testing.assert_allclose(frame.magmoms, tot)
    mn = [i for i, el in enumerate(frame.get_structure().species) if el.symbol == "Mn"]
    assert sorted(np.round(np.asarray(frame.magmoms)[mn], 3)) == [-3.823, -3.823, 3.823, 3.823]
    assert frame.calc["ispin"] == 2 and frame.calc["hubbard_u"] == {"Mn": 3.9}
    assert frame.calc["kpoints"] == "Gamma 4x4x4" and frame.calc["magmom_init"][2] == -3.823


def test_lf_static(vasp):
    (frame,) = parse_vasp_dir(vasp / "atomate2_Si_static_nonspin")
    _, _, energy = _outcar_last_block(vasp / "atomate2_Si_static_nonspin" / "outputs" / "OUTCAR.gz")
    assert frame.energy == pytest.approx(energy, abs=1e-6)
    assert frame.magmoms is None and frame.calc["ispin"] == 1 and frame.calc["magmom_init"] is None


def test_per_step_moments_follow_the_oszicar(vasp):
    """The per-step OUTCAR tables are aligned with the ionic steps: site-moment sums track OSZICAR's mag=."""
    folder = vasp / "custodian_FeO_afm_ggaU_relax"
    frames = parse_vasp_dir(folder)
    mags = [step["mag"] for step in Oszicar(str(folder / "OSZICAR")).ionic_steps]
    assert len(mags) == len(frames) == len(outcar_step_moments(folder / "OUTCAR.gz"))
    for f, mag in zip(frames, mags, strict=True):
        assert np.sign(sum(f.magmoms)) == np.sign(mag)
        assert abs(sum(f.magmoms) - mag) < 0.4
    last = [site["tot"] for site in Outcar(str(folder / "OUTCAR.gz")).magnetization]
    np.testing.assert_allclose(frames[-1].magmoms, last)


def test_collapsed_afm_start_is_quarantined(vasp):
    """FeO started AFM (MAGMOM 5 -5): steps 1-3 stay AFM; from step 4 one Fe has lost its moment (FM, mag=+4)."""
    frames = parse_vasp_dir(vasp / "custodian_FeO_afm_ggaU_relax")
    assert [f.status for f in frames[:4]] == ["ok", "ok", "ok", "quarantined"]
    assert "lost moment" in frames[3].status_reason and "Fe1" in frames[3].status_reason
    # the final step: Fe 3.0 / 1.4 μB, still flagged as a lost moment
    assert frames[-1].status == "quarantined" and "low-spin" in frames[-1].status_reason
    # energies and forces are still parsed (kept for diagnosis, never trained on)
    assert frames[-1].energy == pytest.approx(-28.21851457)


def test_flipped_spin_and_total_moment_against_intended(vasp):
    frames = parse_vasp_dir(
        vasp / "atomate2_MgMn2O4_static_afm", intended_magmoms=[0, 0] + [5.0] * 4 + [0] * 8
    )
    assert frames[0].status == "quarantined" and "spin flipped" in frames[0].status_reason
    fm = [0, 0, -5.0, -5.0, 5.0, 5.0] + [0] * 8
    assert parse_vasp_dir(vasp / "atomate2_MgMn2O4_static_afm", intended_magmoms=fm)[0].status == "ok"


def test_unconverged_electronic_steps(vasp):
    frames = parse_vasp_dir(vasp / "pymatgen_V2O5_ggaU_unconverged")
    assert [f.status for f in frames] == ["quarantined"] * 5
    assert frames[0].status_reason.startswith("electronic SCF hit NELM=100 in ionic step 1")
    assert "ionic step 5" in frames[4].status_reason


def test_nonconverging_oszicar(vasp):
    reasons = oszicar_convergence(vasp / "custodian_Si_nonconv_oszicar")
    assert len(reasons) == 4 and all("NELM=10" in r for r in reasons)
    assert oszicar_convergence(vasp / "custodian_FeO_afm_ggaU_relax") == [None] * 28


def test_truncated_vasprun_is_one_line_data_error(vasp, tmp_path):
    src = vasp / "pymatgen_V2O5_ggaU_unconverged" / "vasprun.unconverged.xml.gz"
    (tmp_path / "vasprun.xml").write_bytes(gzip.open(src).read()[:3790313])
    with pytest.raises(DataError, match="vasprun.xml") as err:
        parse_vasp_dir(tmp_path)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_bad_inputs(vasp, tmp_path):
    with pytest.raises(DataError, match="no vasprun"):
        parse_vasp_dir(tmp_path)
    with pytest.raises(DataError, match="no such"):
        parse_vasp_dir(tmp_path / "missing")
    with pytest.raises(DataError, match="OUTCAR missing"):
        parse_vasp_dir(vasp / "pymatgen_LiFePO4_ggaU_afm_relax", require_outcar=True)
    with pytest.raises(DataError, match="intended_magmoms has 3"):
        parse_vasp_dir(vasp / "atomate2_MgMn2O4_static_afm", intended_magmoms=[1, 2, 3])


def test_forced_lf_on_a_spin_polarized_run_is_quarantined(vasp):
    (frame,) = parse_vasp_dir(vasp / "atomate2_MgMn2O4_static_afm", fidelity="lf")
    assert frame.status == "quarantined" and "ISPIN=2" in frame.status_reason and frame.magmoms is None


def test_walltime_stop_quarantines_the_last_step(vasp, tmp_path):
    import shutil

    shutil.copytree(vasp / "atomate2_Si_static_nonspin" / "outputs", tmp_path / "run")
    (tmp_path / "run" / "STOPCAR").write_text("LSTOP = .TRUE.\n")
    (frame,) = parse_vasp_dir(tmp_path / "run")
    assert frame.status == "quarantined" and "walltime" in frame.status_reason


def test_quarantined_frames_never_reach_training(vasp, tmp_path):
    """Stored in a real embedded store, the collapsed FeO steps and the unconverged V2O5 steps stay out."""
    from mfal.store import open_store

    frames = parse_vasp_dir(vasp / "custodian_FeO_afm_ggaU_relax") + parse_vasp_dir(
        vasp / "pymatgen_V2O5_ggaU_unconverged"
    )
    with open_store(tmp_path / "store") as fs:
        assert fs.upsert_frames(frames) == 33
        training = fs.training_frames(fidelity="hf")
        assert fs.count(status="quarantined") == 30
    assert {f.frame_id for f in training} == {f.frame_id for f in frames[:3]}


def test_parse_task_dir_strips_the_host(vasp):
    from mfal.label.vasp_io import parse_task_dir

    folder = vasp / "atomate2_MgMn2O4_static_afm" / "outputs"
    (frame,) = parse_task_dir(f"node042:{folder}", source="vasp", round=4)
    assert frame.source == "vasp" and frame.round == 4 and frame.task_dir == str(folder)


def test_detect_fidelity_rules(lifepo4):
    from pymatgen.core import Lattice, Structure

    from mfal.label.quality import QualityConfig
    from mfal.label.vasp_io import detect_fidelity

    q = QualityConfig()
    si = Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    assert detect_fidelity(1, [None], lifepo4, q) == "lf"
    assert detect_fidelity(2, [None], si, q) == "hf"  # moments unknown: trust ISPIN
    assert detect_fidelity(2, [np.zeros(2)], si, q) == "lf"  # spin-polarized but nothing magnetic
    assert detect_fidelity(2, [np.zeros(len(lifepo4))], lifepo4, q) == "hf"  # Fe with no moment: a collapse
