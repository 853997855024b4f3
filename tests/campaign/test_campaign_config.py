"""Bad campaign configs fail with one line naming the field, and nothing is run or written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mfal.campaign.config import load_config
from mfal.errors import ConfigError


def test_demo_configs_are_valid():
    root = Path(__file__).parents[2] / "configs"
    for name in ("demo.yaml", "vasp.yaml", "cp2k.yaml"):
        cfg = load_config(root / name)
        assert cfg.ensemble.k >= 3 and cfg.stop.max_rounds >= 3
    demo = load_config(root / "demo.yaml")
    assert demo.labelers["lf"].kind == demo.labelers["hf"].kind == "teacher"
    comps = {s.mn_fraction for s in demo.start_structures} | {s.li_fraction for s in demo.start_structures}
    assert comps > {0.0, 1.0}  # Mn-substituted and delithiated starts
    for name in ("demo.yaml", "smoke.yaml"):  # the demo can show learning: its warm start is neither teacher
        cfg = load_config(root / name)
        teachers = {cfg.teacher_model(f) for f in cfg.fidelities.names}
        assert cfg.train.warm_start == "scratch" or cfg.train.pretrained_version not in teachers
        assert not cfg.allow_teacher_warm_start


def test_warm_start_from_the_hf_teacher_is_refused(tmp_path, make_config, save_config):
    def make(**kw):
        cfg = make_config(tmp_path, **kw)
        cfg.pop("allow_teacher_warm_start", None)  # the tiny test config opts out of the check
        return cfg

    cfg = make()
    cfg["train"].update(warm_start="pretrained", pretrained_version="0.3.0")  # the default HF teacher's model
    with pytest.raises(ConfigError) as err:
        load_config(save_config(tmp_path, cfg))
    msg = str(err.value)
    assert "\n" not in msg and "field train.pretrained_version='0.3.0'" in msg and "hf teacher" in msg
    assert "allow_teacher_warm_start" in msg
    named = make()
    named["train"].update(warm_start="0.3.0")  # the same model named directly
    with pytest.raises(ConfigError, match=r"field train\.warm_start='0\.3\.0' is the hf teacher's model"):
        load_config(save_config(tmp_path, named))
    cfg["allow_teacher_warm_start"] = True
    assert load_config(save_config(tmp_path, cfg)).allow_teacher_warm_start
    for train in ({"pretrained_version": "r2scan"}, {"warm_start": "scratch"}):  # not the teacher: fine
        ok = make()
        ok["train"].update(train)
        load_config(save_config(tmp_path, ok))
    other = make()  # a teacher pair with another HF model: 0.3.0 is then a fair warm start
    other["labelers"]["hf"]["options"] = {
        "fidelities": {
            "lf": {"model": "0.2.0", "magmoms": False, "cost_ref": 190.0},
            "hf": {"model": "r2scan", "magmoms": True, "cost_ref": 270.0},
        }
    }
    other["train"]["pretrained_version"] = "0.3.0"
    load_config(save_config(tmp_path, other))
    other["train"]["pretrained_version"] = "r2scan"
    with pytest.raises(ConfigError, match="'r2scan' is the hf teacher"):
        load_config(save_config(tmp_path, other))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.update(ratio_faild=0.1), r"field ratio_faild: unknown key"),
        (lambda c: c["ensemble"].update(k="three"), r"field ensemble\.k: .*integer"),
        (lambda c: c["trust"]["hf"].update(lo=1.0, hi=0.5), r"field trust\.hf"),
        (
            lambda c: c.update(start_structures=[{"path": "nowhere.cif"}]),
            r"start_structures\.0\.path: .*nowhere\.cif.* not found",
        ),
        (lambda c: c["labelers"]["hf"].update(kind="gaussian"), r"labelers\.hf(\.kind)?: .*'gaussian'"),
        (lambda c: c["ensemble"].update(k=2), r"field ensemble\.k: .*greater than or equal to 3"),
        (
            lambda c: c["ensemble"].update(kind="independent", force_probes=1, force_spread="exact"),
            r"field ensemble: .*force_probes=1 needs kind: heads",
        ),
        (
            lambda c: c["ensemble"].update(k=3, force_probes=3, force_spread="exact"),
            r"force_probes=3 must be <= k - 1 = 2",
        ),
        (
            lambda c: c["ensemble"].update(force_probes=1),
            r"force_probes=1 sketches the exact spread: set force_spread: exact",
        ),
    ],
)
def test_bad_config_one_line_nothing_run(tmp_path, mfal_cli, mutate, expected, make_config, save_config):
    cfg = make_config(tmp_path, allow_teacher_warm_start=True)
    mutate(cfg)
    path = save_config(tmp_path, cfg, "bad.yaml")
    run_dir = tmp_path / "run"
    code, out, err = mfal_cli(["run", str(path), "--dir", str(run_dir), "-q"])
    assert code == 2  # the CLI error contract: exit 2 for config errors
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mfal: error: ") and str(path) in lines[0]
    import re

    assert re.search(expected, lines[0]), lines[0]
    assert not run_dir.exists()


def test_python_object_tag_is_refused(tmp_path, mfal_cli, make_config):
    path = tmp_path / "evil.yaml"
    text = yaml.safe_dump(make_config(tmp_path), sort_keys=False)
    path.write_text(
        text + "extra: !!python/object/apply:os.system ['touch " + str(tmp_path / "pwned") + "']\n"
    )
    code, _, err = mfal_cli(["run", str(path), "--dir", str(tmp_path / "run")])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "python/" in err and "line " in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "run").exists()
    with pytest.raises(ConfigError):
        load_config(path)


def test_other_config_in_existing_dir_is_refused(tmp_path, make_config, save_config):
    from mfal.campaign.prepare import prepare

    path = save_config(tmp_path, make_config(tmp_path, allow_teacher_warm_start=True))
    prepare(path, tmp_path / "run")
    assert (tmp_path / "run" / "campaign.yaml").is_file() and (tmp_path / "run" / "state.json").is_file()
    prepare(path, tmp_path / "run")  # same config: resume is fine
    other = save_config(tmp_path, make_config(tmp_path, seed=99, allow_teacher_warm_start=True), "other.yaml")
    with pytest.raises(Exception, match="different config.*seed"):
        prepare(other, tmp_path / "run")


def test_scorer_options_apply_only_to_shared_trunk_ensembles():
    """``ensemble.force_spread`` / ``force_probes`` reach scoring for a shared-trunk ensemble (probes capped at
    K - 1); independent members are always scored exactly. Default: last-layer contrasts."""
    from types import SimpleNamespace

    from mfal.campaign.config import CampaignEnsemble

    heads = SimpleNamespace(shared_trunk=True, members=[0, 1, 2])
    independent = SimpleNamespace(shared_trunk=False, members=[0, 1, 2])
    exact = {"force_spread": "exact"}
    assert CampaignEnsemble(force_probes=2, **exact).scorer_for(heads) == {"force_probes": 2, **exact}
    assert CampaignEnsemble(k=5, force_probes=4, **exact).scorer_for(heads)["force_probes"] == 2  # 3 loaded: K - 1
    assert CampaignEnsemble(force_probes=2, **exact).scorer_for(independent) == {"force_probes": None, **exact}
    assert CampaignEnsemble().scorer_for(heads) == {"force_probes": None, "force_spread": "last_layer"}
    assert CampaignEnsemble().scorer_for(independent) == {"force_probes": None, **exact}
