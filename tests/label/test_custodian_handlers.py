"""mfal's VASP custodian handler set on real failure outputs (custodian's own test runs, see
tests/test_data/custodian_failures/README.md): each failure is detected by ``check()`` and ``correct()`` makes the
expected INCAR / file change; a clean converged run triggers none. The handlers are custodian's real classes, run
on a copy of the files in tmp_path (no VASP binary can run here, so the run itself is not repeated)."""

from __future__ import annotations

import datetime
import gzip
import shutil
from pathlib import Path

import pytest
from pymatgen.io.vasp import Incar, Outcar, Vasprun

from mfal.errors import ConfigError
from mfal.label.handlers import (
    DEFAULT_HANDLERS,
    VaspHandlerConfig,
    handler_names,
    run_vasp_kwargs,
    vasp_handlers,
)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    """custodian caches parsed vasprun/OUTCAR files and keeps the wall-clock start in the environment."""
    from custodian.utils import tracked_lru_cache

    for var in ("CUSTODIAN_WALLTIME_START", "PBS_WALLTIME", "SBATCH_TIMELIMIT"):
        monkeypatch.setenv(var, "")  # recorded, so what a WalltimeHandler sets is undone after the test
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    tracked_lru_cache.tracked_cache_clear()
    yield
    tracked_lru_cache.tracked_cache_clear()


def _copy(src_dir: Path, dest: Path, names: dict[str, str] | None = None) -> Path:
    """Copy (and gunzip) every file of ``src_dir`` into ``dest``; ``names`` renames (upstream -> run name)."""
    for f in sorted(src_dir.iterdir()):
        base = f.name.removesuffix(".gz")
        target = dest / (names or {}).get(base, base)
        if f.suffix == ".gz":
            target.write_bytes(gzip.decompress(f.read_bytes()))
        else:
            shutil.copy(f, target)
    return dest


def _handler(name: str, **options):
    (h,) = vasp_handlers([name], options={name: options} if options else None)
    return h


def test_default_set_is_atomate2s_run_vasp_default():
    from atomate2.vasp.run import DEFAULT_HANDLERS as ATOMATE2

    assert list(DEFAULT_HANDLERS) == handler_names(ATOMATE2)
    assert handler_names(vasp_handlers()) == list(DEFAULT_HANDLERS)
    with_wall = vasp_handlers(wall_time=7200)
    assert handler_names(with_wall) == [*DEFAULT_HANDLERS, "WalltimeHandler"] and with_wall[-1].wall_time == 7200
    kw = run_vasp_kwargs(["VaspErrorHandler", "UnconvergedErrorHandler"])
    assert set(kw) == {"handlers"} and handler_names(kw["handlers"]) == ["VaspErrorHandler", "UnconvergedErrorHandler"]


def test_handler_names_and_options_are_checked():
    with pytest.raises(ConfigError, match=r"handler 'ZbrentHandler' unknown; known: .*VaspErrorHandler"):
        vasp_handlers(["ZbrentHandler"])
    with pytest.raises(ConfigError, match=r"NonConvergingErrorHandler: unknown option\(s\) \['nelm'\]"):
        vasp_handlers(options={"NonConvergingErrorHandler": {"nelm": 3}})
    with pytest.raises(ConfigError, match="not in the handler set"):
        vasp_handlers(["VaspErrorHandler"], options={"WalltimeHandler": {"buffer_time": 10}})
    with pytest.raises(ValueError, match="unknown"):
        VaspHandlerConfig(names=["Nope"])
    cfg = VaspHandlerConfig(options={"NonConvergingErrorHandler": {"nionic_steps": 3}}, wall_time=600)
    hs = {type(h).__name__: h for h in cfg.handlers()}
    assert hs["NonConvergingErrorHandler"].nionic_steps == 3 and hs["WalltimeHandler"].wall_time == 600
    # the handlers survive the serialisation a jobflow/FireWorks job goes through
    import json

    from monty.json import MontyDecoder, MontyEncoder

    back = json.loads(json.dumps(cfg.run_vasp_kwargs(), cls=MontyEncoder), cls=MontyDecoder)
    assert handler_names(back["handlers"]) == handler_names(cfg.handlers())


def test_zbrent_in_vasp_out(test_data, tmp_path):
    run = _copy(test_data / "custodian_failures" / "zbrent", tmp_path, {"vasp.zbrent": "vasp.out"})
    h = _handler("VaspErrorHandler")
    assert h.check() is True and h.errors == {"zbrent"}
    first = h.correct()
    assert first == {
        "errors": ["zbrent"],
        "actions": [
            {"file": "CONTCAR", "action": {"_file_copy": {"dest": "POSCAR"}}},
            {"dict": "INCAR", "action": {"_set": {"EDIFF": 1e-06}}},
            {"dict": "INCAR", "action": {"_set": {"NELMIN": 8}}},
        ],
    }
    incar = Incar.from_file(run / "INCAR")
    assert incar["EDIFF"] == 1e-6 and incar["NELMIN"] == 8 and incar["IBRION"] == 2
    assert (run / "POSCAR").read_text() == (run / "CONTCAR").read_text()
    assert (run / "error.1.tar.gz").is_file()  # custodian keeps the failed run's files
    # the same error again: tighter EDIFF and the switch to IBRION 1
    assert h.check() is True
    second = h.correct()
    assert {"dict": "INCAR", "action": {"_set": {"IBRION": 1}}} in second["actions"]
    incar = Incar.from_file(run / "INCAR")
    assert incar["IBRION"] == 1 and incar["EDIFF"] == pytest.approx(1e-7)


def test_nelm_unconverged_vasprun(test_data, tmp_path):
    """V2O5 GGA+U: every SCF ran all NELM=100 steps. The handler decides from vasprun's own INCAR (ALGO Fast)
    and edits the INCAR file, which is written here from that same vasprun record."""
    run = tmp_path
    src = test_data / "vasp" / "pymatgen_V2O5_ggaU_unconverged" / "vasprun.unconverged.xml.gz"
    (run / "vasprun.xml").write_bytes(gzip.decompress(src.read_bytes()))
    vr = Vasprun(str(run / "vasprun.xml"), parse_potcar_file=False)
    assert vr.incar["NELM"] == 100 and vr.incar["ALGO"] == "Fast"
    vr.incar.write_file(run / "INCAR")
    vr.final_structure.to(filename=str(run / "POSCAR"), fmt="poscar")
    h = _handler("UnconvergedErrorHandler")
    assert h.check() is True
    assert h.correct() == {"errors": ["Unconverged"], "actions": [{"dict": "INCAR", "action": {"_set": {"ALGO": "Normal"}}}]}
    assert Incar.from_file(run / "INCAR")["ALGO"] == "Normal"


def test_nelm_hit_in_every_ionic_step_oszicar(test_data, tmp_path):
    """custodian's nonconv OSZICAR: 4 ionic steps, each at NELM=10. The default (10 steps) waits for more."""
    run = _copy(test_data / "vasp" / "custodian_Si_nonconv_oszicar", tmp_path)
    assert _handler("NonConvergingErrorHandler").check() is False  # atomate2's default nionic_steps=10
    h = _handler("NonConvergingErrorHandler", nionic_steps=3)
    assert h.check() is True
    assert h.correct() == {
        "errors": ["Non-converging job"],
        "actions": [{"dict": "INCAR", "action": {"_set": {"ALGO": "Normal"}}}],
    }
    incar = Incar.from_file(run / "INCAR")
    assert incar["ALGO"] == "Normal" and incar["NELM"] == 10
    # ALGO Normal with ISMEAR -5: next comes linear mixing
    assert h.correct()["actions"] == [
        {"dict": "INCAR", "action": {"_set": {"ALGO": "Normal", "AMIX": 0.1, "BMIX": 0.01, "ICHARG": 2}}}
    ]
    # with more SCF steps allowed the same OSZICAR is no longer "at NELM"
    incar = Incar.from_file(run / "INCAR")
    incar["NELM"] = 15
    incar.write_file(run / "INCAR")
    assert h.check() is False


def test_positive_energy_oszicar(test_data, tmp_path):
    run = _copy(test_data / "custodian_failures" / "positive_energy", tmp_path)
    h = _handler("PositiveEnergyErrorHandler")
    assert h.check() is True
    assert h.correct() == {
        "errors": ["Positive energy"],
        "actions": [{"dict": "INCAR", "action": {"_set": {"ALGO": "Normal"}}}],
    }
    assert Incar.from_file(run / "INCAR")["ALGO"] == "Normal"


def test_walltime_from_real_outcar_timings(test_data, tmp_path):
    """FeO relax OUTCAR: the longest ionic step (LOOP+ real time) sets the safety margin (3 steps)."""
    run = _copy(test_data / "vasp" / "custodian_FeO_afm_ggaU_relax", tmp_path)
    outcar = Outcar(str(run / "OUTCAR"))
    outcar.read_pattern({"t": r"LOOP\+.+real time(.+)"}, postprocess=float)
    step = max(t[0] for t in outcar.data["t"])  # s
    assert step > 1.0
    (h,) = vasp_handlers([], wall_time=3600, options={"WalltimeHandler": {"buffer_time": 1}})
    assert h.check() is False  # just started: an hour left
    h.start_time = datetime.datetime.now() - datetime.timedelta(seconds=3600 - 2 * step)  # < 3 steps left
    assert h.check() is True
    assert h.correct() == {"errors": ["Walltime reached"], "actions": None}
    assert (run / "STOPCAR").read_text() == "LSTOP = .TRUE."  # VASP stops after the ionic step, cleanly


def test_clean_converged_run_triggers_no_failure_handler(test_data, tmp_path):
    """The converged FeO relaxation against the whole default set (+ WalltimeHandler with time left): no
    failure handler fires. LargeSigmaHandler does: with ISMEAR 0, SIGMA 0.05 the smearing entropy |T*S|
    reached 1.05 meV/atom in an early ionic step (tolerance 1 meV/atom), so custodian would lower SIGMA.

    The upstream folder has no stdout/stderr files: ``vasp.out`` is its OSZICAR text (the iteration lines VASP
    prints to stdout) and ``std_err.txt`` is empty, as for a clean run."""
    run = _copy(test_data / "vasp" / "custodian_FeO_afm_ggaU_relax", tmp_path)
    shutil.copy(run / "OSZICAR", run / "vasp.out")
    (run / "std_err.txt").write_text("")
    assert Vasprun(str(run / "vasprun.xml"), parse_potcar_file=False).converged
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    handlers = vasp_handlers(wall_time=24 * 3600)
    fired = {type(h).__name__: h for h in handlers if h.check()}
    assert list(fired) == ["LargeSigmaHandler"]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # check() changes nothing
    sigma = fired["LargeSigmaHandler"]
    assert sigma.entropy_per_atom == pytest.approx(1.05e-3, abs=1e-5)  # eV/atom
    new = 0.8 * (1e-3 / sigma.entropy_per_atom) ** 0.5 * 0.05  # custodian: T*S ~ SIGMA^2 for ISMEAR 0
    assert sigma.correct() == {
        "errors": ["LargeSigma"],
        "actions": [{"dict": "INCAR", "action": {"_set": {"SIGMA": pytest.approx(new)}}}],
    }
    assert Incar.from_file(run / "INCAR")["SIGMA"] == pytest.approx(0.039, abs=5e-4)


def test_clean_static_run_triggers_no_handler(test_data, tmp_path):
    """atomate2's converged MgMn2O4 static (ISMEAR -5, 20 SCF steps): nothing fires. Its folder has no stdout,
    stderr or OSZICAR; empty vasp.out/std_err.txt stand for a run that printed no error."""
    run = _copy(test_data / "vasp" / "atomate2_MgMn2O4_static_afm" / "outputs", tmp_path)
    (run / "vasp.out").write_text("")
    (run / "std_err.txt").write_text("")
    assert [type(h).__name__ for h in vasp_handlers(wall_time=24 * 3600) if h.check()] == []
