"""Typed labeler configs: a discriminated union on ``kind``, validated when the config is read."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from mfal.config_io import validation_message
from mfal.errors import ConfigError
from mfal.label.config import (
    Cp2kLabelerConfig,
    LabelerSpec,
    ReplayLabelerConfig,
    TeacherLabelerConfig,
    VaspLabelerConfig,
    build_labeler,
    parse_labeler_spec,
)


class _Labelers(BaseModel):
    """Stand-in for the campaign config's ``labelers:`` section."""

    lf: LabelerSpec
    hf: LabelerSpec


class _Campaign(BaseModel):
    labelers: _Labelers


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        ({"kind": "teacher"}, TeacherLabelerConfig),
        ({"kind": "teacher", "options": {"cost_exponent": 2.0, "fail_rate": 0.1}}, TeacherLabelerConfig),
        ({"kind": "vasp", "options": {"cores": 16}, "cost_per_label": 14400}, VaspLabelerConfig),
        ({"kind": "cp2k", "options": {"omp_threads": 2}, "cost_per_label": 190}, Cp2kLabelerConfig),
        ({"kind": "replay", "options": {"dataset": "pool.extxyz"}, "chunk_size": 16}, ReplayLabelerConfig),
    ],
)
def test_each_kind_validates(data, cls):
    spec = parse_labeler_spec(data)
    assert isinstance(spec, cls) and spec.kind == data["kind"]
    assert spec.chunk_size == data.get("chunk_size", 1)


def test_typo_in_an_option_names_the_field():
    """The YAML shape of today; a typo fails at config read with labelers.hf.options.<field>."""
    good = {"lf": {"kind": "teacher"}, "hf": {"kind": "cp2k", "options": {"max_scf": 30}}}
    cfg = _Campaign(labelers=good)
    assert cfg.labelers.hf.options.max_scf == 30 and cfg.labelers.lf.kind == "teacher"
    bad = {"lf": {"kind": "teacher"}, "hf": {"kind": "cp2k", "options": {"max_scff": 30}}}
    with pytest.raises(ValidationError) as err:
        _Campaign(labelers=bad)
    msg = validation_message(err.value, "campaign.yaml")
    assert msg == "campaign.yaml: field labelers.hf.options.max_scff: unknown key"
    with pytest.raises(ConfigError, match=r"^field labelers\.hf\.options\.max_scff: unknown key$"):
        parse_labeler_spec(bad["hf"], "labelers.hf")
    with pytest.raises(ConfigError, match=r"labelers\.lf\.options\.cores"):
        parse_labeler_spec({"kind": "vasp", "options": {"cores": 0}}, "labelers.lf")
    with pytest.raises(ConfigError, match=r"labelers\.hf\.options\.fidelities\.hf\.model: Field required"):
        opts = {"fidelities": {"hf": {"modle": "0.3.0", "magmoms": True, "cost_ref": 1.0}}}
        parse_labeler_spec({"kind": "teacher", "options": opts}, "labelers.hf")


def test_unknown_kind_and_missing_replay_source():
    with pytest.raises(ConfigError, match="labelers.hf.*'teacher', 'vasp', 'cp2k', 'replay'"):
        parse_labeler_spec({"kind": "gaussian"}, "labelers.hf")
    with pytest.raises(ConfigError, match="options"):
        parse_labeler_spec({"kind": "replay"}, "labelers.hf")
    with pytest.raises(ConfigError, match="dataset=FILE"):
        parse_labeler_spec({"kind": "replay", "options": {"tol": 0.01}}, "labelers.hf")
    with pytest.raises(ConfigError, match="chunk_size"):
        parse_labeler_spec({"kind": "teacher", "chunk_size": 0}, "labelers.hf")


def test_prior_cost():
    """cost_per_label (28-atom cell) scales with the atom count; teacher falls back to its own cost model."""
    cp2k = parse_labeler_spec({"kind": "cp2k", "cost_per_label": 190})
    assert cp2k.prior_cost(28, "lf") == pytest.approx(190) and cp2k.prior_cost(56, "lf") == pytest.approx(380)
    teacher = parse_labeler_spec({"kind": "teacher", "options": {"cost_exponent": 2.0}})
    assert teacher.prior_cost(28, "hf") == pytest.approx(270) and teacher.prior_cost(
        56, "hf"
    ) == pytest.approx(1080)
    assert parse_labeler_spec({"kind": "vasp"}).prior_cost(28, "hf") == pytest.approx(3600)


def test_build_labeler_uses_the_typed_options():
    from mfal.label.cp2k import Cp2kLabeler
    from mfal.label.teacher import TeacherLabeler

    lab = build_labeler({"kind": "cp2k", "options": {"cutoff_ry": 500, "quality": {"max_force": 30}}})
    assert isinstance(lab, Cp2kLabeler) and lab.settings.cutoff_ry == 500 and lab.quality.max_force == 30
    teacher = build_labeler(TeacherLabelerConfig(options={"batch_size": 2}))
    assert isinstance(teacher, TeacherLabeler) and teacher.config.batch_size == 2


def test_get_labeler_validates_like_the_config():
    from mfal.label import get_labeler

    with pytest.raises(ConfigError, match=r"^cp2k labeler: field options\.max_scff: unknown key$"):
        get_labeler("cp2k", max_scff=3)
    with pytest.raises(ConfigError, match="not in known labelers"):
        get_labeler("gaussian")
