"""The README as a newcomer uses it: its Python block runs as written, its commands exist, and the configs it
points to agree with each other (VASP cores = the cluster's label-queue cores)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def _block(marker: str, lang: str) -> str:
    m = re.search(rf"<!-- {marker} -->\s*```{lang}\n(.*?)```", README, re.S)
    assert m, f"README has no ```{lang} block after <!-- {marker} -->"
    return m.group(1)


def test_the_first_lines_give_the_demo_and_the_test_command():
    head = README.split("## ")[0]
    assert "mfal run configs/demo.yaml" in _block("demo-command", "bash") and "<!-- demo-command -->" in head
    assert "python -m pytest" in _block("test-command", "bash") and "<!-- test-command -->" in head


def test_smoke_command_runs_as_written_and_writes_the_dashboard(tmp_path):
    """The README's sub-minute smoke command, run verbatim in a copy of the repo's configs (it writes --dir)."""
    import shutil

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    cmd = _block("smoke-command", "bash").strip()
    env = dict(__import__("os").environ, PATH=f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}")
    p = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "smoke: done" in p.stdout and (tmp_path / "smoke" / "report" / "report.html").stat().st_size > 50_000


def test_python_snippet_runs_as_written(tmp_path):
    code = _block("python-snippet", "python")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    e_atom, rest = p.stdout.split(" ", 1)
    assert -10 < float(e_atom) < 0 and (tmp_path / "model.pt").is_file()


def test_every_config_the_readme_names_exists_and_validates():
    from mfal.campaign.config import load_config

    names = sorted(set(re.findall(r"configs/[\w/.-]+\.ya?ml", README)))
    assert "configs/smoke.yaml" in names and "configs/vasp.yaml" in names
    for name in names:
        assert (ROOT / name).is_file(), f"README names {name}, which does not exist"
    for name in ("configs/smoke.yaml", "configs/demo.yaml", "configs/vasp.yaml", "configs/cp2k.yaml"):
        load_config(ROOT / name)


def test_vasp_cores_agree_with_the_cluster_label_queue():
    vasp = yaml.safe_load((ROOT / "configs/vasp.yaml").read_text())
    queue = yaml.safe_load((ROOT / "configs/cluster/example-hpc.yaml").read_text())["queues"]["label"]
    cores = queue.get("ntasks", 1) * queue.get("cpus_per_task", 1) * queue.get("nodes", 1)
    for fid, lab in vasp["labelers"].items():
        assert lab["options"]["cores"] == cores, f"labelers.{fid}.options.cores vs label queue ({cores} cores)"
