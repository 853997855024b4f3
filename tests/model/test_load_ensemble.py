"""load_ensemble: the one loader of trained members from (path, sha256) refs, every sha256 checked."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

from mfal.errors import ConfigError, DataError
from mfal.model import MFEnsemble, load_ensemble


@pytest.fixture(scope="module")
def saved(_mf_pretrained, tmp_path_factory):
    out = []
    root = tmp_path_factory.mktemp("ens")
    for seed in range(2):
        member = copy.deepcopy(_mf_pretrained)
        with __import__("torch").no_grad():
            member.readouts[0].layers[0].bias.add_(0.01 * (seed + 1))
        path = root / f"member_{seed}.pt"
        out.append((path, member.save(path)))
    return out


def test_pairs_mappings_and_objects_load_the_same_members(saved):
    ens = load_ensemble(saved, "cpu")
    assert isinstance(ens, MFEnsemble) and len(ens.members) == 2 and ens.fidelities == ("lf", "hf")
    as_dicts = load_ensemble([{"path": str(p), "sha256": s} for p, s in saved], device="cpu")
    as_objects = load_ensemble([SimpleNamespace(path=p, sha256=s) for p, s in saved])
    as_results = load_ensemble([SimpleNamespace(checkpoint=p, sha256=s) for p, s in saved])
    for other in (as_dicts, as_objects, as_results):
        for a, b in zip(ens.members, other.members, strict=True):
            assert all((a.state_dict()[k] == v).all() for k, v in b.state_dict().items())
    assert len(load_ensemble(saved[0]).members) == 1  # one bare pair


def test_bad_refs_fail_with_one_line(saved):
    (path, sha), _ = saved
    with pytest.raises(DataError, match="sha256"):
        load_ensemble([(path, "0" * 64)])
    with pytest.raises(ConfigError, match="64-hex sha256"):
        load_ensemble([(path, None)])
    with pytest.raises(ConfigError, match="no checkpoint refs"):
        load_ensemble([])
    with pytest.raises(ConfigError, match="not a path"):
        load_ensemble(str(path))
    with pytest.raises(ConfigError, match="resolve it first"):
        load_ensemble([SimpleNamespace(path=lambda root: path, sha256=sha)])
    with pytest.raises(DataError, match="does not exist"):
        load_ensemble([(path.with_name("missing.pt"), sha)])
