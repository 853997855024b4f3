"""Exploration: seeded, tagged, stable candidate ids; substitution/delithiation compositions; MD snapshots."""

from __future__ import annotations

import pytest

from mfal.errors import ConfigError
from mfal.explore import ExploreConfig, StartStructure, explore, load_start_structures
from mfal.store.docs import structure_fingerprint


def _cfg(**kw) -> ExploreConfig:
    base = {
        "rattle": {"n": 2, "stdev": 0.03},
        "strain": {"n": 1, "max_strain": 0.02},
        "substitution": {"fractions": [0.5], "n": 1},
        "delithiation": {"fractions": [0.75], "n": 1},
    }
    base.update(kw)
    return ExploreConfig.model_validate(base)


def test_start_structures_compositions(tmp_path, lifepo4):
    specs = [
        StartStructure(builtin="lifepo4"),
        StartStructure(builtin="lifepo4", mn_fraction=0.25),
        StartStructure(builtin="lifepo4", li_fraction=0.5),
    ]
    s0, s1, s2 = load_start_structures(specs, tmp_path, seed=1)
    assert s0.composition.reduced_formula == "LiFePO4" and len(s0) == 28
    assert s1.composition["Mn"] == 1 and s1.composition["Fe"] == 3
    assert s2.composition["Li"] == 2 and len(s2) == 26
    assert s0.properties["candidate_id"] == structure_fingerprint(s0)
    # file start structure, relative to the config folder
    lifepo4.to(filename=str(tmp_path / "x.cif"))
    (s3,) = load_start_structures([StartStructure(path="x.cif")], tmp_path)
    assert s3.composition == lifepo4.composition
    with pytest.raises(ConfigError, match=r"start_structures\[0\]\.path.*missing.cif"):
        load_start_structures([StartStructure(path="missing.cif")], tmp_path)


def test_explore_is_seeded_and_tagged(tmp_path):
    bases = load_start_structures([StartStructure(builtin="lifepo4")], tmp_path)
    a = explore(bases, _cfg(), seed=3)
    b = explore(bases, _cfg(), seed=3)
    c = explore(bases, _cfg(), seed=4)
    ids = [s.properties["candidate_id"] for s in a]
    assert ids == [s.properties["candidate_id"] for s in b]
    assert ids != [s.properties["candidate_id"] for s in c]
    assert len(a) == 2 + 1 + 1 + 1 and len(set(ids)) == len(ids)
    assert all(i == structure_fingerprint(s) for i, s in zip(ids, a, strict=True))
    origins = [s.properties["origin"] for s in a]
    assert sum(o.startswith("Mn0.5") for o in origins) == 1
    mn = next(s for s in a if s.properties["origin"].startswith("Mn"))
    assert mn.composition["Mn"] == 2 and mn.composition["Fe"] == 2
    li = next(s for s in a if s.properties["origin"].startswith("Li"))
    assert li.composition["Li"] == 3
    # rattles actually move atoms
    assert max(abs(a[0].cart_coords - bases[0].cart_coords).ravel()) > 0.01
    capped = explore(bases, _cfg(max_candidates=3), seed=3)
    assert len(capped) == 3 and {s.properties["candidate_id"] for s in capped} <= set(ids)


@pytest.mark.slow
def test_md_snapshots_with_the_mf_model(tmp_path, lifepo4):
    """MD driven by a real MF-CHGNet checkpoint (pretrained warm start) through MFCHGNetCalculator, as in
    the campaign."""
    from mfal.model import MFCHGNet, MFCHGNetCalculator

    sha = MFCHGNet.from_pretrained().save(tmp_path / "m.pt")
    calc = MFCHGNetCalculator(tmp_path / "m.pt", fidelity="hf", device="cpu", sha256=sha)
    cfg = _cfg(
        rattle={"n": 0},
        strain={"n": 0},
        substitution={"fractions": []},
        delithiation={"fractions": []},
        md={"temperatures": [600], "steps": 2, "snapshots": 2},
    )
    frames = explore([lifepo4], cfg, seed=0, calculator=calc)
    assert len(frames) == 2
    assert all(s.properties["origin"].startswith("md600K") for s in frames)
    assert frames[0].properties["candidate_id"] != frames[1].properties["candidate_id"]
    moved = abs(frames[1].cart_coords - lifepo4.cart_coords).max()
    assert 1e-4 < moved < 0.5  # atoms move, but 2 fs at 600 K is no explosion
    with pytest.raises(Exception, match="sha256"):
        MFCHGNetCalculator(tmp_path / "m.pt", fidelity="hf", device="cpu", sha256="0" * 64)
