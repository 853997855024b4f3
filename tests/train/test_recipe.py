"""Recipe knobs of the trainer: per-fidelity loss balance, trunk vs head learning rates, the cosine schedule,
warm start by pretrained model name."""

from __future__ import annotations

import math

import pytest
import torch

from mfal.train.config import TrainConfig
from mfal.train.loop import HEAD_PREFIXES, cosine_schedule, param_groups
from mfal.train.loss import LossConfig, LossWeights, MFLoss, balance_scale, frame_scale


class _Batch:
    """Minimal stand-in for mfal.train.data.Batch (only the fields MFLoss reads)."""

    def __init__(self, fidelities, n_atoms=2):
        self.fidelities = fidelities
        self.energy = torch.zeros(len(fidelities))
        self.forces = [torch.zeros(n_atoms, 3) for _ in fidelities]
        self.stress = [None for _ in fidelities]
        self.magmoms = [None for _ in fidelities]


def test_balance_scale_equalises_fidelity_totals():
    s = balance_scale({"lf": 100, "hf": 25}, 1.0)
    assert 100 * s["lf"] == pytest.approx(25 * s["hf"])
    assert (100 * s["lf"] + 25 * s["hf"]) / 125 == pytest.approx(1.0)  # mean frame weight 1
    assert balance_scale({"lf": 100, "hf": 25}, 0.0) == {"lf": 1.0, "hf": 1.0}
    half = balance_scale({"lf": 100, "hf": 25}, 0.5)
    assert half["hf"] / half["lf"] == pytest.approx(2.0)


def test_balance_changes_the_gradient_ratio_between_fidelities():
    """4 LF frames and 1 HF frame with equal errors: per frame, LF gets 4× HF's total gradient; balanced, equal."""
    fids = ["lf"] * 4 + ["hf"]
    batch = _Batch(fids)

    def grad_share(alpha: float) -> float:
        f = [torch.full((2, 3), 0.05, requires_grad=True) for _ in fids]
        pred = {"e": torch.zeros(len(fids), requires_grad=True), "f": f}
        loss = MFLoss(LossConfig(), fidelity_scale=balance_scale({"lf": 4, "hf": 1}, alpha))
        loss(pred, batch)["loss"].backward()
        g = [float(t.grad.abs().sum()) for t in f]
        return sum(g[:4]) / g[4]

    assert grad_share(0.0) == pytest.approx(4.0)
    assert grad_share(1.0) == pytest.approx(1.0)


def test_lf_frame_weight_scales_every_lf_term_like_per_fidelity_weights():
    """``lf_frame_weight`` w: every LF term counts w × a HF frame's (the HF frames keep their weight); the same
    loss as ``loss.per_fidelity.lf`` = w × the default weights (the bench variant ``lfw25``)."""
    counts = {"lf": 74, "hf": 50}
    assert frame_scale(counts, 0.0, 0.25, "hf") == {"lf": 0.25, "hf": 1.0}
    bal = balance_scale(counts, 1.0)
    assert frame_scale(counts, 1.0, 0.5, "hf") == pytest.approx({"lf": bal["lf"] * 0.5, "hf": bal["hf"]})
    batch = _Batch(["lf", "lf", "hf"])
    batch.stress = [torch.ones(3, 3) for _ in range(3)]

    def loss_of(loss: MFLoss) -> float:
        torch.manual_seed(0)
        pred = {"e": torch.randn(3), "f": [torch.randn(2, 3) for _ in range(3)], "s": torch.randn(3, 3, 3)}
        return float(loss(pred, batch)["loss"])

    w = 0.25
    scaled = MFLoss(LossConfig(), fidelity_scale=frame_scale({"lf": 2, "hf": 1}, 0.0, w, "hf"))
    d = LossWeights()
    per_fid = MFLoss(LossConfig(per_fidelity={"lf": LossWeights(e=w * d.e, f=w * d.f, s=w * d.s, m=w * d.m)}))
    assert loss_of(scaled) == pytest.approx(loss_of(per_fid))
    assert loss_of(scaled) < loss_of(MFLoss(LossConfig()))
    assert TrainConfig().lf_frame_weight == 0.25  # the recipe default (docs/benchmarks.md)


def test_param_groups_split_readouts_fidelity_switches_and_trunk():
    from mfal.model import MFCHGNet

    torch.manual_seed(0)
    model = MFCHGNet(components="EMRC")
    groups = param_groups(model, 1e-3, 0.1, fidelity_lr_factor=10.0)
    by_name = {g["name"]: g for g in groups}
    assert by_name["readouts"]["lr"] == 1e-3 and by_name["trunk"]["lr"] == pytest.approx(1e-4)
    assert by_name["fidelity"]["lr"] == pytest.approx(1e-2)
    ids = {k: {id(p) for p in g["params"]} for k, g in by_name.items()}
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert (id(p) in ids["fidelity"]) == name.startswith(("fidelity_embedding.", "fidelity_columns.")), name
            assert (id(p) in ids["trunk"]) == (not name.startswith(HEAD_PREFIXES)), name
    assert any(n.startswith("readouts.1.") for n, _ in model.named_parameters())
    n_groups = sum(len(g["params"]) for g in groups)
    assert n_groups == sum(1 for p in model.parameters() if p.requires_grad)


def test_cosine_schedule_scales_every_group_and_resumes():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.1}])
    sched = cosine_schedule(opt, 4, 0.05)
    lrs = []
    for _ in range(4):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    want = [0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert [a for a, _ in lrs] == pytest.approx(want)
    assert [b for _, b in lrs] == pytest.approx([0.1 * w for w in want])
    # a resumed stage at epoch 2 continues the same curve
    opt2 = torch.optim.Adam([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.1}])
    cosine_schedule(opt2, 4, 0.05)
    cosine_schedule(opt2, 4, 0.05, last_epoch=1)
    assert opt2.param_groups[0]["lr"] == pytest.approx(want[2])


def test_warm_start_by_pretrained_name():
    from mfal.train.build import build_model, warm_start_name

    cfg = TrainConfig(warm_start="r2scan")
    model = build_model(cfg)
    assert model.model_args["pretrained_version"] == "r2scan" and warm_start_name(cfg) == "r2scan"
    assert warm_start_name(TrainConfig()) == "0.3.0"


def test_trunk_lr_default_depends_on_the_start():
    from mfal.train.config import WARM_TRUNK_LR_FACTOR

    assert TrainConfig(warm_start="scratch").trunk_lr() == 1.0
    assert TrainConfig().trunk_lr() == WARM_TRUNK_LR_FACTOR
    assert TrainConfig(warm_start="scratch", trunk_lr_factor=0.3).trunk_lr() == 0.3


FAST = {"pretrained_version": "0.2.0", "batch_size": 4, "patience": None, "eval_batch_size": 8, "fit_atomref": False}


def _train_with_snapshots(cfg, lf_frames, hf_frames):
    """Train on 3 LF + 2 HF frames (val 1 + 1); returns (start weights, weights after every epoch, result, the
    stages of the run)."""
    from mfal.train.build import build_model
    from mfal.train.data import FrameDataset
    from mfal.train.trainer import stages_of, train_on_datasets

    model = build_model(cfg)
    train = FrameDataset.build(lf_frames[:3] + hf_frames[:2], model, magnetic_fidelities=cfg.magnetic_fidelities)
    val = FrameDataset.build(lf_frames[-1:] + hf_frames[-1:], model, magnetic_fidelities=cfg.magnetic_fidelities)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    snaps: list[dict[str, torch.Tensor]] = []

    def snap(row):
        snaps.append({k: v.detach().clone() for k, v in model.named_parameters()})

    res = train_on_datasets(model, train, val, cfg, callback=snap)
    return start, snaps, res, stages_of(cfg, train, val)


def test_head_warmup_stage_moves_only_the_fidelity_parameters(lf_frames, hf_frames):
    """``head_warmup_epochs``: a frozen-trunk "heads" stage first (readouts, E, M learn, the trunk does not),
    then the joint "main" stage moves the trunk too."""
    cfg = TrainConfig(mode="mf", epochs=1, head_warmup_epochs=1, **FAST)
    start, (heads_done, main_done), res, _ = _train_with_snapshots(cfg, lf_frames, hf_frames)
    assert [row["stage"] for row in res.history] == ["heads", "main"]
    moved = {k for k in start if not torch.equal(start[k], heads_done[k])}
    assert moved and all(k.startswith(HEAD_PREFIXES) for k in moved), sorted(moved)[:5]
    trunk = [k for k in start if not k.startswith(HEAD_PREFIXES)]
    assert any(not torch.equal(heads_done[k], main_done[k]) for k in trunk)  # the joint stage trains it
    assert TrainConfig().head_warmup_epochs == 0  # off by default


def test_hf_finetune_stage_trains_on_target_frames_only(lf_frames, hf_frames):
    """``hf_finetune_epochs``: after the joint stage a last stage "hf-fine" sees only HF frames, so the LF head
    (its readout and E row) no longer moves while the shared trunk and the HF head do."""
    cfg = TrainConfig(mode="mf", epochs=1, hf_finetune_epochs=1, lr=1e-3, **FAST)
    _, (main_done, fine_done), res, stages = _train_with_snapshots(cfg, lf_frames, hf_frames)
    fine = stages[-1]
    assert (fine.name, fine.role, len(fine.train)) == ("hf-fine", "fine", 2)
    assert [row["stage"] for row in res.history] == ["main", "hf-fine"]
    changed = {k for k in main_done if not torch.equal(main_done[k], fine_done[k])}
    lf_readout = {k for k in main_done if k.startswith("readouts.0.")}
    assert changed and not changed & lf_readout
    assert any(k.startswith("readouts.1.") for k in changed)
    assert any(not k.startswith(HEAD_PREFIXES) for k in changed)  # the trunk moves too
    emb = "fidelity_embedding.weight"  # E rows: a new optimizer per stage leaves the unused LF row alone
    assert torch.equal(main_done[emb][0], fine_done[emb][0]) and not torch.equal(main_done[emb][1], fine_done[emb][1])
    assert TrainConfig().hf_finetune_epochs == 0  # off by default


def _toy_step(lf_label: float, hf_label: float):
    """One LF and one HF frame predicted by a shared parameter ``w`` (+ an LF-only head ``h`` for the LF frame)."""
    w = torch.zeros(2, 3, requires_grad=True)
    h = torch.zeros(2, 3, requires_grad=True)
    batch = _Batch(["lf", "hf"])
    batch.forces = [torch.full((2, 3), lf_label), torch.full((2, 3), hf_label)]
    pred = {"e": torch.zeros(2) + 0.0 * w.sum(), "f": [w + h, w]}
    return w, h, batch, pred


def test_gradient_projection_drops_only_the_lf_part_that_opposes_hf():
    """LF wants the shared parameter down, HF wants it up: projected, the shared gradient is HF's alone (the
    plain sum would cancel), while the LF-only head keeps its LF gradient; without a conflict it is the sum."""
    from mfal.train.loop import projected_grads

    loss = MFLoss(LossConfig())
    scale = {"lf": 1.0, "hf": 1.0}
    w, h, batch, pred = _toy_step(-0.05, 0.05)
    info = projected_grads(loss, pred, batch, [w, h], [True, False], scale, "hf")
    assert info["projected"] == 1.0 and info["cos"] == pytest.approx(-1.0)
    w2, h2, batch2, pred2 = _toy_step(-0.05, 0.05)
    loss(pred2, batch2)["loss"].backward()
    assert float(w2.grad.abs().max()) == pytest.approx(0.0, abs=1e-9)  # the plain sum cancels
    only_hf = MFLoss(LossConfig(), fidelity_scale={"lf": 0.0, "hf": 1.0})
    w3, _, batch3, pred3 = _toy_step(-0.05, 0.05)
    only_hf(pred3, batch3)["loss"].backward()
    assert torch.allclose(w.grad, w3.grad) and float(w.grad.abs().max()) > 0
    assert torch.allclose(h.grad, h2.grad) and float(h.grad.abs().max()) > 0  # head: LF gradient untouched

    w, h, batch, pred = _toy_step(0.03, 0.05)  # same direction: no projection, the plain gradient
    info = projected_grads(loss, pred, batch, [w, h], [True, False], scale, "hf")
    assert info["projected"] == 0.0 and info["cos"] == pytest.approx(1.0)
    w2, h2, batch2, pred2 = _toy_step(0.03, 0.05)
    loss(pred2, batch2)["loss"].backward()
    assert torch.allclose(w.grad, w2.grad) and torch.allclose(h.grad, h2.grad)
    _, _, hf_only, pred = _toy_step(0.0, 0.05)
    hf_only.fidelities = ["hf", "hf"]
    assert projected_grads(loss, pred, hf_only, [w, h], [True, False], scale, "hf") is None  # one fidelity


def test_training_with_gradient_projection_records_the_trunk_cosine(lf_frames, hf_frames):
    """A real MF epoch with ``lf_gradient_projection``: every epoch row reports the mean HF/LF trunk-gradient
    cosine and the share of batches projected; without the option the rows have no such keys."""
    from mfal.train.trainer import train_model

    cfg = TrainConfig(
        epochs=1, lr=1e-3, batch_size=4, patience=None, pretrained_version="0.2.0", lf_gradient_projection=True
    )
    res = train_model(lf_frames[:4] + hf_frames[:4], hf_frames[-2:], cfg)
    [row] = res.history
    assert -1.0 <= row["grad_cos_mean"] <= 1.0 and 0.0 <= row["projected_fraction"] <= 1.0
    plain = train_model(lf_frames[:4] + hf_frames[:4], hf_frames[-2:], cfg.model_copy(update={"lf_gradient_projection": False}))
    assert "grad_cos_mean" not in plain.history[0]


def test_epoch_size_counts_oversampled_target_frames():
    from mfal.train.loop import epoch_size

    assert epoch_size(124, 50, 1.0) == 124
    assert epoch_size(124, 50, 2.0) == 174
    assert epoch_size(124, 50, 1.5) == 149  # the fractional part as a random subset of 25


def test_equal_step_budget_gives_sf_more_epochs_than_mf(lf_frames, hf_frames):
    """``steps``: the user's "train both equally". MF on 3 LF + 2 HF frames (batch 4: 2 batches per epoch) and SF
    on the 2 HF frames (1 batch) get the same optimizer-step budget, so SF runs twice MF's epochs; without it
    both run ``epochs``."""
    from mfal.train.build import build_model
    from mfal.train.data import FrameDataset
    from mfal.train.trainer import stages_of

    def main_epochs(**kw):
        cfg = TrainConfig(epochs=3, **FAST, **kw)
        model = build_model(cfg)
        train = FrameDataset.build(lf_frames[:3] + hf_frames[:2], model, magnetic_fidelities=cfg.magnetic_fidelities)
        val = FrameDataset.build(lf_frames[-1:] + hf_frames[-1:], model, magnetic_fidelities=cfg.magnetic_fidelities)
        return [(s.name, s.epochs) for s in stages_of(cfg, train, val)]

    assert main_epochs(mode="mf", steps=6) == [("main", 3)]
    assert main_epochs(mode="sf", steps=6) == [("main", 6)]
    assert main_epochs(mode="sf", steps=5) == [("main", 5)]
    assert main_epochs(mode="mf", steps=5) == [("main", 3)]  # at least the budget: ceil(5 / 2)
    assert main_epochs(mode="tl", steps=4) == [("lf", 3), ("hf", 4)]  # only the target stage follows the budget
    assert main_epochs(mode="sf") == [("main", 3)]
    assert TrainConfig().steps is None  # off by default


def test_step_budget_trains_that_many_optimizer_steps(lf_frames, hf_frames):
    """A real SF run with ``steps=3`` on 2 HF frames (batch 4) trains 3 epochs of one step each."""
    cfg = TrainConfig(mode="sf", epochs=1, steps=3, lr=1e-3, **FAST)
    _, snaps, res, _ = _train_with_snapshots(cfg, lf_frames, hf_frames)
    assert [row["epoch"] for row in res.history] == [0, 1, 2]
    assert len(snaps) == 3 and any(not torch.equal(snaps[0][k], snaps[2][k]) for k in snaps[0])
