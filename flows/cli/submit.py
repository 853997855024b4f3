"""mfal CLI commands (module submit): ``mfal submit``, ``cluster-status``, ``fireworks-config``, ``jobflow-config``
and the internal SLURM steps."""

from __future__ import annotations

import importlib
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

import typer

from flows.cli.app import app
from flows.cli.options import call_with_options, run_options
from mfal.errors import ConfigError
from mfal.fileio import dumps_strict
from mfal.runopts import RunOptions


def _flow_factory(flow_factory: str | None) -> Any:
    """``MODULE:FUNCTION(config, run_dir)`` of ``--flow``, else the campaign flow builder."""
    if flow_factory is None:
        from flows.campaign import campaign_flow

        return campaign_flow
    mod_name, _, func_name = flow_factory.partition(":")
    try:
        return getattr(importlib.import_module(mod_name), func_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"--flow {flow_factory!r}: cannot import (expected MODULE:FUNCTION)") from err


def _build_flow(config: Path, run_dir: Path, factory: Any, options: RunOptions) -> Any:
    """The jobflow Flow to submit; the factory gets the run options if it takes them (``options``/``device``)."""
    return call_with_options(factory, config, run_dir, options=options)


@app.command("submit")
def submit(
    config: Path = typer.Argument(..., help="campaign config YAML (or the config of --flow)"),
    fireworks: bool = typer.Option(False, "--fireworks", help="add the flow to a FireWorks LaunchPad"),
    slurm: bool = typer.Option(False, "--slurm", help="run the flow on SLURM with a driver job (no database)"),
    run_dir: Path = typer.Option(Path("runs/campaign"), "--dir", help="run directory (SLURM state, outputs)"),
    cluster: Path | None = typer.Option(None, "--cluster", help="cluster YAML (queues, GPUs); see configs/cluster/"),
    launchpad: Path | None = typer.Option(
        None,
        "--launchpad",
        help="LaunchPad YAML (default: $LAUNCHPAD_LOC, else FireWorks' own: FW_CONFIG_FILE / my_launchpad.yaml)",
    ),
    device: str | None = typer.Option(
        None, "--device", help="device of explore/score/train/evaluate: auto|cpu|cuda[:N] (default: the cluster's)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print what would be submitted; write and add nothing"),
    resume: bool = typer.Option(False, "--resume", help="SLURM: continue DIR, rerunning only failed jobs"),
    flow: str | None = typer.Option(
        None, "--flow", help="MODULE:FUNCTION(config, run_dir) returning any jobflow Flow, e.g. flows.submit.smoke:smoke_flow"
    ),
) -> None:
    """Submit a campaign (or any flow) to FireWorks or SLURM; every input is checked before anything is written."""
    from flows.submit.config import load_cluster_config
    from flows.submit.routing import check_routing

    if fireworks == slurm:
        raise ConfigError("choose exactly one of --fireworks or --slurm")
    if dry_run and resume:
        raise ConfigError("--dry-run and --resume contradict each other; give one")
    cl = load_cluster_config(cluster)
    options = run_options(device or cl.device, progress=False)
    check_routing(cl, options.device)  # a device no queue can serve: one line, before anything is written
    factory = _flow_factory(flow)
    run_dir = run_dir.resolve()
    if not config.is_file():
        raise ConfigError(f"config {config} does not exist")

    if dry_run:  # the flow is built in a scratch directory: a dry run leaves no trace
        with tempfile.TemporaryDirectory(prefix="mfal-dry-run-") as tmp:
            the_flow = _build_flow(config, Path(tmp) / "run", factory, options)
            if fireworks:
                from flows.submit.fireworks import describe_workflow

                lines = describe_workflow(the_flow, cl, options.device)
            else:
                from flows.submit.slurm import dry_run_scripts
                from flows.submit.stores import SINGLE_WRITER_NOTE, campaign_store_kind

                if flow is None and campaign_store_kind(config) == "embedded":
                    cl = cl.model_copy(update={"max_running_steps": 1})
                    typer.echo(SINGLE_WRITER_NOTE, err=True)

                lines = [f"# ---- {t}\n{s}" for t, s in dry_run_scripts(the_flow, run_dir, cl, device=options.device)]
        typer.echo("\n".join(lines))
        typer.echo(f"# dry run: nothing {'added to the LaunchPad' if fireworks else 'submitted'}, nothing written")
        return

    if fireworks:
        from flows.submit.fireworks import load_launchpad, submit_flow

        lp = load_launchpad(launchpad)  # checked before the flow is built: nothing half-done
        if flow is None:
            from flows.submit.stores import SHARED_STORE_NOTE, campaign_store_kind

            if campaign_store_kind(config) == "embedded":
                typer.echo(SHARED_STORE_NOTE, err=True)
        with _cleanup_on_error(run_dir):
            the_flow = _build_flow(config, run_dir, factory, options)
            ids = submit_flow(the_flow, lp, cl, device=options.device)
        typer.echo(f"added {len(ids)} fireworks (ids {ids[0]}..{ids[-1]}); run them with qlaunch/rlaunch rapidfire")
        return
    _submit_slurm(config, run_dir, cl, factory, options, resume=resume, campaign=flow is None)


def _submit_slurm(config: Path, run_dir: Path, cl: Any, factory: Any, options: RunOptions, *, resume: bool,
                  campaign: bool) -> None:
    """``mfal submit --slurm``: preflight, single-writer default for an embedded store, prepare, first tick."""
    from flows.submit import slurm as sl
    from flows.submit.stores import SINGLE_WRITER_NOTE, campaign_store_kind

    hint = f"follow it with: mfal cluster-status --dir {shlex.quote(str(run_dir))}"
    if resume:
        sl.find_sbatch()
        names = sl.reset_failed(run_dir)
        tid = sl.submit_tick(sl.Run.open(run_dir), after=[])
        typer.echo(f"resumed {run_dir}: rerunning {len(names)} job(s) {names}; driver job {tid}; {hint}")
        return
    if (run_dir / sl.SUBDIR / "run.json").exists():
        raise ConfigError(f"{run_dir} already holds a SLURM run; use --resume to continue it")
    sl.preflight(cl)  # partitions, GPUs, account: before the flow is built (building writes the campaign dir)
    if campaign and campaign_store_kind(config) == "embedded":
        cl = cl.model_copy(update={"max_running_steps": 1})
        typer.echo(SINGLE_WRITER_NOTE, err=True)
    with _cleanup_on_error(run_dir):
        the_flow = _build_flow(config, run_dir, factory, options)
        run = sl.prepare_run(the_flow, run_dir, cl, device=options.device)
        tid = sl.submit_tick(run, after=[])
    typer.echo(f"submitted driver job {tid} for {run_dir}; {hint}")


class _cleanup_on_error:
    """Remove what a failed submission wrote: the run directory if it did not exist, else its ``slurm/``."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.existed = run_dir.exists()
        self.slurm_existed = (run_dir / "slurm").exists()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None:
            if not self.existed:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            elif not self.slurm_existed:
                shutil.rmtree(self.run_dir / "slurm", ignore_errors=True)
        return False


@app.command("cluster-status")
def cluster_status(
    run_dir: Path = typer.Option(Path("runs/campaign"), "--dir", help="SLURM run directory"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """State of a SLURM run: one row per job, failures with their reason."""
    from flows.submit.slurm import run_status

    st = run_status(run_dir)
    if as_json:
        typer.echo(dumps_strict(st, indent=None))
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

    typer.echo(dumps_strict(tick(run_dir), indent=None))


@app.command("slurm-step", hidden=True)
def slurm_step(run_dir: Path = typer.Option(..., "--dir"), key: str = typer.Option(..., "--key")) -> None:
    """Internal: run one job of a SLURM run (its run options travel in the job's own arguments)."""
    from flows.submit.step import run_step

    run_step(run_dir, key)


@app.command("fireworks-config")
def fireworks_config(
    launchpad: Path = typer.Option(..., "--launchpad", help="your LaunchPad YAML (chmod 600)"),
    out: Path = typer.Option(Path("~/.mfal/FW_config.yaml"), "--out", help="FireWorks config file to write"),
) -> None:
    """Write a FW_config.yaml naming the LaunchPad, so lpad, qlaunch, rlaunch and mfal submit all use it."""
    from flows.submit.fireworks import write_fw_config

    path = write_fw_config(launchpad, out)
    typer.echo(f"wrote {path}; export FW_CONFIG_FILE={shlex.quote(str(path))}")


@app.command("jobflow-config")
def jobflow_config(
    template: Path = typer.Argument(Path("configs/jobflow/jobflow.yaml"), help="template with ${MFAL_MONGO_URI}"),
    out: Path = typer.Option(Path("~/.mfal/jobflow.yaml"), "--out", help="rendered file (mode 0600)"),
) -> None:
    """Render the jobflow JobStore config with the MongoDB URI from the environment (never printed)."""
    from flows.submit.stores import render_jobflow_config

    path = render_jobflow_config(template, out)
    typer.echo(f"wrote {path} (mode 600); export JOBFLOW_CONFIG_FILE={shlex.quote(str(path))}")
