"""FrameDoc: the contract every labeled frame is stored under."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.store.docs import FrameDoc, make_frame_id


def test_frame_id_is_stable_and_depends_on_fidelity_and_calc(lifepo4):
    a = make_frame_id(lifepo4, "hf", {"code": "vasp", "ispin": 2})
    assert a == make_frame_id(lifepo4.copy(), "hf", {"ispin": 2, "code": "vasp"})
    assert a != make_frame_id(lifepo4, "lf", {"code": "vasp", "ispin": 2})
    assert a != make_frame_id(lifepo4, "hf", {"code": "vasp", "ispin": 1})
    moved = lifepo4.copy()
    moved.translate_sites([0], [0.01, 0, 0])
    assert a != make_frame_id(moved, "hf", {"code": "vasp", "ispin": 2})


def test_ok_frame_derives_fields_and_round_trips_json(lifepo4):
    n = len(lifepo4)
    doc = FrameDoc.from_structure(
        lifepo4, fidelity="hf", source="teacher", energy=-190.0, forces=np.zeros((n, 3)), magmoms=[0.0] * n
    )
    assert doc.fidelity_index == 2 and doc.formula == "LiFePO4" and doc.nsites == 28
    assert doc.energy_per_atom == pytest.approx(-190.0 / 28)
    again = FrameDoc.model_validate_json(doc.model_dump_json())
    assert again == doc


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"energy": float("nan")}, "energy is not finite"),
        ({"forces": np.zeros((3, 3))}, "forces has shape (3, 3), expected (28, 3)"),
        ({"forces": np.full((28, 3), np.inf)}, "forces contains NaN or inf"),
        ({"magmoms": [0.0] * 5}, "magmoms has shape (5,), expected (28,)"),
    ],
)
def test_bad_labels_are_rejected_naming_the_frame(lifepo4, bad, message):
    with pytest.raises(ValueError, match=r"frame \w+: " + message.replace("(", r"\(").replace(")", r"\)")):
        FrameDoc.from_structure(lifepo4, fidelity="lf", source="import", **({"energy": -1.0} | bad))


def test_failed_frame_needs_a_reason(lifepo4):
    with pytest.raises(ValueError, match="needs a status_reason"):
        FrameDoc.from_structure(lifepo4, fidelity="hf", source="vasp", status="failed")
    doc = FrameDoc.from_structure(
        lifepo4, fidelity="hf", source="vasp", status="quarantined", status_reason="Fe moments collapsed"
    )
    assert doc.energy is None and doc.status_reason == "Fe moments collapsed"
