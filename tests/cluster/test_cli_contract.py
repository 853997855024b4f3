"""The CLI error contract, across commands (issue 15 #8 and the contract in README):

one line on stderr naming the file/field, exit 2 for usage/config errors, 1 for data/runtime errors (any other
MfalError, OSError, MemoryError), no traceback unless ``--debug``; JSON output is strict JSON.
"""

from __future__ import annotations

import errno
import json

import pytest
from clusterutil import mfal

from flows.cli import main
from mfal.errors import ConfigError, DataError, MfalError, StoreError


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _raise(err: BaseException):
    def boom(*_a, **_k):
        raise err

    return boom


ERRORS = [
    (ConfigError("c.yaml: field train.epochs: expected an integer"), 2, "c.yaml: field train.epochs: expected"),
    (DataError("state.json: invalid JSON at line 1 column 9: Expecting value"), 1, "state.json: invalid JSON"),
    (StoreError("store /s: cannot open: read-only file system"), 1, "store /s: cannot open"),
    (MfalError("campaign 'x' stopped in round 2: budget spent"), 1, "stopped in round 2"),
    (PermissionError(errno.EACCES, "Permission denied", "/runs/c/state.json"), 1, "/runs/c/state.json: Permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/s/.lock"), 1, "/s/.lock: Read-only file system"),
    (MemoryError(), 1, "out of memory"),
]


@pytest.mark.parametrize(("err", "code", "text"), ERRORS, ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None)
def test_library_errors_are_one_line_with_the_right_exit_status(monkeypatch, capsys, tmp_path, err, code, text):
    monkeypatch.setattr("mfal.campaign.report.campaign_status", _raise(err))
    status, out, stderr = _run(["status", "--dir", str(tmp_path)], capsys)
    assert status == code, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("mfal: error: ") and text in line and "Traceback" not in stderr
    assert out == ""


def test_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("mfal.campaign.report.campaign_status", _raise(MemoryError("huge")))
    with pytest.raises(MemoryError, match="huge"):
        main(["status", "--dir", str(tmp_path), "--debug"])
    with pytest.raises(MemoryError):
        main(["--debug", "status", "--dir", str(tmp_path)])


@pytest.mark.parametrize(
    ("target", "argv", "err", "code"),
    [
        ("mfal.store.open_store", ["query", "--store", "S"], OSError(errno.EACCES, "Permission denied", "S/.lock"), 1),
        ("mfal.store.importer.discover", ["import", "x.extxyz", "--store", "S"], DataError("x.extxyz: frame 3: NaN"), 1),
        ("flows.submit.slurm.run_status", ["cluster-status", "--dir", "R"], MemoryError(), 1),
        ("mfal.campaign.report.make_report", ["report", "--dir", "R"], ConfigError("R: not a campaign"), 2),
        ("mfal.train.run.load_run_config", ["train", "t.yaml"], ConfigError("t.yaml: field data: missing"), 2),
    ],
)
def test_every_command_keeps_the_contract(monkeypatch, capsys, tmp_path, target, argv, err, code):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(target, _raise(err))
    status, _, stderr = _run(argv, capsys)
    assert status == code and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["query", "--bogus"], "No such option: --bogus"),
        (["run"], "Missing argument 'config'"),
        (["query", "--limit", "many", "--store", "s"], "Invalid value for '--limit'"),
        (["run", "c.yaml", "--device", "banana"], "device='banana' not in ['auto', 'cpu', 'cuda']"),
        (["submit", "c.yaml", "--slurm", "--fireworks"], "choose exactly one of --fireworks or --slurm"),
    ],
)
def test_usage_errors_exit_2_in_one_line(capsys, tmp_path, monkeypatch, argv, text):
    monkeypatch.chdir(tmp_path)
    status, _, stderr = _run(argv, capsys)
    assert status == 2, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("mfal: error: ") and text in line
    assert not any(tmp_path.iterdir())  # nothing written


def _strict(text: str):
    def bad(const: str):
        raise AssertionError(f"non-strict JSON constant {const}")

    return json.loads(text, parse_constant=bad)


def test_json_output_is_strict_json(monkeypatch, capsys, tmp_path):
    nan = float("nan")
    monkeypatch.setattr("mfal.campaign.report.campaign_status", lambda _d: {"rounds": [{"rho": nan, "mae": float("inf")}]})
    status, out, _ = _run(["status", "--dir", str(tmp_path), "--json"], capsys)
    assert status == 0 and _strict(out) == {"rounds": [{"rho": None, "mae": None}]}
    monkeypatch.setattr("flows.submit.slurm.run_status", lambda _d: {"status": "running", "counts": {}, "x": nan})
    status, out, _ = _run(["cluster-status", "--dir", str(tmp_path), "--json"], capsys)
    assert status == 0 and _strict(out)["x"] is None


@pytest.mark.parametrize(
    ("content", "text"),
    [(b"\x00\xff\xfe binary", "not a text JSON file"), (b'{"jobs": {"a_1": {"na', "invalid JSON at line 1")],
)
def test_unreadable_run_state_is_one_line(tmp_path, content, text):
    run_dir = tmp_path / "run"
    (run_dir / "slurm").mkdir(parents=True)
    (run_dir / "slurm" / "run.json").write_text(json.dumps({"cluster": {}, "command": ["x"], "device": None}))
    (run_dir / "slurm" / "state.json").write_bytes(content)
    p = mfal("cluster-status", "--dir", run_dir, "--json")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith(f"mfal: error: {run_dir / 'slurm' / 'state.json'}: {text}")


@pytest.mark.parametrize("content", [b"\x00\xff binary", b"queues: [1, 2\n", b"- a list\n"])
def test_unreadable_cluster_config_is_one_line_exit_2(tmp_path, content):
    bad = tmp_path / "cluster.yaml"
    bad.write_bytes(content)
    p = mfal("submit", tmp_path / "c.yaml", "--slurm", "--cluster", bad, "--dir", tmp_path / "run")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith(f"mfal: error: cluster config {bad}")
    assert not (tmp_path / "run").exists()
