"""mfal CLI commands (module submit): ``mfal submit``, ``mfal cluster-status`` and the internal SLURM steps."""

from __future__ import annotations

import importlib
import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import typer

from flows.cli.app import app
from mfal.errors import ConfigError


def _build_flow(config: Path, run_dir: Path, flow_factory: str | None, device: str | None) -> Any:
    """The jobflow Flow to submit: from ``MODULE:FUNCTION(config, run_dir)`` or the campaign of ``config``."""
    if not config.is_file():
        raise ConfigError(f"config {config} does not exist")
    if flow_factory is None:
        try:
            from flows.campaign import campaign_flow
        except ImportError as err:
            raise ConfigError(
                "the campaign flow builder (flows.campaign.campaign_flow) is not available; "
                "pass --flow MODULE:FUNCTION"
            ) from err
        factory = campaign_flow
    else:
        mod_name, _, func_name = flow_factory.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), func_name)
        except (ImportError, AttributeError, ValueError) as err:
            raise ConfigError(f"--flow {flow_factory!r}: cannot import (expected MODULE:FUNCTION)") from err
    kwargs = {"device": device} if device and "device" in inspect.signature(factory).parameters else {}
    return factory(config, run_dir, **kwargs)


@app.command("submit")
def submit(
    config: Path = typer.Argument(..., help="campaign config YAML (or the config of --flow)"),
    fireworks: bool = typer.Option(False, "--fireworks", help="add the flow to a FireWorks LaunchPad"),
    slurm: bool = typer.Option(False, "--slurm", help="run the flow on SLURM with a driver job (no database)"),
    run_dir: Path = typer.Option(Path("runs/campaign"), "--dir", help="run directory (SLURM state, outputs)"),
    cluster: Path | None = typer.Option(None, "--cluster", help="cluster YAML (queues, GPUs); see configs/cluster/"),
    launchpad: Path | None = typer.Option(
        None, "--launchpad", help="LaunchPad YAML (default: $LAUNCHPAD_LOC or configs/fireworks/my_launchpad.yaml)"
    ),
    device: str | None = typer.Option(None, "--device", help="training device auto|cpu|cuda (overrides cluster)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="SLURM: print the batch scripts, submit nothing"),
    resume: bool = typer.Option(False, "--resume", help="SLURM: continue DIR, rerunning only failed jobs"),
    flow: str | None = typer.Option(
        None, "--flow", help="MODULE:FUNCTION(config, run_dir) returning any jobflow Flow, e.g. flows.submit.smoke:smoke_flow"
    ),
) -> None:
    """Submit a campaign (or any flow) to FireWorks or SLURM."""
    from flows.submit.config import load_cluster_config

    if fireworks == slurm:
        raise ConfigError("choose exactly one of --fireworks or --slurm")
    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device={device!r} not in ['auto', 'cpu', 'cuda']")
    cl = load_cluster_config(cluster)
    if device is not None:
        cl = cl.model_copy(update={"device": device})
    run_dir = run_dir.resolve()

    if fireworks:
        from flows.submit.fireworks import load_launchpad, submit_flow

        lp = load_launchpad(launchpad)  # checked before the flow is built: nothing half-done
        the_flow = _build_flow(config, run_dir, flow, cl.device)
        ids = submit_flow(the_flow, lp, cl)
        typer.echo(f"added {len(ids)} fireworks (ids {ids[0]}..{ids[-1]}); run them with qlaunch/rlaunch rapidfire")
        return

    from flows.submit import slurm as sl

    if resume:
        sl.find_sbatch()
        names = sl.reset_failed(run_dir)
        run = sl.Run.open(run_dir)
        tid = sl.submit_tick(run, after=[])
        typer.echo(f"resumed {run_dir}: rerunning {len(names)} job(s) {names}; driver job {tid}")
        return
    if dry_run:  # the flow is built in a scratch directory: a dry run leaves no trace
        import tempfile

        with tempfile.TemporaryDirectory(prefix="mfal-dry-run-") as tmp:
            the_flow = _build_flow(config, Path(tmp) / "run", flow, cl.device)
            scripts = sl.dry_run_scripts(the_flow, run_dir, cl)
        for title, script in scripts:
            typer.echo(f"# ---- {title}\n{script}")
        typer.echo("# dry run: nothing submitted")
        return
    the_flow = _build_flow(config, run_dir, flow, cl.device)
    sl.preflight(cl)
    created = not (run_dir / sl.SUBDIR).exists()
    run = sl.prepare_run(the_flow, run_dir, cl)
    try:
        tid = sl.submit_tick(run, after=[])
    except Exception:
        if created:
            shutil.rmtree(run.root, ignore_errors=True)
        raise
    typer.echo(f"submitted driver job {tid} for {run_dir}; follow it with: mfal cluster-status --dir {run_dir}")


@app.command("cluster-status")
def cluster_status(
    run_dir: Path = typer.Option(Path("runs/campaign"), "--dir", help="SLURM run directory"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """State of a SLURM run: one row per job, failures with their reason."""
    from flows.submit.slurm import run_status

    st = run_status(run_dir)
    if as_json:
        typer.echo(json.dumps(st))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{run_dir}: {st['status']} {st['counts']}")
    for col in ("job", "queue", "state", "slurm id", "reason"):
        table.add_column(col)
    for row in st["jobs"]:
        table.add_row(*(str(row[k] or "") for k in ("name", "queue", "state", "slurm_id", "reason")))
    Console().print(table)


@app.command("slurm-tick", hidden=True)
def slurm_tick(run_dir: Path = typer.Option(..., "--dir")) -> None:
    """Internal: one driver step of a SLURM run (collect, submit ready steps, resubmit itself)."""
    from flows.submit.slurm import tick

    typer.echo(json.dumps(tick(run_dir)))


@app.command("slurm-step", hidden=True)
def slurm_step(run_dir: Path = typer.Option(..., "--dir"), key: str = typer.Option(..., "--key")) -> None:
    """Internal: run one job of a SLURM run."""
    from flows.submit.slurm import run_step

    run_step(run_dir, key)


@app.command("jobflow-config")
def jobflow_config(
    template: Path = typer.Argument(Path("configs/jobflow/jobflow.yaml"), help="template with ${MFAL_MONGO_URI}"),
    out: Path = typer.Option(Path("~/.mfal/jobflow.yaml"), "--out", help="rendered file (mode 0600)"),
) -> None:
    """Render the jobflow JobStore config with the MongoDB URI from the environment (never printed)."""
    from flows.submit.stores import render_jobflow_config

    path = render_jobflow_config(template, out)
    typer.echo(f"wrote {path} (mode 600); export JOBFLOW_CONFIG_FILE={path}")
