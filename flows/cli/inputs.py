"""``mfal inputs``: write exactly the DFT input files a labeler would run, and run nothing."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.app import app


@app.command("inputs")
def inputs(
    structures: list[Path] = typer.Argument(..., help="structure files (POSCAR, CIF, extxyz: every frame)"),
    labeler: str = typer.Option(..., "--labeler", help="vasp or cp2k"),
    fidelity: str = typer.Option(..., "--fidelity", help="lf (non-magnetic) or hf (spin-polarized)"),
    out: Path = typer.Option(Path("inputs"), "--out", help="one folder per structure is written here"),
    ordering: str | None = typer.Option(
        None, "--ordering", help="HF initial moments: fm, afm, afm-a|b|c or a sign string such as +-+-"
    ),
    magmom_source: str | None = typer.Option(
        None,
        "--magmom-source",
        help="HF |m|: chemistry (oxidation-state high spin), table, oxidation, or model:CHECKPOINT (the "
        "checkpoint's predicted moments, signs from --ordering)",
    ),
) -> None:
    """One folder per structure (VASP: INCAR, KPOINTS, POSCAR, POTCAR.spec; CP2K: cp2k.inp) and one summary line
    each (ISPIN, +U, MAGMOM or multiplicity), so the settings can be checked before core-hours are spent."""
    from mfal.label.inputs import read_structures, write_inputs

    cells = [s for path in structures for s in read_structures(path)]  # every file parsed before anything is written
    for line in write_inputs(
        labeler, fidelity, cells, out, ordering=ordering, magmom_source=magmom_source
    ):
        typer.echo(line)
