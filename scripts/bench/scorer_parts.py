"""Where the scorer's time goes: CHGNet predict_structure vs one MFCHGNet pass vs the K=4 shared-trunk ensemble
(last-layer contrasts = the campaign default, exact member forces, the 1-probe sketch), per fidelity, on the same
rattled 28-atom LiFePO4 cells.

CPU seconds (median of 3, one torch thread). Run: ``PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/bench/scorer_parts.py [N]``.
"""

import contextlib
import io
import sys
import time
import warnings

import torch
from chgnet.model import CHGNet

from mfal.bench.model import _rattled_cells
from mfal.model.ensemble import readout_ensemble
from mfal.model.mfchgnet import MFCHGNet

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
with contextlib.redirect_stdout(io.StringIO()):
    chg = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
base = MFCHGNet.from_pretrained("0.3.0")
ens = readout_ensemble(base, 4, seed=0, noise=0.02)
cells = _rattled_cells(n, seed=0, amplitudes=(0.02, 0.2))
graphs = base.graphs(cells)


def cpu(name: str, fn, rep: int = 3) -> float:
    fn()
    ts = []
    for _ in range(rep):
        c0 = time.process_time()
        fn()
        ts.append(time.process_time() - c0)
    t = sorted(ts)[rep // 2]
    print(f"{name:44s} {t:7.3f} s", flush=True)
    return t


ref = cpu("CHGNet 0.3.0 predict_structure efsm", lambda: chg.predict_structure(cells, task="efsm", batch_size=n))
cpu("CHGNet graph conversion only", lambda: [chg.graph_converter(s) for s in cells])
cpu("MFCHGNet graphs", lambda: base.graphs(cells))
cpu("MFCHGNet one fidelity, ef (graphs given)", lambda: base.forward(graphs, "hf", task="ef"))
for spread, probes in (("last_layer", None), ("exact", None), ("exact", 1)):
    tot = sum(
        cpu(
            f"K=4 heads, {fid}, {spread}, force_probes={probes}",
            lambda fid=fid, probes=probes, spread=spread: ens.predict_with_uncertainty(
                cells, fid, graphs=graphs, batch_size=n, force_probes=probes, force_spread=spread
            ),
        )
        for fid in ("lf", "hf")
    )
    print(f"{'  both fidelities / CHGNet':44s} {tot / ref:7.2f}", flush=True)
