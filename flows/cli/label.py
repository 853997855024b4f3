"""mfal CLI commands (module label): ``mfal label``."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.app import app


def _parse_options(options: list[str]) -> dict:
    """``KEY=VALUE`` pairs; values are read as YAML scalars/lists (``fail_rate=0.5``, ``fail_ids=[a,b]``)."""
    import yaml

    from mfal.errors import ConfigError

    out = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--option {item!r}: value is not valid YAML ({err})") from err
    return out


@app.command("label")
def label_cmd(
    structures: list[Path] = typer.Argument(
        ..., help="structure files: POSCAR/CONTCAR/*.vasp, *.cif, *.xyz/*.extxyz (every frame), *.json"
    ),
    labeler: str = typer.Option(..., "--labeler", help="teacher, vasp, cp2k or replay"),
    fidelity: str = typer.Option(..., "--fidelity", help="lf or hf"),
    store: Path | None = typer.Option(
        None, "--store", help="store directory (or store YAML); created if missing"
    ),
    campaign_dir: Path | None = typer.Option(None, "--dir", help="campaign directory (uses its store)"),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="where DFT jobs run (default ./mfal-<labeler>)"
    ),
    option: list[str] = typer.Option(
        [], "--option", "-o", help="labeler option KEY=VALUE (repeatable), e.g. -o dataset=pool.extxyz"
    ),
    campaign: str | None = typer.Option(None, "--campaign", help="campaign name stored with the frames"),
    round_: int | None = typer.Option(None, "--round", help="round number stored with the frames"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar while labeling"),
) -> None:
    """Label structures at one fidelity and store the frames (ok, failed or quarantined, with their cost).

    Each chunk is stored as soon as it is labeled; a rerun labels only the structures not yet stored.
    """
    from collections import Counter

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from mfal.errors import ConfigError, LabelError
    from mfal.fidelity import check_fidelity
    from mfal.label import LABELERS, get_labeler
    from mfal.label.inputs import read_structures
    from mfal.store import open_store
    from mfal.store.config import store_from_options
    from mfal.store.docs import structure_fingerprint

    # every argument is checked before anything runs or is written
    if labeler not in LABELERS:
        raise ConfigError(f"--labeler {labeler!r} not in {sorted(LABELERS)}")
    check_fidelity(fidelity)
    cfg = store_from_options(store, campaign_dir)
    items = [(path, s) for path in structures for s in read_structures(path)]
    lab = get_labeler(labeler, **_parse_options(option))

    console = Console() if Console().is_terminal else Console(width=200)
    err_console = Console(stderr=True)
    batch = 16 if labeler in ("teacher", "replay") else 1
    keys = [structure_fingerprint(s) for _, s in items]
    # the store is opened (created, checked) before the first label, and each chunk is stored as it finishes:
    # an unreachable store costs no label, a crash loses at most one chunk, a rerun reuses what was stored
    with open_store(cfg) as fs:
        location = fs.location
        stored = {
            getattr(f, "structure_id", "") or structure_fingerprint(f.get_structure()): f
            for f in fs.query_frames(fidelity=fidelity, source=labeler)
        }
        done = {i: stored[k] for i, k in enumerate(keys) if k in stored}
        todo = [i for i in range(len(items)) if i not in done]
        new = 0
        with Progress(
            console=err_console, disable=not (progress and err_console.is_terminal), transient=True
        ) as bar:
            task = bar.add_task(f"{labeler} {fidelity}", total=len(items), completed=len(done))
            for start in range(0, len(todo), batch):
                chunk = todo[start : start + batch]
                out = lab.label([items[i][1] for i in chunk], fidelity, workdir=workdir, campaign=campaign, round=round_)
                if len(out) != len(chunk):
                    raise LabelError(f"labeler {labeler!r} returned {len(out)} frames for {len(chunk)} structures")
                new += fs.upsert_frames(out)
                done.update(zip(chunk, out, strict=True))
                bar.advance(task, len(chunk))
    frames = [done[i] for i in range(len(items))]
    reused = len(items) - len(todo)

    table = Table(title=f"{labeler} labels at {fidelity} -> {location}")
    for col in ("file", "formula", "nsites", "status", "E/atom (eV)", "cost (core-s)", "frame_id"):
        table.add_column(
            col, justify="right" if col in ("nsites", "E/atom (eV)", "cost (core-s)") else "left"
        )
    for (path, _), f in zip(items, frames, strict=True):
        reason = f.status_reason or ""
        status = f.status if f.status == "ok" else f"{f.status}: {reason[:70]}"
        e = f.energy_per_atom
        table.add_row(
            str(path),
            f.formula,
            str(f.nsites),
            status,
            "" if e is None else f"{e:.4f}",
            f"{f.cost:.0f}",
            f.frame_id,
        )
    console.print(table)
    counts = Counter(f.status for f in frames)
    total_cost = sum(f.cost for f in frames)
    surrogate = " (surrogate labels)" if labeler == "teacher" else ""
    console.print(
        f"{len(frames)} frames{surrogate}: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
        f"{counts.get('quarantined', 0)} quarantined; {new} new in the store"
        f"{f' ({reused} already stored, not labeled again)' if reused else ''}; "
        f"cost {total_cost:.0f} core-s ({total_cost / 3600:.2f} core-h)"
    )
