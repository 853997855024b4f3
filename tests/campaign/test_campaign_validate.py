"""Validate before spending: every input a round needs is checked before the campaign directory is written
(issue 15: #4 devices, #9 unparseable start structures, #10 relative store paths, labeler settings, store)."""

from __future__ import annotations

import pytest

from mfal.campaign.prepare import prepare
from mfal.errors import ConfigError, MfalError


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c.update(device="banana"), r"field device: .*'banana' not in"),
        (lambda c: c["train"].update(device="banana"), r"train\.device: .*'banana' not in"),
    ],
)
def test_bad_device_name_fails_when_the_config_is_read(tmp_path, mfal_cli, make_config, save_config, mutate, field):
    cfg = make_config(tmp_path)
    mutate(cfg)
    path = save_config(tmp_path, cfg, "bad.yaml")
    code, _, err = mfal_cli(["run", str(path), "--dir", str(tmp_path / "run"), "-q"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    import re

    assert re.search(field, err), err
    assert not (tmp_path / "run").exists()


def test_cuda_without_gpu_fails_before_explore(tmp_path, monkeypatch, make_config, save_config):
    import torch

    from flows.campaign import run_campaign

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = save_config(tmp_path, make_config(tmp_path))
    with pytest.raises(ConfigError, match=r"device='cuda' requested but no CUDA device"):
        run_campaign(path, tmp_path / "run", device="cuda")
    assert not (tmp_path / "run").exists()  # nothing explored, nothing written
    # the same --dir then takes the fixed invocation (nothing was half-written)
    prepare(path, tmp_path / "run")
    assert (tmp_path / "run" / "state.json").is_file()


def test_unparseable_start_structure_fails_before_the_run_dir(tmp_path, make_config, save_config):
    cfg = make_config(tmp_path)
    (tmp_path / "junk.cif").write_text("data_junk\nthis is not a crystal\n")
    cfg["start_structures"] = [{"path": "cell.cif"}, {"path": "junk.cif"}]
    path = save_config(tmp_path, cfg)
    with pytest.raises(ConfigError, match=r"start_structures\[1\]\.path: cannot read a structure.*junk\.cif") as err:
        prepare(path, tmp_path / "run")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()
    # a file that parses but holds a non-finite coordinate
    lines = ["x", "1.0", "4 0 0", "0 4 0", "0 0 4", "Li O", "1 1", "direct", "nan 0 0", "0.5 0.5 0.5"]
    (tmp_path / "POSCAR_nan").write_text("\n".join(lines) + "\n")
    cfg["start_structures"] = [{"path": "POSCAR_nan"}]
    with pytest.raises(ConfigError, match=r"start_structures\.0: .*(non-finite|nan)"):
        prepare(save_config(tmp_path, cfg), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_labeler_option_typo_fails_when_the_config_is_read(tmp_path, make_config, save_config):
    cfg = make_config(tmp_path)
    cfg["labelers"]["hf"] = {"kind": "teacher", "options": {"fail_rat": 0.5}}
    with pytest.raises(ConfigError, match=r"labelers\.hf\.options\.fail_rat"):
        prepare(save_config(tmp_path, cfg), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_relative_store_path_resolves_against_the_config_folder(tmp_path, make_config, save_config):
    from mfal.store.config import campaign_store_config

    conf = tmp_path / "conf"
    conf.mkdir()
    cfg = make_config(conf, store={"type": "embedded", "path": "shared-store"})
    path = save_config(conf, cfg)
    run = tmp_path / "elsewhere" / "run"
    prepare(path, run)
    assert campaign_store_config(run).path == (conf / "shared-store").resolve()


def test_unreachable_store_fails_before_the_run_dir(tmp_path, monkeypatch, make_config, save_config):
    monkeypatch.setenv("MFAL_TEST_NO_MONGO", "mongodb://127.0.0.1:9/")
    cfg = make_config(tmp_path, store={"type": "mongo", "uri_env": "MFAL_TEST_NO_MONGO", "timeout_ms": 300})
    with pytest.raises(MfalError):
        prepare(save_config(tmp_path, cfg), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_truncated_state_json_is_one_line_for_status_and_run(tmp_path, mfal_cli, make_config, save_config):
    path = save_config(tmp_path, make_config(tmp_path))
    run = tmp_path / "run"
    prepare(path, run)
    (run / "state.json").write_text('{"campaign": "tiny", "sta')
    for argv in (["status", "--dir", str(run)], ["run", str(path), "--dir", str(run), "-q"]):
        code, _, err = mfal_cli(argv)
        assert code == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "state.json" in lines[0] and "invalid JSON" in lines[0], err
