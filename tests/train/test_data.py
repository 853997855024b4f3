"""Training data: only ok, finite, well-shaped frames become graphs + masked label tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfal.errors import DataError
from mfal.train.data import FrameDataset, check_frames


def test_ok_frames_pass_and_keep_order(lf_frames, hf_frames):
    frames = [lf_frames[0], hf_frames[0], lf_frames[1]]
    assert check_frames(frames, fidelities=("lf", "hf")) == frames


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"energy": math.nan}, "energy is not finite"),
        ({"energy": math.inf}, "energy is not finite"),
        ({"forces": [[0.0, 0.0, 0.0]] * 3}, "forces has shape (3, 3), expected (28, 3)"),
        ({"stress": [[0.0] * 3] * 2}, "stress has shape (2, 3), expected (3, 3)"),
        ({"magmoms": [0.0] * 27}, "magmoms has shape (27,), expected (28,)"),
        ({"status": "failed", "status_reason": "SCF not converged"}, "status='failed'"),
        ({"status": "quarantined", "status_reason": "|F| > 50 eV/Å"}, "only status 'ok'"),
        ({"fidelity": "xf"}, "fidelity='xf' not in model fidelities ['lf', 'hf']"),
        ({"energy": None, "forces": None, "stress": None, "magmoms": None}, "has no labels"),
    ],
)
def test_bad_frame_is_named(hf_frames, update, message):
    good = hf_frames[0]
    # model_copy skips FrameDoc's validation, like frames built with model_construct
    bad = good.model_copy(update=update | {"frame_id": "bad-frame-42"})
    with pytest.raises(DataError) as err:
        check_frames([good, bad], fidelities=("lf", "hf"))
    assert "bad-frame-42" in str(err.value)
    assert message in str(err.value)


def test_nan_force_component_is_named(hf_frames):
    forces = np.array(hf_frames[1].forces)
    forces[5, 2] = np.nan
    bad = hf_frames[1].model_copy(update={"forces": forces.tolist(), "frame_id": "nan-forces"})
    with pytest.raises(DataError, match="frame nan-forces: forces contains NaN or inf"):
        check_frames([bad])


def test_non_framedoc_rejected():
    with pytest.raises(DataError, match="training frame #0: expected a FrameDoc, got dict"):
        check_frames([{"energy": 1.0}])


def test_dataset_labels_and_masks(pretrained_mf, lf_frames, hf_frames):
    lf = lf_frames[0].model_copy(update={"stress": None})
    # moments on a non-magnetic fidelity are ignored; signed HF moments become magnitudes
    lf_with_m = lf_frames[1].model_copy(update={"magmoms": [1.0] * 28})
    signed = np.array(hf_frames[0].magmoms)
    signed[:4] *= -1
    hf = hf_frames[0].model_copy(update={"magmoms": signed.tolist(), "energy": None})
    ds = FrameDataset.build([lf, lf_with_m, hf], pretrained_mf)
    assert len(ds) == 3 and len(ds.graphs) == 3
    assert ds.fidelity_idx == [1, 1, 2]
    assert ds.energy[0] == pytest.approx(lf.energy / 28)
    assert math.isnan(ds.energy[2])
    assert ds.stress[0] is None and ds.stress[1].shape == (3, 3)
    assert ds.magmoms[0] is None and ds.magmoms[1] is None
    assert np.allclose(ds.magmoms[2].numpy(), np.abs(signed), atol=1e-6)
    assert ds.forces[2].shape == (28, 3)
    batch = ds.batch([2, 0])
    assert batch.fidelity.tolist() == [2, 1]
    assert batch.frame_ids == [hf.frame_id, lf.frame_id]
    sub = ds.subset([2, 2, 0])
    assert sub.graphs[0] is ds.graphs[2] and sub.graphs[1] is ds.graphs[2]  # views share the graphs
    assert ds.has_labels("m") and not ds.select_fidelity("lf").has_labels("m")


def test_dataset_rejects_bad_frame_by_name(pretrained_mf, lf_frames):
    bad = lf_frames[2].model_copy(update={"energy": math.nan, "frame_id": "lf-nan"})
    with pytest.raises(DataError, match="frame lf-nan: energy is not finite"):
        FrameDataset.build([lf_frames[0], bad], pretrained_mf)
