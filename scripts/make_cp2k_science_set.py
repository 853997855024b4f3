#!/usr/bin/env python
"""Make the small real-DFT LF/HF set of the science benchmark (CP2K PBE+U, olivine LiFePO4).

Each frame is a rattled + strained 28-atom LiFePO4 cell labeled twice with CP2K 2023.1:

* LF: restricted (RKS) PBE+U, no moments          (fidelity "lf")
* HF: unrestricted (UKS) PBE+U, AFM initial moments (fidelity "hf"; Mulliken moments per site)

Settings follow the tested recipe (DESIGN.md §4, shared/recipes/cp2k): DZVP-MOLOPT-SR-GTH, GTH-PBE,
400/50 Ry, EPS_DEFAULT 1e-8, OT FULL_ALL/STRICT, Gamma only (CP2K +U is Gamma-only), U_eff(Fe) = 4 eV
with PLUS_U_METHOD LOWDIN. About 95 s (LF) + 135 s (HF) per cell on 2 idle cores.

Frames are appended to an extxyz file as soon as both fidelities of a cell are done (resumable: cells
already in the file are skipped), readable by ``mfal bench science --labeler replay --data FILE``.
The file uses mfal's extxyz layout (``mfal.store.extxyz``; read it with ``read_extxyz``): energy eV (total),
forces eV/Å, stress GPa in CHGNet's sign (= −1 × CP2K's pressure-like stress in GPa), HF Mulliken moments μB,
cost core-seconds (CP2K wall × threads), plus ``cell_id`` pairing the LF and HF frame of a cell.

    bash scripts/setup-cp2k.sh
    python scripts/make_cp2k_science_set.py --n 8 --out mfal/data/science/cp2k_lifepo4.extxyz
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HA_TO_EV = 27.211386245988
HA_BOHR_TO_EV_ANG = HA_TO_EV / 0.529177210903
GTH_Q = {"Li": 3, "O": 6, "P": 5, "Mn": 15, "Fe": 16}


def setup_env() -> None:
    """Point pymatgen at the CP2K basis/potential DB built by scripts/setup-cp2k.sh."""
    data = Path(os.environ.get("MFAL_CP2K_DATA", Path.home() / ".cache/mfal/cp2k"))
    os.environ.setdefault("PMG_CP2K_DATA_DIR", str(data / "pmg_cp2k_data"))
    os.environ.setdefault("PMG_DEFAULT_CP2K_FUNCTIONAL", "PBE")
    os.environ.pop("CP2K_DATA_DIR", None)
    if not (Path(os.environ["PMG_CP2K_DATA_DIR"]) / "Fe").is_file():
        sys.exit(
            f"make_cp2k_science_set: error: no CP2K data DB at {os.environ['PMG_CP2K_DATA_DIR']}; "
            "run `bash scripts/setup-cp2k.sh` first"
        )


def make_cells(n: int, seed: int):
    """n rattled (σ 0.02–0.06 Å) and strained (±2 %) copies of LiFePO4, AFM initial moments on Fe."""
    from mfal.explore.structures import lifepo4_structure

    rng = np.random.default_rng(seed)
    base = lifepo4_structure()
    cells = []
    for i in range(n):
        s = base.copy()
        eps = rng.uniform(-0.02, 0.02, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        s.apply_strain(eps)  # symmetric small strain
        sigma = float(rng.uniform(0.02, 0.06))
        cart = s.cart_coords + rng.normal(0.0, sigma, size=(len(s), 3))
        s = s.__class__(s.lattice, s.species, cart, coords_are_cartesian=True)
        n_fe = 0
        mag = []
        for site in s:
            if site.specie.symbol in ("Fe", "Mn"):
                mag.append(4.0 if n_fe % 2 == 0 else -4.0)
                n_fe += 1
            else:
                mag.append(0.0)
        s.add_site_property("magmom", mag)
        cells.append((f"cp2k-lfp-{seed}-{i:02d}", s, sigma))
    return cells


def write_input(structure, fidelity: str, run_dir: Path, u_ev: float = 4.0) -> None:
    """Write cp2k.inp for LF (RKS) or HF (UKS, MAGNETIZATION per KIND, +U on every Fe kind)."""
    from pymatgen.io.cp2k.sets import StaticSet
    from pymatgen.io.cp2k.utils import get_unique_site_indices

    s = structure.copy()
    if fidelity == "lf":
        s.remove_site_property("magmom")
        spin, mult = False, 1
    else:
        spin, mult = True, int(round(abs(sum(s.site_properties["magmom"])))) + 1
    subsys = {
        alias: {"DFT_PLUS_U": {"L": 2, "U_MINUS_J": f"[eV] {u_ev}"}}
        for alias in get_unique_site_indices(s.copy())
        if alias.split("_")[0] in ("Fe", "Mn")
    }
    override = {
        "FORCE_EVAL": {"DFT": {"PLUS_U_METHOD": "LOWDIN", "PRINT": {"MULLIKEN": {}}}, "SUBSYS": subsys}
    }
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
        preconditioner="FULL_ALL",
        algorithm="STRICT",
        rotation=False,
        energy_gap=0.05,
        print_pdos=False,
        print_dos=False,
        print_mo_cubes=False,
        print_v_hartree=False,
        print_e_density=False,
    )
    ci.update(override)
    run_dir.mkdir(parents=True, exist_ok=True)
    ci.write_file("cp2k.inp", run_dir)


def parse_output(path: Path, n_atoms: int) -> dict:
    """Energy (eV), forces (eV/Å), pressure-like stress (GPa, CP2K sign), Mulliken moments (μB)."""
    lines = path.read_text().splitlines()
    if not any("PROGRAM ENDED AT" in ln for ln in lines[-50:]):
        raise RuntimeError(f"{path}: CP2K did not finish")
    if any("SCF run NOT converged" in ln for ln in lines):
        raise RuntimeError(f"{path}: SCF not converged")
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
        "stress": -stress,  # CP2K pressure-like (VASP sign, GPa) -> CHGNet convention (tensile > 0)
        "magmoms": np.array(mag),
        "wall": wall[-1] if wall else None,
    }


def run_cp2k(run_dir: Path, threads: int, timeout: float) -> float:
    """Run cp2k.psmp in run_dir; returns wall seconds."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.time()
    with open(run_dir / "cp2k.out", "w") as out:
        try:
            subprocess.run(
                ["cp2k.psmp", "-i", "cp2k.inp"],
                cwd=run_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:  # CP2K is killed; the unfinished cp2k.out fails parse_output
            print(f"{run_dir}: CP2K exceeded --timeout {timeout:.0f} s", flush=True)
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="number of cells (each labeled at LF and HF)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("mfal/data/science/cp2k_lifepo4.extxyz"))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mfal-cp2k-science"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per CP2K run")
    args = ap.parse_args()
    setup_env()

    from ase.io import read, write

    from mfal.store.docs import FrameDoc
    from mfal.store.extxyz import frame_to_atoms

    done = set()
    if args.out.exists():
        done = {a.info.get("cell_id") for a in read(args.out, index=":")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for cell_id, s, sigma in make_cells(args.n, args.seed):
        if cell_id in done:
            print(f"{cell_id}: already in {args.out}, skipped", flush=True)
            continue
        results = {}
        for fid in ("lf", "hf"):
            run_dir = args.workdir / cell_id / fid
            out = run_dir / "cp2k.out"
            reused = False
            if out.exists():  # a finished run from an interrupted invocation is reused, never recomputed
                try:
                    results[fid] = parse_output(out, len(s))
                    results[fid]["cost"] = float(results[fid]["wall"] or 0.0) * args.threads
                    reused = True
                except (RuntimeError, IndexError, ValueError):
                    pass
            if not reused:
                write_input(s, fid, run_dir)
                wall = run_cp2k(run_dir, args.threads, args.timeout)
                try:
                    results[fid] = parse_output(out, len(s))
                except (RuntimeError, IndexError, ValueError) as err:
                    print(f"{cell_id} {fid}: failed ({err}); cell skipped", flush=True)
                    break
                results[fid]["cost"] = wall * args.threads
            print(
                f"{cell_id} {fid}: E={results[fid]['energy']:.4f} eV cost={results[fid]['cost']:.0f} core-s",
                flush=True,
            )
        if len(results) != 2:
            continue
        plain = s.copy()
        plain.remove_site_property("magmom")
        for fid, r in results.items():
            calc = {
                "code": "cp2k",
                "version": "2023.1",
                "functional": "PBE",
                "ispin": 2 if fid == "hf" else 1,
                "hubbard_u": {"Fe": 4.0},
                "plus_u_method": "LOWDIN",
                "basis": "DZVP-MOLOPT-SR-GTH",
                "cutoff_ry": 400,
                "kpoints": "Gamma",
                "magmom_init": "AFM +-4 on Fe" if fid == "hf" else None,
                "moments": "Mulliken" if fid == "hf" else None,
            }
            doc = FrameDoc.from_structure(
                plain,
                fidelity=fid,
                source="cp2k",
                calc=calc,
                energy=r["energy"],
                forces=r["forces"],
                stress=r["stress"],
                magmoms=r["magmoms"] if fid == "hf" else None,
                cost=r["cost"],
                task_dir=str(args.workdir / cell_id / fid),
            )
            atoms = frame_to_atoms(doc)
            atoms.info["cell_id"] = cell_id
            atoms.info["rattle_sigma"] = sigma
            write(args.out, atoms, format="extxyz", append=True)
        print(f"{cell_id}: appended LF+HF to {args.out}", flush=True)


if __name__ == "__main__":
    main()
