"""``mfal train``: a tiny real run writes checkpoint + metrics; bad configs give one line and exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mfal.errors import ConfigError
from mfal.train.run import load_run_config
from mfal.train.split import split_frames


def _mfal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_mfal_train_tiny_config(tmp_path, lf_frames, hf_frames):
    from typer.testing import CliRunner

    from flows.cli import app
    from mfal.model import MFCHGNet
    from mfal.store.extxyz import write_extxyz

    write_extxyz(lf_frames[:3] + hf_frames[:2] + hf_frames[-1:], tmp_path / "frames.extxyz")
    cfg = {
        "data": {"extxyz": ["frames.extxyz"], "val_fraction": 0.3},
        "train": {"epochs": 1, "pretrained_version": "0.2.0", "batch_size": 8},
        "out_dir": "ignored",
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["train", str(tmp_path / "tiny.yaml"), "--out", str(out), "--device", "cpu", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "best validation metrics" in result.output and "hf" in result.output
    summary = json.loads((out / "summary.json").read_text())
    member = summary["members"][0]
    model = MFCHGNet.load(member["checkpoint"], sha256=member["sha256"])
    assert model.components == "EMRC"
    assert set(json.loads((out / "metrics.json").read_text())["metrics"]) <= {"lf", "hf"}
    assert (out / "train_state.pt").is_file()


BAD_CONFIGS = [
    ("data: {builtin: lifepo4_teacher}\ntrain: {epochz: 3}\n", "field train.epochz: unknown key"),
    ("data: {builtin: lifepo4_teacher}\ntrain: {mode: xx}\n", "field train.mode"),
    ("data: !!python/object:os.system {}\n", "invalid YAML"),
    ("data: {builtin: lifepo4_teacher}\ntrain: {components: EQ}\n", "field train.components"),
    ("data: {}\n", "give at least one of builtin, extxyz, store"),
    ("- just\n- a list\n", "expected a mapping"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_error_is_one_line(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert expected in str(err.value)


def test_mfal_train_bad_config_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {builtin: nope}\ntrain: {epochs: 1}\n")
    proc = _mfal("train", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr  # a config error (ConfigError) exits 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mfal: error: "), proc.stderr
    assert "data.builtin='nope' not in built-in data sets ['lifepo4_teacher']" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_example_config_is_valid():
    cfg = load_run_config(Path(__file__).parents[2] / "configs" / "train" / "example.yaml")
    assert cfg.data.builtin == "lifepo4_teacher" and cfg.train.mode == "mf"


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_run_config(tmp_path / "nope.yaml")


def test_split_keeps_structures_together(teacher_frames):
    from mfal.store.docs import structure_fingerprint

    train, val = split_frames(list(teacher_frames), 0.25, seed=1, target_fidelity="hf")
    assert len(train) + len(val) == len(teacher_frames)
    fp_train = {structure_fingerprint(f.get_structure()) for f in train}
    fp_val = {structure_fingerprint(f.get_structure()) for f in val}
    assert not fp_train & fp_val
    assert any(f.fidelity == "hf" for f in val) and any(f.fidelity == "hf" for f in train)
