"""validate_structure and FrameDoc: no frame with an unusable structure exists, whatever its status."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from mfal.errors import DataError
from mfal.store import FrameDoc, structure_fingerprint, validate_structure


def test_a_usable_structure_passes(lifepo4):
    validate_structure(lifepo4, "LiFePO4")
    magnetic = lifepo4.copy()
    magnetic.add_site_property("magmom", [4.0] * len(lifepo4))
    validate_structure(magnetic, "with moments")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Structure(Lattice.cubic(3.0), [], []), "structure has no sites"),
        (lambda: Structure(np.full((3, 3), np.nan), ["Fe"], [[0, 0, 0]]), "lattice has a non-finite value"),
        (lambda: Structure(np.zeros((3, 3)), ["Fe"], [[0, 0, 0]]), "lattice is singular"),
        (
            lambda: Structure(Lattice.cubic(3.0), ["Fe"], [[np.nan, 0, 0]]),
            "coordinates has a non-finite value",
        ),
        (lambda: Structure(Lattice.cubic(3.0), ["Xx"], [[0, 0, 0]]), "unknown element symbol 'Xx'"),
        (
            lambda: Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Mn": 0.5}], [[0, 0, 0]]),
            "site 0 is disordered",
        ),
        (
            lambda: Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]], site_properties={"magmom": [np.inf]}),
            "site property 'magmom' has a non-finite value",
        ),
    ],
)
def test_unusable_structures_are_one_line_naming_where(make, message):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns while building the broken lattices
        structure = make()
    with pytest.raises(DataError, match=rf"^start.cif structure 2: .*{message}") as err:
        validate_structure(structure, "start.cif structure 2")
    assert "\n" not in str(err.value)


def _doc(lifepo4) -> dict:
    return FrameDoc.from_structure(lifepo4, fidelity="lf", source="import", energy=-190.0).model_dump(
        mode="json"
    )


@pytest.mark.parametrize("status", ["ok", "quarantined"])
def test_frame_doc_refuses_non_finite_positions_for_any_status(lifepo4, status):
    data = _doc(lifepo4) | {
        "status": status,
        "status_reason": None if status == "ok" else "moments collapsed",
    }
    data["structure"]["sites"][3]["abc"] = [float("nan"), 0.0, 0.0]
    data["structure"]["sites"][3]["xyz"] = [float("nan"), 0.0, 0.0]
    with pytest.raises(
        ValueError, match=r"frame \w+: fractional coordinates has a non-finite value at index \(3, 0\)"
    ):
        FrameDoc.model_validate(data)


def test_structure_dict_without_lattice_is_a_clear_error(lifepo4):
    data = _doc(lifepo4)
    del data["structure"]["lattice"]
    with pytest.raises(
        ValueError, match=r"structure has no 'lattice'; expected a pymatgen Structure.as_dict\(\)"
    ):
        FrameDoc.model_validate(data)
    data = _doc(lifepo4)
    data["structure"]["sites"][0]["species"][0]["element"] = "Xx"
    with pytest.raises(ValueError, match=r"'Xx' is not a valid Element"):
        FrameDoc.model_validate(data)


def test_non_finite_cost_is_refused(lifepo4):
    with pytest.raises(ValueError, match=r"cost has a non-finite value"):
        FrameDoc.model_validate(_doc(lifepo4) | {"cost": float("nan")})


def test_structure_id_is_the_fingerprint_and_filled_for_old_documents(lifepo4):
    data = _doc(lifepo4)
    assert data["structure_id"] == structure_fingerprint(lifepo4)
    old = {k: v for k, v in data.items() if k != "structure_id"}  # written before structure_id existed
    assert FrameDoc.model_validate(old).structure_id == structure_fingerprint(lifepo4)
    stale = data | {"structure_id": "not-the-fingerprint"}
    assert FrameDoc.model_validate(stale).structure_id == structure_fingerprint(lifepo4)
