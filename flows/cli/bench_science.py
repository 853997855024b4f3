"""mfal CLI commands (module bench_science): ``mfal bench science``."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.app import bench_app
from mfal.errors import ConfigError


def _int_list(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise ConfigError(f"{name}={text!r}: expected comma-separated integers, e.g. 25,50,100") from err
    if not values or min(values) < 1:
        raise ConfigError(f"{name}={text!r}: expected positive integers")
    return values


def _str_list(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def parse_variants(texts: list[str]) -> dict[str, dict]:
    """``NAME=key:value,key:value`` -> {NAME: {key: value}} (values read as YAML scalars; dotted keys nest)."""
    import yaml

    out: dict[str, dict] = {}
    for text in texts:
        name, sep, body = text.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--variant {text!r}: expected NAME=key:value[,key:value]")
        fields: dict = {}
        for item in filter(None, (x.strip() for x in body.split(","))):
            key, sep, value = item.partition(":")
            if not sep:
                raise ConfigError(f"--variant {text!r}: {item!r} is not key:value")
            node = fields
            *parents, leaf = key.strip().split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = yaml.safe_load(value)
        out[name.strip()] = fields
    return out


@bench_app.command("science")
def science_cmd(
    quick: bool = typer.Option(
        False, "--quick", help="= --preset quick (CI: HF 50, SF vs MF-F, ≤ 5 min idle)"
    ),
    preset_name: str = typer.Option(
        "full",
        "--preset",
        help="quick, full (≈ 2 h, warm start), scratch (≈ 75 CPU-min, random init), paper (the whole grid), "
        "recipe (the training-recipe comparison on the realistic pair) or converge (every method to its own "
        "convergence on a 300-structure realistic pool: a GPU node)",
    ),
    pair: str | None = typer.Option(
        None, "--pair", help="teacher pair: chgnet-020-030 (default, close) or realistic (CP2K-like gap)"
    ),
    warm_start: str | None = typer.Option(
        None, "--warm-start", help="pretrained CHGNet name (0.2.0, 0.3.0, r2scan) or MFCHGNet checkpoint"
    ),
    allow_teacher_warm_start: bool = typer.Option(
        False, "--allow-teacher-warm-start", help="allow a warm start equal to the HF teacher (warns loudly)"
    ),
    variant: list[str] | None = typer.Option(
        None,
        "--variant",
        help="recipe variant NAME=key:value,key:value (TrainConfig fields, dotted for nested, e.g. "
        "bal=fidelity_balance:1); use it as method MF-F:NAME",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the result JSON on stdout"),
    out: Path = typer.Option(Path("bench-science"), "--out", help="output directory (JSON, figures, cache)"),
    labeler: str = typer.Option("teacher", "--labeler", help="teacher (surrogate) or replay (--data FILE)"),
    data: Path | None = typer.Option(None, "--data", help="paired LF/HF extxyz file for --labeler replay"),
    seeds: int | None = typer.Option(
        None, "--seeds", min=1, help="seeds per point (default: 1; 3 with --preset paper)"
    ),
    first_seed: int | None = typer.Option(
        None,
        "--seed",
        min=0,
        help="first run seed: runs seeds SEED..SEED+N-1 on the same pool and split (default 0)",
    ),
    hf_sizes: str | None = typer.Option(None, "--hf-sizes", help="comma-separated HF sizes, e.g. 25,50,100"),
    methods: str | None = typer.Option(None, "--methods", help="e.g. SF,TL,MF-F"),
    ablation: str | None = typer.Option(
        None, "--ablation", help="extra MF subsets, e.g. MF-E,MF-C (or none)"
    ),
    ablation_sizes: str | None = typer.Option(None, "--ablation-sizes", help="HF sizes of the ablation"),
    starts: str | None = typer.Option(None, "--starts", help="scratch,pretrained"),
    al_sizes: str | None = typer.Option(None, "--al-sizes", help="AL HF sizes per round (or none)"),
    n_structures: int | None = typer.Option(None, "--n-structures", min=3, help="teacher pool size"),
    n_test: int | None = typer.Option(None, "--n-test", min=1),
    n_val: int | None = typer.Option(None, "--n-val", min=0),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="max epochs (warm start)"),
    scratch_epochs: int | None = typer.Option(None, "--scratch-epochs", min=1),
    lf_max: int | None = typer.Option(None, "--lf-max", min=1, help="cap on LF frames used"),
    figures: Path | None = typer.Option(
        None, "--figures", help="also write the PNGs here (e.g. docs/figures)"
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="torch CPU threads (default 2; 1 is far faster on an oversubscribed machine)",
    ),
) -> None:
    """Science benchmark: learning curves SF/TL/MF, ablation, AL vs random (teacher labels are SURROGATE)."""
    from mfal.bench.science import PRESETS, ALConfig, preset, run_science
    from mfal.bench.science_report import markdown_tables, write_report

    if labeler not in ("teacher", "replay"):
        raise ConfigError(f"--labeler={labeler!r} not in ['teacher', 'replay']")
    if labeler == "replay" and data is None:
        raise ConfigError("--labeler replay needs --data FILE (a paired LF/HF extxyz file)")
    if data is not None and not data.is_file():
        raise ConfigError(f"--data {data}: no such file")
    if preset_name not in PRESETS:
        raise ConfigError(f"--preset={preset_name!r} not in {list(PRESETS)}")
    if quick and preset_name not in ("full", "quick"):
        raise ConfigError(f"--quick and --preset {preset_name} contradict each other; give one")
    cfg = preset("quick" if quick else preset_name)
    upd: dict = {"labeler": labeler, "data": str(data) if data else None}
    if labeler == "replay":  # a small real set: no val split by default, fixed epochs
        upd.update(n_test=max(1, cfg.n_test // 12), n_val=0, patience=None)
    if variant:
        upd["variants"] = {**cfg.variants, **parse_variants(variant)}
    if warm_start is not None and not warm_start.strip():
        raise ConfigError("--warm-start: expected a pretrained CHGNet name or a checkpoint file")
    for key, value in (
        ("pair", pair),
        ("warm_version", warm_start),
        ("allow_teacher_warm_start", allow_teacher_warm_start or None),
        ("seeds", seeds),
        ("first_run_seed", first_seed),
        ("hf_sizes", _int_list(hf_sizes, "--hf-sizes")),
        ("methods", _str_list(methods)),
        ("ablation_sizes", _int_list(ablation_sizes, "--ablation-sizes") if ablation_sizes != "none" else []),
        ("starts", _str_list(starts)),
        ("n_structures", n_structures),
        ("n_test", n_test),
        ("n_val", n_val),
        ("epochs", epochs),
        ("scratch_epochs", scratch_epochs),
        ("lf_max", lf_max),
        ("threads", threads),
    ):
        if value is not None:
            upd[key] = value
    if ablation is not None:
        upd["ablation"] = [] if ablation == "none" else _str_list(ablation)
    if al_sizes is not None:
        upd["al"] = None if al_sizes == "none" else ALConfig(sizes=_int_list(al_sizes, "--al-sizes"))
    try:
        merged = {**cfg.model_dump(), **{k: v for k, v in upd.items() if k != "al"}}
        merged["al"] = upd.get("al", cfg.al)
        cfg = type(cfg)(**merged)
    except ValueError as err:
        errors = getattr(err, "errors", lambda: [])()
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors) or str(err)
        raise ConfigError(f"bench science options: {msg}") from err

    def note(msg: str) -> None:
        typer.echo(msg, err=True)

    result = run_science(cfg, out, progress=True, callback=note)
    paths = write_report(result, out, figures)
    if as_json:
        typer.echo((out / "science.json").read_text())  # exactly the JSON file
        return
    typer.echo(markdown_tables(result))
    typer.echo(f"\nJSON: {out / 'science.json'}; figures: {', '.join(str(p) for p in paths)}")


@bench_app.command("science-report")
def science_report_cmd(
    runs: list[Path] = typer.Argument(..., help="output directories of `mfal bench science` (same pool)"),
    out: Path = typer.Option(..., "--out", help="where the merged science.json, science.md and PNGs go"),
    figures: Path | None = typer.Option(None, "--figures", help="also write the PNGs here"),
    prefix: str = typer.Option("science", "--prefix", help="file name prefix of the PNGs"),
) -> None:
    """Redraw (one run) or merge (runs made side by side, e.g. --preset full and --preset scratch) the report."""
    from mfal.bench.science import write_result_json
    from mfal.bench.science_report import markdown_tables, write_report
    from mfal.bench.science_targets import merge_results
    from mfal.fileio import read_json

    results = []
    for run in runs:
        path = run / "science.json" if run.is_dir() else run
        if not path.is_file():
            raise ConfigError(f"{run}: no science.json (run `mfal bench science --out {run}` first)")
        results.append(read_json(path))
    merged = merge_results(results)
    out.mkdir(parents=True, exist_ok=True)
    write_result_json(merged, out)
    paths = write_report(merged, out, figures, prefix)
    typer.echo(markdown_tables(merged))
    typer.echo(f"\nJSON: {out / 'science.json'}; figures: {', '.join(str(p) for p in paths)}")
