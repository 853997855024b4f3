"""CP2K pieces of ``make_cp2k_science_set.py``: LMFP cells, named SCF settings, input writer, runner, parser.

Kept beside the script (not in ``mfal.label``) so the dataset can be regenerated with exactly these settings.
Units: energies eV, forces eV/Å, stress GPa, moments μB, times s.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HA_TO_EV = 27.211386245988
HA_BOHR_TO_EV_ANG = HA_TO_EV / 0.529177210903
GTH_Q = {"Li": 3, "O": 6, "P": 5, "Mn": 15, "Fe": 16}
HUBBARD_U = {"Fe": 4.0, "Mn": 3.9}  # eV, U_eff on d (Fe: recipe value; Mn: Materials Project's)
TM = ("Fe", "Mn")

# ---------------------------------------------------------------- cells

# kind -> (number of Fe replaced by Mn, number of Li removed) in the 28-atom Li4Fe4P4O16 cell
KINDS: dict[str, tuple[int, int]] = {
    "lfp": (0, 0),  # LiFePO4
    "mn25": (1, 0),  # LiMn0.25Fe0.75PO4
    "mn50": (2, 0),  # LiMn0.5Fe0.5PO4
    "li75": (0, 1),  # Li0.75FePO4
    "li50": (0, 2),  # Li0.5FePO4
    "mn25li75": (1, 1),  # Li0.75Mn0.25Fe0.75PO4 (the cell whose LF did not converge before)
}
KIND_CODE = {k: i for i, k in enumerate(KINDS)}


def _rattle_strain(s, rng: np.random.Generator):
    """Symmetric strain (±2 %) then Gaussian rattle σ ∈ [0.02, 0.06] Å; same draws as the first set."""
    eps = rng.uniform(-0.02, 0.02, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    s.apply_strain(eps)
    sigma = float(rng.uniform(0.02, 0.06))
    cart = s.cart_coords + rng.normal(0.0, sigma, size=(len(s), 3))
    return s.__class__(s.lattice, s.species, cart, coords_are_cartesian=True), sigma


def _afm_moments(s, fe3: set[int]) -> list[float]:
    """High-spin |m| (Fe2+ 4, Fe3+ 5, Mn2+ 5 μB), sign alternating over TM sites in site order (AFM)."""
    mag, n_tm = [], 0
    for i, site in enumerate(s):
        el = site.specie.symbol
        if el in TM:
            m = 5.0 if (el == "Mn" or i in fe3) else 4.0
            mag.append(m if n_tm % 2 == 0 else -m)
            n_tm += 1
        else:
            mag.append(0.0)
    return mag


def make_cell(kind: str, i: int, seed: int = 0):
    """(cell_id, structure with 'magmom', rattle σ Å, oxidised Fe count) of one non-LFP cell."""
    from mfal.explore.structures import lifepo4_structure

    n_mn, n_vac = KINDS[kind]
    rng = np.random.default_rng([seed, KIND_CODE[kind], i])
    s = lifepo4_structure()
    tm_idx = [j for j, site in enumerate(s) if site.specie.symbol == "Fe"]
    li_idx = [j for j, site in enumerate(s) if site.specie.symbol == "Li"]
    for j in rng.choice(tm_idx, size=n_mn, replace=False):
        s.replace(int(j), "Mn")
    vac = sorted(int(j) for j in rng.choice(li_idx, size=n_vac, replace=False))
    # each vacancy oxidises the nearest Fe2+ (Fe2+/3+ lies below Mn2+/3+), marked before removal
    fe3: set[int] = set()
    for v in vac:
        fe = [j for j, site in enumerate(s) if site.specie.symbol == "Fe" and j not in fe3]
        fe3.add(min(fe, key=lambda j: s.get_distance(v, j)))
    s, sigma = _rattle_strain(s, rng)
    s.add_site_property("magmom", _afm_moments(s, fe3))
    s.remove_sites(vac)  # site indices above shift; moments travel with the sites
    return f"cp2k-{kind}-{seed}-{i:02d}", s, sigma


def make_lfp_cells(n: int, seed: int = 0):
    """The first set's rattled/strained LiFePO4 cells (same RNG stream: cells 00–05 are the committed ones)."""
    from mfal.explore.structures import lifepo4_structure

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s, sigma = _rattle_strain(lifepo4_structure(), rng)
        s.add_site_property("magmom", _afm_moments(s, set()))
        out.append((f"cp2k-lfp-{seed}-{i:02d}", s, sigma))
    return out


def n_electrons(s) -> int:
    """Valence electrons of the GTH pseudopotentials (neutral cell)."""
    return sum(GTH_Q[site.specie.symbol] for site in s)


def multiplicity(s) -> int:
    """2S+1 from |Σ initial m|, nudged to the parity of the electron count."""
    n_unp = int(round(abs(sum(s.site_properties["magmom"]))))
    if (n_unp - n_electrons(s)) % 2:
        n_unp += 1
    return n_unp + 1


# ---------------------------------------------------------------- SCF settings

# the wavefunction is saved every 10 SCF steps; SCF_GUESS RESTART picks it up when an attempt that ran out of
# wall time is rerun in the same run dir (CP2K falls back to the atomic guess when there is no file)
RESTART_PRINT = "&PRINT\n&RESTART\nBACKUP_COPIES 0\n&EACH\nQS_SCF 10\n&END EACH\n&END RESTART\n&END PRINT\n"


@dataclass(frozen=True)
class Scf:
    """One named SCF recipe. ``ot``: orbital transformation (needs a gap); else diagonalisation + smearing."""

    name: str
    ot: bool
    max_steps: int  # hard cap on SCF steps of one run (OT: inner × outer)
    temp_k: float = 0.0  # Fermi–Dirac electronic temperature (diagonalisation)
    mixing: str = "BROYDEN_MIXING"
    alpha: float = 0.2
    nbuffer: int = 8
    beta: float = 0.5  # Kerker damping wave vector of Broyden/Pulay mixing (bohr^-1; CP2K's default 0.5)
    added_mos: int = 40
    u_ramp_ev: float = 0.0  # > 0: DFT+U ramped up in steps of this size (EPS_U_RAMPING 1e-3)
    minimizer: str = "DIIS"  # OT minimizer; CG (with a 3-point line search) never raises the energy
    roks: bool = False  # LF of an odd-electron cell as restricted open-shell (ROKS, doublet) with OT
    energy_gap: float = 0.05  # OT preconditioner gap estimate (Ha); 0.002 sped up small-gap restricted cells
    eps_scf: float = 1e-5  # OT: max orbital gradient accepted (the loosened rungs record theirs in mfal_calc)
    inner: int = 40  # OT inner steps per outer loop (each outer loop rebuilds the preconditioner)
    extra: dict = field(default_factory=dict)

    def block(self) -> str:
        """The &SCF section text (both kinds restart from the run dir's wavefunction if one was saved)."""
        if self.ot:
            inner, eps = self.inner, f"{self.eps_scf:g}"
            pre = "FULL_SINGLE_INVERSE" if self.roks else "FULL_ALL"  # FULL_ALL + ROTATION aborts
            return (
                f"&SCF\nMAX_SCF {inner}\nEPS_SCF {eps}\nSCF_GUESS RESTART\n"
                f"&OT\nMINIMIZER {self.minimizer}\nPRECONDITIONER {pre}\nENERGY_GAP {self.energy_gap:g}\nALGORITHM STRICT\n"
                f"LINESEARCH {'3PNT' if self.minimizer == 'CG' else '2PNT'}\nROTATION {self.roks}\n&END OT\n"
                f"&OUTER_SCF\nMAX_SCF {max(1, self.max_steps // inner)}\nEPS_SCF {eps}\n&END OUTER_SCF\n{RESTART_PRINT}&END SCF"
            )
        return (
            f"&SCF\nMAX_SCF {self.max_steps}\nEPS_SCF {self.eps_scf:g}\nSCF_GUESS RESTART\nADDED_MOS {self.added_mos}\n"
            "&DIAGONALIZATION\nALGORITHM STANDARD\n&END DIAGONALIZATION\n"
            f"&SMEAR ON\nMETHOD FERMI_DIRAC\nELECTRONIC_TEMPERATURE [K] {self.temp_k:g}\n&END SMEAR\n"
            f"&MIXING\nMETHOD {self.mixing}\nALPHA {self.alpha}\nBETA {self.beta}\nNBUFFER {self.nbuffer}\n&END MIXING\n{RESTART_PRINT}&END SCF"
        )

    def summary(self) -> dict:
        """JSON-able record of the settings (goes into each frame's calc)."""
        d = {"scf": self.name, "ot": self.ot, "scf_step_limit": self.max_steps, "eps_scf": self.eps_scf}
        if self.ot:
            d["ot_minimizer"] = self.minimizer
            d["ot_energy_gap"] = self.energy_gap
        if not self.ot:
            d.update(smear_fd_k=self.temp_k, mixing=self.mixing, alpha=self.alpha, beta=self.beta)
            d["added_mos"] = self.added_mos
        if self.u_ramp_ev:
            d["u_ramping_ev"] = self.u_ramp_ev
        if self.roks:
            d["roks"] = True
        return d


SCF = {
    s.name: s
    for s in (
        Scf("ot", ot=True, max_steps=400),  # the recipe's OT (the first set's settings)
        Scf("fd300-broyden0.2", ot=False, max_steps=150, temp_k=300, alpha=0.2),  # the earlier failure
        Scf("fd1000-broyden0.1", ot=False, max_steps=200, temp_k=1000, alpha=0.1),
        Scf("fd2000-broyden0.05", ot=False, max_steps=250, temp_k=2000, alpha=0.05),
        Scf("fd1000-pulay0.05", ot=False, max_steps=250, temp_k=1000, mixing="PULAY_MIXING", alpha=0.05),
        Scf("ot-cg", ot=True, max_steps=400, minimizer="CG"),
        Scf("roks-ot-fsi", ot=True, max_steps=400, roks=True),
        # ENERGY_GAP 0.002: the MnO RKS LF converged in 117 CG steps (0.05: gradient still 0.03 after 40)
        Scf("ot-cg-gap0.002", ot=True, max_steps=600, minimizer="CG", energy_gap=0.002),
        # ROKS: FULL_SINGLE_INVERSE ignores ENERGY_GAP (a 0.002 rerun repeated the 0.05 trajectory to 10 digits)
        Scf("roks-ot-cg", ot=True, max_steps=600, minimizer="CG", roks=True),
        Scf("fd1000-broyden0.1-uramp", ot=False, max_steps=300, temp_k=1000, alpha=0.1, u_ramp_ev=1.0),
        Scf(
            "fd2000-broyden0.2-kerker-uramp",
            ot=False,
            max_steps=300,
            temp_k=2000,
            alpha=0.2,
            beta=1.5,
            u_ramp_ev=1.0,
        ),
    )
}

# ---------------------------------------------------------------- input


def write_input(structure, fidelity: str, scf: Scf, run_dir: Path, walltime_s: int, data_dir: Path) -> str:
    """Write run_dir/cp2k.inp (LF: RKS, no moments; HF: UKS, MAGNETIZATION per KIND); returns its text."""
    from pymatgen.io.cp2k.sets import StaticSet
    from pymatgen.io.cp2k.utils import get_unique_site_indices

    s = structure.copy()
    if fidelity == "lf":
        s.remove_site_property("magmom")
        spin, mult = False, 1
    else:
        spin, mult = True, multiplicity(s)
    plus_u: dict = {"L": 2}
    subsys = {}
    for alias in get_unique_site_indices(s.copy()):
        el = alias.split("_")[0]
        if el in TM:
            u = {"U_MINUS_J": f"[eV] {HUBBARD_U[el]}"}
            if scf.u_ramp_ev:
                u.update(U_RAMPING=f"[eV] {scf.u_ramp_ev}", EPS_U_RAMPING=1e-3)
            subsys[alias] = {"DFT_PLUS_U": {**plus_u, **u}}
    ci = StaticSet(
        structure=s,
        kpoints=None,
        spin_polarized=spin,
        multiplicity=mult,
        basis_and_potential={
            el: {"basis": "DZVP-MOLOPT-SR-GTH", "potential": f"GTH-PBE-q{GTH_Q[el]}"} for el in s.symbol_set
        },
        cutoff=400,
        rel_cutoff=50,
        ngrids=4,
        eps_default=1e-8,
        eps_pgf_orb=None,
        eps_scf=1e-5,
        ot=True,
        max_scf=40,
        outer_max_scf=10,
        print_pdos=False,
        print_dos=False,
        print_mo_cubes=False,
        print_v_hartree=False,
        print_e_density=False,
    )
    hh = f"{walltime_s // 3600:02d}:{walltime_s % 3600 // 60:02d}:{walltime_s % 60:02d}"
    ci.update(
        {
            "FORCE_EVAL": {"DFT": {"PLUS_U_METHOD": "LOWDIN", "PRINT": {"MULLIKEN": {}}}, "SUBSYS": subsys},
            "GLOBAL": {"WALLTIME": hh},
        }
    )
    text = ci.get_str()
    if scf.roks and fidelity == "lf":
        n_unp = n_electrons(s) % 2
        text = re.sub(r"UKS False\s*\n(\s*)MULTIPLICITY 1", rf"ROKS True\n\1MULTIPLICITY {n_unp + 1}", text)
    text, n = re.subn(r"&SCF\b.*?&END SCF", lambda _m: scf.block(), text, count=1, flags=re.S)
    if n != 1:
        raise RuntimeError(f"{run_dir}: no &SCF section in the generated input")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "cp2k.inp").write_text(text)
    return text


# ---------------------------------------------------------------- run + parse


def run_cp2k(run_dir: Path, timeout_s: float) -> tuple[float, float]:
    """Run ``cp2k.psmp`` (1 thread, nice 19 inherited) in run_dir; returns (wall s, child CPU s)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with open(run_dir / "cp2k.out", "w") as out:
        try:
            subprocess.run(
                ["cp2k.psmp", "-i", "cp2k.inp"],
                cwd=run_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            out.write(f"\nmfal: killed after {timeout_s:.0f} s\n")
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return time.time() - t0, cpu


def scf_steps(lines: list[str]) -> int | None:
    """SCF steps of the (last) SCF: OT outer loop total, or the diagonalisation count; None if unknown."""
    for ln in reversed(lines):
        m = re.search(r"outer SCF loop converged in\s+\d+\s+iterations or\s+(\d+)\s+steps", ln)
        if m:
            return int(m.group(1))
        m = re.search(r"SCF run converged in\s+(\d+)\s+steps", ln)
        if m:
            return int(m.group(1))
    steps = [
        int(m.group(1)) for ln in lines if (m := re.match(r"\s+(\d+)\s+(?:OT|Broy\.|Pulay|DIIS|P_Mix)", ln))
    ]
    return len(steps) or None


def parse_output(path: Path, n_atoms: int) -> dict:
    """Energy (eV), forces (eV/Å), stress (GPa, CHGNet sign), Mulliken moments (μB); RuntimeError on failure."""
    lines = path.read_text(errors="replace").splitlines()
    tail = "\n".join(lines[-80:])
    if "killed after" in tail:
        raise RuntimeError("wall-time limit (killed)")
    if any("SCF run NOT converged" in ln or "FAILED to converge" in ln for ln in lines):
        raise RuntimeError(f"SCF not converged ({scf_steps(lines)} steps)")
    if "PROGRAM ENDED AT" not in tail:
        box = [k for k, ln in enumerate(lines) if "[ABORT]" in ln]
        msg = ""
        if box:  # the text inside CP2K's ABORT box
            msg = " ".join(ln.strip(" *|/\\O_") for ln in lines[box[-1] : box[-1] + 5])
            msg = ": " + re.sub(r"\s+", " ", msg.replace("[ABORT]", "")).strip()[:160]
        raise RuntimeError("CP2K did not finish" + msg)
    energy = [float(ln.split()[-1]) for ln in lines if "ENERGY| Total FORCE_EVAL ( QS ) energy" in ln][-1]
    i = [k for k, ln in enumerate(lines) if ln.strip().startswith("ATOMIC FORCES in [a.u.]")][-1]
    forces = np.array([[float(x) for x in lines[i + 3 + a].split()[3:6]] for a in range(n_atoms)])
    j = [k for k, ln in enumerate(lines) if "STRESS| Analytical stress tensor [GPa]" in ln][-1]
    stress = np.array([[float(x) for x in lines[j + 2 + r].split()[2:5]] for r in range(3)])
    k = [k for k, ln in enumerate(lines) if "Mulliken Population Analysis" in ln][-1]
    mag = []
    for ln in lines[k + 3 : k + 3 + n_atoms]:
        vals = ln.split()[3:]
        mag.append(float(vals[3]) if len(vals) == 4 else 0.0)
    wall = [float(ln.split()[-1]) for ln in lines if re.match(r"\s*CP2K\s+1\s+1\.0", ln)]
    return {
        "energy": energy * HA_TO_EV,
        "forces": forces * HA_BOHR_TO_EV_ANG,
        "stress": -stress,  # CP2K pressure-like (GPa) -> CHGNet convention (tensile > 0)
        "magmoms": np.array(mag),
        "scf_steps": scf_steps(lines),
        "cp2k_wall": wall[-1] if wall else None,
    }
