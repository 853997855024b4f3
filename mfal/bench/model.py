"""`mfal bench model`: MF-CHGNet cost against plain CHGNet 0.3.0, measured side by side in one run.

Ratios: the compared calls run back to back in rotating order, ``repeats`` times; the reported ratio is the
median of the per-repeat ratios of process CPU time (all torch threads), with wall-clock ratios alongside — on a
shared, oversubscribed machine wall time measures the scheduler as much as the code:

- ``mf_over_chgnet_forward``: energy + forces of the same rattled LiFePO4 cells (graph conversion included in
  both), MFCHGNet (EMRC, warm-started) / chgnet's CHGNet 0.3.0 ``predict_structure``;
- ``ensemble4_over_single``: K=4 ``predict_with_uncertainty`` / one model's energy+forces+magmoms; the ensemble is
  a shared-trunk readout ensemble (graphs built once, trunk run once, exact member forces from one batched
  backward). ``ensemble4_sketch_over_single``: the same with ``force_probes=1`` (force variance sketched with one
  random contrast, 2 backward passes instead of 4);
- calibration of both variants: Spearman rho of predicted force std vs true force error on held-out frames,
  after a tiny fine-tune of each member's readout (trunk frozen, bootstrap of a few training frames) towards a
  *different* pretrained model (CHGNet 0.2.0 with moments) used as the reference "truth" — a surrogate, not DFT;
- ``scorer_over_single``: **the scorer the campaign uses** — ``mfal.uncertainty.score_candidates`` with K members
  of the campaign's default ensemble kind (trained by ``train_ensemble`` on teacher frames) and its default
  ``force_spread`` (last-layer member contrasts), both fidelities, energy + forces + moments, graphs built
  once — / one single-fidelity CHGNet 0.3.0 ``predict_structure`` (task "efsm": chgnet has no "efm") of the
  same cells; the other kind alongside, with calibration of both kinds
  (Spearman ρ of force_std_max vs the true max force error of held-out teacher-labeled frames,
  :mod:`mfal.bench.kinds`);
- ``train_step_mf_over_chgnet``: one Adam step with an E+F+S loss on the same 4-cell batch (graphs prebuilt),
  MFCHGNet on a mixed LF/HF batch / plain CHGNet.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mfal.fidelity import HF  # the target fidelity of the default pair (the bench model has no config)

logger = logging.getLogger(__name__)

TARGETS = {
    "mf_over_chgnet_forward": 1.05,
    "ensemble4_over_single": 2.0,
    "scorer_over_single": 1.5,
    "train_step_mf_over_chgnet": 1.10,
}


def campaign_kind() -> str:
    """The ensemble kind a campaign trains by default (``ensemble.kind`` of the campaign config)."""
    from mfal.campaign.config import CampaignEnsemble

    return str(CampaignEnsemble().kind)


def scorer_timing(cells: list, chgnet: Any, ensembles: dict[str, Any], repeats: int) -> dict[str, Any]:
    """``score_candidates`` (all fidelities, graphs built once inside) of each ensemble vs one CHGNet
    ``predict_structure(task="efsm")`` (chgnet has no "efm" task) of the same ``cells``, rotated side by side (see :func:`_timed`)."""
    from mfal.bench.kinds import campaign_scorer
    from mfal.uncertainty import score_candidates

    n = len(cells)
    fns: dict[str, Callable[[], Any]] = {
        "chgnet": lambda: chgnet.predict_structure(cells, task="efsm", batch_size=n)
    }
    for kind, ens in ensembles.items():
        fns[kind] = lambda e=ens: score_candidates(
            e, cells, e.fidelities, batch_size=n, **campaign_scorer(e)
        )
    for fn in fns.values():  # warm-up (allocator, lazy imports)
        fn()
    return _timed(fns, "chgnet", repeats)


def _rattled_cells(n: int, *, seed: int, amplitudes: tuple[float, float]) -> list:
    from mfal.explore.structures import lifepo4_structure

    base = lifepo4_structure()
    cells = []
    for i, amp in enumerate(np.linspace(*amplitudes, n)):
        cell = base.copy()
        cell.perturb(float(amp), seed=seed + i)
        cells.append(cell)
    return cells


def _timed(fns: dict[str, Callable[[], Any]], base: str, repeats: int) -> dict[str, dict[str, float]]:
    """Time each function ``repeats`` times, rotating the order every repeat.

    Returns per name: median wall and CPU seconds (``time.process_time``: all threads of this process) and the
    median over repeats of the ratio to ``base`` (wall and CPU). CPU time is the headline on a shared machine:
    wall time there measures the scheduler as much as the code.
    """
    names = list(fns)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            w0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    out = {}
    for name in names:
        out[name] = {
            "wall_s": statistics.median(wall[name]),
            "cpu_s": statistics.median(cpu[name]),
            "ratio_wall": statistics.median(a / b for a, b in zip(wall[name], wall[base], strict=True)),
            "ratio_cpu": statistics.median(a / b for a, b in zip(cpu[name], cpu[base], strict=True)),
        }
    return out


def _calibration(out: dict, ref_forces: list[np.ndarray]) -> dict[str, float | None]:
    """Spearman ρ (mfal.uncertainty.calibration, as the campaign) of predicted force std vs the error against
    the reference, per atom and per frame (max), and the mean per-atom error (eV/Å)."""
    from mfal.uncertainty.calibration import calibration_stats

    per_atom_err = [np.linalg.norm(f - r, axis=1) for f, r in zip(out["forces"], ref_forces, strict=True)]
    return {
        "rho_per_atom": calibration_stats(np.concatenate(out["forces_std"]), np.concatenate(per_atom_err)).rho,
        "rho_per_frame_max": calibration_stats(out["force_std_max"], [float(e.max()) for e in per_atom_err]).rho,
        "force_mae_vs_reference": float(np.mean(np.concatenate(per_atom_err))),
    }


def _finetune_readouts(ensemble, graphs, labels, fidelity: str, *, steps: int, lr: float, seed: int) -> None:
    """Train each member's readout for ``fidelity`` on its own bootstrap of ``graphs`` (trunk frozen)."""
    import torch

    rng = np.random.default_rng(seed)
    f_idx = ensemble.fidelities.index(fidelity)
    for member in ensemble.members:
        head = member.readouts[f_idx] if "R" in member.components else member.mlp
        head_ids = {id(p) for p in head.parameters()}
        saved = {name: p.requires_grad for name, p in member.named_parameters()}
        for p in member.parameters():
            p.requires_grad_(id(p) in head_ids)
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        member.train()
        try:
            for _ in range(steps):
                pick = rng.integers(0, len(graphs), size=len(graphs))
                batch = [graphs[i] for i in pick]
                pred = member.forward(batch, fidelity, task="ef", is_training=True)
                e_ref = torch.tensor([float(labels[i]["e"]) for i in pick], dtype=pred["e"].dtype)
                f_ref = torch.cat([torch.as_tensor(labels[i]["f"]) for i in pick])
                loss = torch.nn.functional.mse_loss(pred["e"], e_ref) + torch.nn.functional.mse_loss(
                    torch.cat(pred["f"]), f_ref
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            member.eval()
            for name, p in member.named_parameters():
                p.requires_grad_(saved[name])


def run_model_bench(
    *,
    n_structures: int = 8,
    repeats: int = 3,
    threads: int = 2,
    k: int = 4,
    n_train: int = 4,
    finetune_steps: int = 3,
    seed: int = 0,
    progress: bool = False,
    scorer_epochs: int = 1,
) -> dict[str, Any]:
    """Run the model benchmark (CPU) and return numbers, targets and the run's context (see module docstring)."""
    import torch
    from chgnet.model import CHGNet

    from mfal.errors import ConfigError
    from mfal.model import MFCHGNet, readout_ensemble

    if n_structures < 3 or repeats < 1 or threads < 1 or k < 2 or n_train < 1:
        raise ConfigError(
            f"need n_structures >= 3, repeats >= 1, threads >= 1, k >= 2, n_train >= 1; got {n_structures=}, "
            f"{repeats=}, {threads=}, {k=}, {n_train=}"
        )
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    stages = ["setup", "forward", "labels+fine-tune", "ensemble", "scorer", "train step"]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(stages), desc="bench model", unit="stage")

    def advance(name: str) -> None:
        logger.info("bench model: %s done", name)
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update(1)

    load_start = os.getloadavg()
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints on load
        chgnet = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
        reference = CHGNet.load(model_name="0.2.0", use_device="cpu", verbose=False)
    chgnet.eval()
    mf = MFCHGNet.from_pretrained("0.3.0")
    mf.eval()
    cells = _rattled_cells(n_structures, seed=seed, amplitudes=(0.02, 0.2))  # held-out frames
    train_cells = _rattled_cells(n_train, seed=seed + 1000, amplitudes=(0.03, 0.15))
    advance("setup")

    # 1. forward: energy + forces, graph conversion included in both
    fwd = _timed(
        {
            "chgnet": lambda: chgnet.predict_structure(cells, task="ef", batch_size=n_structures),
            "mf": lambda: mf.predict(cells, HF, task="ef", batch_size=n_structures),
        },
        "chgnet",
        repeats,
    )
    advance("forward")

    # 2. reference labels (CHGNet 0.2.0) and a tiny readout fine-tune of K members
    ref_train = reference.predict_structure(train_cells, task="efsm", batch_size=n_structures)
    ref_held = reference.predict_structure(cells, task="efsm", batch_size=n_structures)
    ref_train = ref_train if isinstance(ref_train, list) else [ref_train]
    ensemble = readout_ensemble(mf, k, seed=seed, noise=0.02)
    _finetune_readouts(
        ensemble, mf.graphs(train_cells), ref_train, HF, steps=finetune_steps, lr=1e-3, seed=seed
    )
    if not ensemble.shared_trunk:
        raise RuntimeError("fine-tuned readout ensemble lost its shared trunk")
    advance("labels+fine-tune")

    # 3. ensemble uncertainty vs one model (energy + forces + magmoms at hf, graphs included)
    single = ensemble.members[0]
    exact_out: dict = {}
    sketch_out: dict = {}

    def run_exact() -> None:
        exact_out.update(ensemble.predict_with_uncertainty(cells, HF, batch_size=n_structures))

    def run_sketch() -> None:
        sketch_out.update(
            ensemble.predict_with_uncertainty(cells, HF, batch_size=n_structures, force_probes=1, seed=seed)
        )

    ens = _timed(
        {
            "single": lambda: single.predict(cells, HF, task="efm", batch_size=n_structures),
            "sketch": run_sketch,
            "exact": run_exact,
        },
        "single",
        repeats,
    )
    ref_forces = [np.asarray(r["f"]) for r in ref_held]
    calib_exact = _calibration(exact_out, ref_forces)
    calib_sketch = _calibration(sketch_out, ref_forces)
    from mfal.uncertainty import spearman_rho

    rho_sketch_vs_exact = spearman_rho(
        np.concatenate(sketch_out["forces_std"]), np.concatenate(exact_out["forces_std"])
    )
    advance("ensemble")

    # 4. the campaign's scorer (trained ensembles of both kinds) vs one CHGNet forward of the same cells
    from mfal.bench.kinds import compare_kinds

    kinds, ensembles = compare_kinds(k=k, epochs=scorer_epochs, seed=seed)
    scorer = scorer_timing(cells, chgnet, ensembles, repeats)
    default_kind = campaign_kind()
    advance("scorer")

    # 5. one optimizer step, E+F+S loss, same 4-cell batch, graphs prebuilt
    batch_cells = cells[:4]
    labels = ref_held[:4]
    e_ref = torch.tensor([float(lab["e"]) for lab in labels], dtype=torch.float32)
    f_ref = torch.cat([torch.as_tensor(lab["f"]) for lab in labels])
    s_ref = torch.stack([torch.as_tensor(lab["s"]) for lab in labels])
    mf_train = copy.deepcopy(mf)
    chg_train = copy.deepcopy(chgnet)
    mf_train.train()
    chg_train.train()
    mf_graphs = mf_train.graphs(batch_cells)
    chg_graphs = [chg_train.graph_converter(c) for c in batch_cells]
    fid = torch.tensor([1, 2] * (len(batch_cells) // 2) + [2] * (len(batch_cells) % 2))
    opt_mf = torch.optim.Adam([p for p in mf_train.parameters() if p.requires_grad], lr=1e-4)
    opt_chg = torch.optim.Adam([p for p in chg_train.parameters() if p.requires_grad], lr=1e-4)

    def loss_of(pred: dict) -> Any:
        mse = torch.nn.functional.mse_loss
        return (
            mse(pred["e"], e_ref)
            + mse(torch.cat(pred["f"]), f_ref)
            + 0.1 * mse(torch.stack(pred["s"]), s_ref)
        )

    def step_mf() -> None:
        loss = loss_of(mf_train.forward(mf_graphs, fid, task="efs", is_training=True))
        opt_mf.zero_grad()
        loss.backward()
        opt_mf.step()

    def step_chg() -> None:
        loss = loss_of(chg_train.forward(chg_graphs, task="efs"))
        opt_chg.zero_grad()
        loss.backward()
        opt_chg.step()

    step_mf()  # warm-up (optimizer state allocation) for both
    step_chg()
    step = _timed({"chgnet": step_chg, "mf": step_mf}, "chgnet", repeats)
    advance("train step")
    if bar is not None:
        bar.close()

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "torch_threads": threads,
        "torch_version": torch.__version__,
        "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "structures": f"{n_structures} rattled LiFePO4 cells (28 atoms, 0.02-0.2 Å)",
        "repeats": repeats,
        "timing": "ratios are medians over repeats of per-repeat CPU-time ratios (process_time, all threads); "
        "wall-clock ratios alongside",
        "mf_over_chgnet_forward": round(fwd["mf"]["ratio_cpu"], 3),
        "mf_over_chgnet_forward_wall": round(fwd["mf"]["ratio_wall"], 3),
        "forward_cpu_s": {name: round(v["cpu_s"], 2) for name, v in fwd.items()},
        "forward_wall_s": {name: round(v["wall_s"], 2) for name, v in fwd.items()},
        "ensemble4_over_single": round(ens["exact"]["ratio_cpu"], 3),
        "ensemble4_over_single_wall": round(ens["exact"]["ratio_wall"], 3),
        "ensemble4_method": f"shared-trunk readout ensemble K={k}: graphs built once, trunk run once, exact member "
        "forces from one batched backward (is_grads_batched)",
        "ensemble4_sketch_over_single": round(ens["sketch"]["ratio_cpu"], 3),
        "ensemble4_sketch_over_single_wall": round(ens["sketch"]["ratio_wall"], 3),
        "ensemble4_sketch_method": "same ensemble, force variance sketched with 1 random contrast probe "
        "(2 backward passes instead of K)",
        "ensemble_cpu_s": {name: round(v["cpu_s"], 2) for name, v in ens.items()},
        "ensemble_wall_s": {name: round(v["wall_s"], 2) for name, v in ens.items()},
        "calibration": {
            "reference": "CHGNet 0.2.0 (surrogate truth) after a readout fine-tune on "
            f"{n_train} frames x {finetune_steps} steps per member",
            "sketch": {key: round(val, 3) for key, val in calib_sketch.items()},
            "exact": {key: round(val, 3) for key, val in calib_exact.items()},
            "rho_sketch_vs_exact_per_atom": round(rho_sketch_vs_exact, 3),
        },
        "scorer_over_single": round(scorer[default_kind]["ratio_cpu"], 3),
        "scorer_over_single_wall": round(scorer[default_kind]["ratio_wall"], 3),
        "scorer_kind": default_kind,
        "scorer_method": f"score_candidates, K={k} members of the campaign's default kind ({default_kind}), "
        "both fidelities, energy+forces+moments, graphs built once / CHGNet 0.3.0 predict_structure(task=efsm: chgnet has no efm task) "
        "of the same cells",
        "scorer_by_kind_over_single": {
            kind: {"cpu": round(v["ratio_cpu"], 3), "wall": round(v["ratio_wall"], 3)}
            for kind, v in scorer.items()
            if kind != "chgnet"
        },
        "scorer_cpu_s": {name: round(v["cpu_s"], 2) for name, v in scorer.items()},
        "scorer_wall_s": {name: round(v["wall_s"], 2) for name, v in scorer.items()},
        "scorer_calibration": kinds[default_kind]["calibration"],
        "ensemble_kinds": kinds,
        "train_step_mf_over_chgnet": round(step["mf"]["ratio_cpu"], 3),
        "train_step_mf_over_chgnet_wall": round(step["mf"]["ratio_wall"], 3),
        "train_step_cpu_s": {name: round(v["cpu_s"], 2) for name, v in step.items()},
        "train_step_wall_s": {name: round(v["wall_s"], 2) for name, v in step.items()},
        "targets": TARGETS,
        "wall_s": round(time.perf_counter() - started, 1),
    }
