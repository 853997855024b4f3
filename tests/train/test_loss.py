"""Masked loss: missing labels contribute nothing; magmom loss only where moments exist."""

from __future__ import annotations

import pytest
import torch

from mfal.train.data import Batch, FrameDataset
from mfal.train.loss import LossConfig, LossWeights, MFLoss


def _batch(with_m: list[bool], n: int = 3) -> Batch:
    torch.manual_seed(0)
    return Batch(
        graphs=[None] * len(with_m),
        fidelity=torch.tensor([2 if m else 1 for m in with_m]),
        fidelities=["hf" if m else "lf" for m in with_m],
        energy=torch.tensor([-6.0, float("nan"), -5.5][: len(with_m)]),
        forces=[torch.randn(n, 3) for _ in with_m],
        stress=[torch.randn(3, 3) if i == 0 else None for i in range(len(with_m))],
        magmoms=[torch.rand(n) * 4 if m else None for m in with_m],
        frame_ids=[f"f{i}" for i in range(len(with_m))],
    )


def _g(t: torch.Tensor) -> torch.Tensor:
    """Gradient of a leaf tensor, zeros if autograd never reached it."""
    return torch.zeros_like(t) if t.grad is None else t.grad


def _prediction(batch: Batch, n: int = 3) -> dict:
    k = len(batch)
    return {
        "e": torch.zeros(k, requires_grad=True),
        "f": [torch.zeros(n, 3, requires_grad=True) for _ in range(k)],
        "s": [torch.zeros(3, 3, requires_grad=True) for _ in range(k)],
        "m": [torch.zeros(n, requires_grad=True) for _ in range(k)],
    }


@pytest.mark.parametrize("criterion", ["huber", "mse"])
def test_missing_labels_give_zero_gradient(criterion):
    batch = _batch([True, False, True])
    pred = _prediction(batch)
    out = MFLoss(LossConfig(criterion=criterion))(pred, batch)
    out["loss"].backward()
    # frame 1: no energy, no stress, no moments -> no gradient from those terms
    assert _g(pred["e"])[1] == 0 and _g(pred["e"])[0] != 0 and _g(pred["e"])[2] != 0
    assert torch.all(_g(pred["m"][1]) == 0)
    assert torch.all(_g(pred["m"][0]) != 0) and torch.all(_g(pred["m"][2]) != 0)
    assert torch.all(_g(pred["s"][1]) == 0) and torch.any(_g(pred["s"][0]) != 0)
    assert torch.all(_g(pred["f"][1]) != 0)  # forces exist for every frame


def test_terms_match_torch_reference():
    batch = _batch([True, False])
    pred = _prediction(batch)
    cfg = LossConfig(criterion="mse", weights=LossWeights(e=1.0, f=2.0, s=0.5, m=0.25))
    out = MFLoss(cfg)(pred, batch)
    e_ref = (batch.energy[0] ** 2).item()  # only frame 0 has an energy
    f_ref = torch.cat([f.reshape(-1) for f in batch.forces]).pow(2).mean().item()
    s_ref = batch.stress[0].pow(2).mean().item()
    m_ref = batch.magmoms[0].pow(2).mean().item()
    assert out["e"].item() == pytest.approx(e_ref, rel=1e-5)
    assert out["f"].item() == pytest.approx(f_ref, rel=1e-5)
    assert out["loss"].item() == pytest.approx(e_ref + 2 * f_ref + 0.5 * s_ref + 0.25 * m_ref, rel=1e-5)


def test_per_fidelity_weights_scale_only_that_fidelity():
    batch = _batch([True, False])
    base = MFLoss(LossConfig(criterion="mse"))(_prediction(batch), batch)["loss"].item()
    zero_lf = LossConfig(criterion="mse", per_fidelity={"lf": LossWeights(e=0, f=0, s=0, m=0)})
    pred = _prediction(batch)
    out = MFLoss(zero_lf)(pred, batch)
    out["loss"].backward()
    assert torch.all(_g(pred["f"][1]) == 0) and torch.any(_g(pred["f"][0]) != 0)
    assert out["loss"].item() < base


def test_task_follows_weights():
    assert MFLoss(LossConfig()).task() == "efsm"
    assert MFLoss(LossConfig(weights=LossWeights(s=0, m=0))).task() == "ef"
    assert MFLoss(LossConfig()).task("efs") == "efs"


def test_frame_without_moments_gives_no_magmom_gradient_in_the_model(pretrained_mf, lf_frames, hf_frames):
    """Real MF-CHGNet: the magmom-only loss of an LF frame (no moments) is zero and leaves no gradient on the
    magmom head, while an HF frame with moments does produce one."""
    model = pretrained_mf
    cfg = LossConfig(weights=LossWeights(e=0, f=0, s=0, m=1))
    loss_fn = MFLoss(cfg)
    ds = FrameDataset.build([lf_frames[0], hf_frames[0]], model)
    head = [p for n, p in model.named_parameters() if n.startswith("site_wise")]
    assert head, "magmom head parameters not found"
    for idx, expect_grad in ((0, False), (1, True)):
        model.zero_grad(set_to_none=True)
        batch = ds.batch([idx])
        pred = model.forward(batch.graphs, batch.fidelity, task="em", is_training=True)
        out = loss_fn(pred, batch)
        if not expect_grad:
            assert "m" not in out and out["loss"].item() == 0.0
            assert not out["loss"].requires_grad or all(p.grad is None for p in head)
            continue
        out["loss"].backward()
        assert out["m"].item() > 0
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head)
    model.zero_grad(set_to_none=True)
