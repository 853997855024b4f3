"""`mfal bench scale` with the tiny preset: every point in its own subprocess, exponents fitted, RSS measured."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mfal.bench.scale import fit_exponent, lmfp_cells, score_stream


def test_fit_exponent_recovers_a_power_law():
    atoms = [28, 112, 224, 448]
    assert fit_exponent(atoms, [2e-3 * a**1.3 for a in atoms]) == pytest.approx(1.3)
    assert fit_exponent([28], [1.0]) is None


def test_lmfp_cells_sizes_and_mn():
    cells = list(lmfp_cells(112, 2))
    assert [len(c) for c in cells] == [112, 112]
    symbols = [s.specie.symbol for s in cells[0]]
    assert symbols.count("Mn") == 4 and symbols.count("Fe") == 12


def test_score_stream_equals_one_call(request):
    """Batches of 2 give the same scores as one score_candidates call with the campaign's scorer options (the
    stream only splits the work)."""
    from mfal.bench.kinds import campaign_scorer
    from mfal.bench.scale import bench_ensemble
    from mfal.uncertainty import score_candidates

    ens = bench_ensemble(2, "heads")
    cells = list(lmfp_cells(28, 3))
    streamed = score_stream(ens, iter(cells), ens.fidelities, batch=2)
    assert campaign_scorer(ens)["force_spread"] == "last_layer"
    whole = score_candidates(ens, cells, ens.fidelities, **campaign_scorer(ens))
    for fid in ens.fidelities:
        assert streamed[f"{fid}/force_std_max"] == pytest.approx(whole[fid].array("force_std_max"), rel=1e-4)


@pytest.mark.slow
def test_tiny_preset_cli_json():
    from flows.cli import app

    result = CliRunner().invoke(app, ["bench", "scale", "--preset", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "score_atoms_exponent_cpu",
        "train_atoms_exponent_cpu",
        "candidates",
        "rss_peak_mb_max_candidates",
        "per_pass_over_chgnet",
        "points",
        "targets",
    ):
        assert key in out
    assert isinstance(out["score_atoms_exponent_cpu"], float)
    assert isinstance(out["train_atoms_exponent_cpu"], float)
    assert out["rss_peak_mb_max_candidates"] > 100  # torch + the model: a real peak RSS, in MB
    assert all(p["rss_peak_mb"] >= p["rss_setup_mb"] > 0 for p in out["points"])
    assert out["per_pass_over_chgnet"] > 0
    assert out["scorer"] == {"force_probes": None, "force_spread": "last_layer"}  # what the campaign scores with


def test_points_option_selects_point_kinds_and_refuses_unknown_names(capsys):
    """`--points atoms` is both per-atom series; an unknown name is one line naming the option, exit 2."""
    from flows.cli import main
    from mfal.bench.scale import parse_points

    assert parse_points("atoms") == {"score_atoms", "train_atoms"}
    assert parse_points("throughput,score_atoms") == {"throughput", "score_atoms"}
    assert parse_points(None) == {"score_atoms", "train_atoms", "candidates", "throughput"}
    with pytest.raises(SystemExit) as exc:
        main(["bench", "scale", "--preset", "tiny", "--points", "atoms,gpu"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--points" in err[0] and "'gpu'" in err[0]


@pytest.mark.slow
def test_tiny_preset_score_atoms_points_only():
    """Only the per-atom scoring series runs: no throughput point, so no per-pass ratio, and an exponent."""
    from mfal.bench.scale import run_scale_bench

    out = run_scale_bench("tiny", points="score_atoms")
    assert {p["what"] for p in out["points"]} == {"score_atoms"}
    assert [p["n_atoms"] for p in out["points"]] == [28, 56]
    assert isinstance(out["score_atoms_exponent_cpu"], float)
    assert out["train_atoms_exponent_cpu"] is None and out["per_pass_over_chgnet"] is None
    assert out["candidates"] == {} and out["point_kinds"] == ["score_atoms"]
