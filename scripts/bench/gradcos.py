"""Trunk-gradient diagnosis at the warm start: cos(g_LF, g_HF) and |g_LF|/|g_HF| (per-frame mean loss gradients)."""

import sys, json, pathlib, torch

torch.set_num_threads(1)
from mfal.bench.science_data import _load
from mfal.train.build import build_model
from mfal.train.config import TrainConfig
from mfal.train.data import FrameDataset
from mfal.train.atomref import fit_atomref
from mfal.train.loss import MFLoss
from mfal.train.loop import HEAD_PREFIXES

path = pathlib.Path(sys.argv[1])
n = int(sys.argv[2])
pool = _load(path, json.load(open(path))["key"])
lf = pool.frames("pool", "lf")[:n]
hf = pool.frames("pool", "hf")[n : 2 * n]
cfg = TrainConfig(warm_start="r2scan")
model = build_model(cfg)
ds = FrameDataset.build(lf + hf, model)
fit_atomref(model, ds, ["lf", "hf"])
loss = MFLoss(cfg.loss)
names = [k for k, p in model.named_parameters() if p.requires_grad and not k.startswith(HEAD_PREFIXES)]
params = dict(model.named_parameters())


def grad(fid):
    idx = ds.indices_of(fid)
    g = None
    for s in range(0, len(idx), 8):
        b = ds.batch(idx[s : s + 8])
        out = loss(model.forward(b.graphs, b.fidelity, task="efs", is_training=True), b)["loss"] * len(b)
        gs = torch.autograd.grad(out, [params[k] for k in names], allow_unused=True)
        v = torch.cat(
            [(x if x is not None else torch.zeros_like(params[k])).reshape(-1) for x, k in zip(gs, names)]
        )
        g = v if g is None else g + v
    return g / len(idx)


g_lf, g_hf = grad("lf"), grad("hf")
print(
    json.dumps(
        {
            "pool": str(path),
            "n": n,
            "cos": float(torch.nn.functional.cosine_similarity(g_lf, g_hf, dim=0)),
            "norm_lf_over_hf": float(g_lf.norm() / g_hf.norm()),
        }
    )
)
