"""Checkpoints: round trip, sha256 check, refusal of pickled payloads (torch.load weights_only=True)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfal.errors import DataError
from mfal.model import MFCHGNet, file_sha256


class _Payload:
    """A Python object: torch.save pickles it, weights_only loading must refuse it."""

    def __init__(self) -> None:
        self.note = "not a tensor"


def test_round_trip_identical_predictions(mf_pretrained, perturb_fidelity_params, feo_cell, tmp_path):
    perturb_fidelity_params(mf_pretrained, "hf")
    sha = mf_pretrained.save(tmp_path / "m.pt")
    assert sha == file_sha256(tmp_path / "m.pt") and len(sha) == 64
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(payload) == {"model_args", "state_dict", "mfal_version"}
    loaded = MFCHGNet.load(tmp_path / "m.pt", sha256=sha)
    assert loaded.fidelities == mf_pretrained.fidelities and loaded.components == mf_pretrained.components
    for fidelity in ("lf", "hf"):
        a, b = mf_pretrained.predict(feo_cell, fidelity), loaded.predict(feo_cell, fidelity)
        assert a["e"] == b["e"]
        for key in ("f", "s", "m"):
            np.testing.assert_array_equal(a[key], b[key])


def test_pickled_payload_refused(mf_pretrained, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save(
        {
            "model_args": mf_pretrained.model_args,
            "state_dict": mf_pretrained.state_dict(),
            "extra": _Payload(),
        },
        path,
    )
    with pytest.raises(DataError, match="pickled"):
        MFCHGNet.load(path)


def test_sha256_mismatch_refused(mf_pretrained, tmp_path):
    sha = mf_pretrained.save(tmp_path / "m.pt")
    with pytest.raises(DataError, match="sha256"):
        MFCHGNet.load(tmp_path / "m.pt", sha256="0" * 64)
    with open(tmp_path / "m.pt", "ab") as fh:  # tampered after recording
        fh.write(b"x")
    with pytest.raises(DataError, match=sha[:8]):
        MFCHGNet.load(tmp_path / "m.pt", sha256=sha)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        MFCHGNet.load(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(DataError, match="model_args"):
        MFCHGNet.load(tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(DataError, match="text.pt"):
        MFCHGNet.load(tmp_path / "text.pt")


def test_three_fidelity_checkpoint(tmp_path, feo_cell):
    model = MFCHGNet.from_pretrained(fidelities=("a", "b", "c"), components="ER", magnetic_fidelities=("c",))
    model.save(tmp_path / "m3.pt")
    loaded = MFCHGNet.load(tmp_path / "m3.pt")
    assert loaded.fidelities == ("a", "b", "c") and loaded.magnetic_fidelities == ("c",)
    assert loaded.predict(feo_cell, "b", task="e")["e"] == model.predict(feo_cell, "b", task="e")["e"]


def test_default_fidelity_is_the_models_target_not_a_literal(feo_cell):
    """predict / the ASE calculator default to the model's last (target) fidelity, whatever its name."""
    from mfal.model import MFCHGNetCalculator

    model = MFCHGNet.from_pretrained(
        fidelities=("cheap", "dft"), components="R", magnetic_fidelities=("dft",)
    )
    with torch.no_grad():
        model.readouts[1].layers[0].bias.add_(0.1)  # make the two fidelities differ
    default = model.predict(feo_cell, task="e")["e"]
    assert (
        default
        == model.predict(feo_cell, "dft", task="e")["e"]
        != model.predict(feo_cell, "cheap", task="e")["e"]
    )
    assert MFCHGNetCalculator(model, device="cpu").fidelity == "dft"
