"""``mfal bench campaign`` takes its campaign runner as an argument: mfal never imports flows."""

from __future__ import annotations

import subprocess
import sys

from mfal.bench import campaign as bench
from mfal.runopts import RunOptions


def test_bench_module_does_not_import_flows():
    code = (
        "import sys, mfal.bench.campaign; sys.exit(int(any(m.split('.')[0] == 'flows' for m in sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bench_campaign_uses_the_injected_runner(tmp_path, monkeypatch):
    calls = []

    def runner(config, run_dir, *, options):
        calls.append((config, run_dir, options))
        return {"state": "done", "stop_reason": "max_rounds"}

    rows = [
        {"overhead_share": 0.02, "orchestration_share": 0.01, "overhead_share_with_configured_labels": 0.001},
        {"overhead_share": 0.04, "orchestration_share": None, "overhead_share_with_configured_labels": 0.003},
    ]
    monkeypatch.setattr(bench, "round_breakdown", lambda run_dir, cores: rows)
    res = bench.bench_campaign(tmp_path / "c.yaml", runner=runner, run_dir=tmp_path / "run", progress=True)
    assert calls == [(tmp_path / "c.yaml", tmp_path / "run", RunOptions(progress=True))]
    assert res["state"] == "done" and res["stop_reason"] == "max_rounds" and res["rounds"] == rows
    assert abs(res["mean_overhead_share"] - 0.03) < 1e-12 and res["mean_orchestration_share"] == 0.01
    assert res["target_overhead_share"] == 0.05
    # without run_dir the run goes to a temp dir that is removed afterwards
    bench.bench_campaign(None, runner=runner)
    assert calls[-1][0] == bench.default_demo_config() and not calls[-1][1].parent.exists()
