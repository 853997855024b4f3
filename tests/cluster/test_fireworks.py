"""`mfal submit --fireworks` end to end with FireWorks' mongomock mode.

No MongoDB server exists on these machines (none in the package registries), so the LaunchPad is
FireWorks' own mongomock-persistence store (a JSON file); everything else is real: jobflow's
``flow_to_workflow``, FireWorks' ``rapidfire``, detours for the recursive rounds, a montydb JobStore.
"""

from __future__ import annotations

from pathlib import Path

from clusterutil import BIN, REPO, SECRET, fw_states, mfal, run, write_smoke

WORKERS = [REPO / f"configs/fireworks/my_fworker_{w}.yaml" for w in ("default", "cpu", "gpu")]
CLUSTER = REPO / "configs/cluster/local.yaml"


def _submit(fw, cfg: Path, run_dir: Path):
    return mfal(
        "submit", cfg, "--fireworks", "--launchpad", fw.launchpad, "--cluster", CLUSTER,
        "--flow", "flows.submit.smoke:smoke_flow", "--dir", run_dir, env=fw.env,
    )


def test_two_round_flow_runs_to_completed_with_routing(fw_env):
    run_dir = fw_env.dir / "run"
    p = _submit(fw_env, write_smoke(fw_env.dir / "smoke.yaml"), run_dir)
    assert p.returncode == 0, p.stderr
    states = fw_states(fw_env, *WORKERS)
    # 2 rounds x (round, explore, 2 labels, collect, train, store_inputs) = 14 fireworks, created by detours
    assert len(states) == 14
    assert {s["state"] for s in states} == {"COMPLETED"}
    by_kind = {s["name"]: (s["category"], s["fworker"]) for s in states}
    assert by_kind["label t r2 #1"] == ("cpu", "cpu_worker")  # routed although created at run time
    assert by_kind["train r2"] == ("gpu", "gpu_worker")
    assert by_kind["collect"] == ("default", None)
    assert len(list((run_dir / "frames").glob("*.json"))) == 4
    # the password (launchpad file, MFAL_MONGO_URI) never reaches the LaunchPad documents or the output
    assert SECRET not in fw_env.store_file.read_text()
    assert SECRET not in p.stdout + p.stderr


def test_crashing_label_fizzles_campaign_goes_on_and_rerun_relabels_only_it(fw_env):
    run_dir = fw_env.dir / "run"
    crash = fw_env.dir / "CRASH"
    crash.write_text("1")
    cfg = write_smoke(fw_env.dir / "smoke.yaml", n_rounds=1, n_frames=3, fail_if_exists=str(crash))
    assert _submit(fw_env, cfg, run_dir).returncode == 0
    states = fw_states(fw_env, *WORKERS)
    fizzled = [s for s in states if s["state"] == "FIZZLED"]
    assert [s["name"] for s in fizzled] == ["label t r1 #0"]
    assert "injected crash" in fizzled[0]["reason"]
    assert all(s["state"] == "COMPLETED" for s in states if s["state"] != "FIZZLED")
    assert len(list((run_dir / "frames").glob("*.json"))) == 2  # the campaign went on without that frame

    before = {f.name: f.stat().st_mtime_ns for f in (run_dir / "frames").glob("*.json")}
    crash.unlink()
    p = run([BIN / "lpad", "-l", fw_env.launchpad, "rerun_fws", "-i", str(fizzled[0]["fw_id"])], env=fw_env.env)
    assert p.returncode == 0, p.stderr
    states = fw_states(fw_env, *WORKERS)
    assert {s["state"] for s in states} == {"COMPLETED"}
    after = {f.name: f.stat().st_mtime_ns for f in (run_dir / "frames").glob("*.json")}
    assert len(after) == 3
    assert {k: after[k] for k in before} == before  # the two good frames were not labeled again


def test_bad_launchpad_inputs_fail_in_one_line(fw_env, tmp_path):
    cfg = write_smoke(tmp_path / "smoke.yaml")
    base = ["submit", cfg, "--fireworks", "--flow", "flows.submit.smoke:smoke_flow", "--dir", tmp_path / "r"]
    env = {k: v for k, v in fw_env.env.items() if k != "MONGOMOCK_SERVERSTORE_FILE"}  # real pymongo

    p = mfal(*base, "--launchpad", tmp_path / "nope.yaml", env=env)
    assert p.returncode == 2  # a config error
    assert p.stderr.strip().splitlines() == [f"mfal: error: launchpad file {tmp_path / 'nope.yaml'} does not exist (set --launchpad or LAUNCHPAD_LOC)"]

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("host: localhost\nhostname_typo: x\n")
    wrong.chmod(0o600)
    p = mfal(*base, "--launchpad", wrong, env=env)
    assert p.returncode == 2 and "unknown or wrong key" in p.stderr and len(p.stderr.strip().splitlines()) == 1

    # unreachable MongoDB (nothing listens on port 9): one line naming the file, no password; readable file warned
    down = tmp_path / "down.yaml"
    down.write_text(f"host: 127.0.0.1\nport: 9\nname: x\nusername: u\npassword: {SECRET}\n")
    down.chmod(0o644)
    p = mfal(*base, "--launchpad", down, env=env, timeout=60)
    assert p.returncode == 1
    assert f"mfal: error: MongoDB of launchpad file {down} is unreachable" in p.stderr
    assert "accessible by other users (mode 0644)" in p.stderr
    assert SECRET not in p.stdout + p.stderr
    assert not (tmp_path / "r").exists()


def _fw_count(fw, cwd: Path, **env_extra) -> int:
    p = run([BIN / "lpad", "get_fws", "-d", "count"], env={**fw.env, **env_extra}, cwd=cwd)
    assert p.returncode == 0, p.stderr
    return int(p.stdout.strip().splitlines()[-1])


def test_fireworks_dry_run_adds_nothing_and_writes_nothing(fw_env, tmp_path):
    """Issue 15 #1: `--fireworks --dry-run` used to add the workflow and write the campaign directory."""
    before = fw_env.store_file.read_text()
    for args, run_dir in (
        (["--flow", "flows.submit.smoke:smoke_flow", write_smoke(tmp_path / "s.yaml")], tmp_path / "smoke"),
        ([REPO / "configs/demo.yaml"], tmp_path / "campaign"),  # the real campaign flow writes its dir when built
    ):
        p = mfal("submit", *args, "--fireworks", "--dry-run", "--launchpad", fw_env.launchpad, "--cluster", CLUSTER,
                 "--dir", run_dir, env=fw_env.env)
        assert p.returncode == 0, p.stderr
        assert "firework '" in p.stdout and "_category=" in p.stdout
        assert "dry run: nothing added to the LaunchPad, nothing written" in p.stdout
        assert not run_dir.exists()
    assert fw_env.store_file.read_text() == before
    lp = fw_env.dir / "lp-dir"
    lp.mkdir()
    (lp / "FW_config.yaml").write_text(f"LAUNCHPAD_LOC: {fw_env.launchpad}\n")
    assert _fw_count(fw_env, lp, FW_CONFIG_FILE=str(lp / "FW_config.yaml")) == 0


def test_one_fw_config_serves_lpad_and_mfal_submit(fw_env, tmp_path):
    """LAUNCHPAD_LOC was read by `mfal submit` only; FireWorks' `lpad`/`qlaunch` read FW_CONFIG_FILE. With the file
    that `mfal fireworks-config` writes, the README's bare `lpad reset` / `mfal submit` / `lpad get_fws` agree."""
    fw_config = tmp_path / "private dir" / "FW_config.yaml"
    p = mfal("fireworks-config", "--launchpad", fw_env.launchpad, "--out", fw_config, env=fw_env.env)
    assert p.returncode == 0, p.stderr
    assert f"export FW_CONFIG_FILE='{fw_config}'" in p.stdout  # shell-quoted: paste-safe
    env = dict(fw_env.env, FW_CONFIG_FILE=str(fw_config))
    elsewhere = tmp_path / "elsewhere"  # no my_launchpad.yaml here: only FW_CONFIG_FILE can point lpad at it
    elsewhere.mkdir()
    today = __import__("datetime").date.today().isoformat()
    p = run([BIN / "lpad", "reset", "--password", today], env=env, cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    p = mfal("submit", write_smoke(tmp_path / "s.yaml"), "--fireworks", "--cluster", CLUSTER,
             "--flow", "flows.submit.smoke:smoke_flow", "--dir", tmp_path / "run", env=env, cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert _fw_count(fw_env, elsewhere, FW_CONFIG_FILE=str(fw_config)) == 1  # the same database (name: mfal_fw)
    assert _fw_count(fw_env, elsewhere) == 0  # FireWorks' default LaunchPad (database 'fireworks') is another one
