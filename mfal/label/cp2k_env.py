"""CP2K environment: executable and pymatgen data-dir checks, env/SETTINGS swaps, basis/potential lookup."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mfal.errors import ConfigError, LabelError
from mfal.label.cp2k_settings import Cp2kSettings, default_data_dir

SETUP_HINT = "run scripts/setup-cp2k.sh"


def check_cp2k_ready(settings: Cp2kSettings) -> Path:
    """Return the pymatgen CP2K data dir; LabelError with the fix if cp2k or the data dir is missing."""
    if shutil.which(settings.cp2k_exe) is None:
        raise LabelError(f"CP2K executable {settings.cp2k_exe!r} not found on PATH: {SETUP_HINT}")
    if settings.mpi_ranks > 1 and shutil.which("mpirun") is None:
        raise LabelError(f"mpi_ranks={settings.mpi_ranks} needs mpirun, which is not on PATH")
    data_dir = Path(settings.data_dir).expanduser() if settings.data_dir else default_data_dir()
    if not (data_dir / "Fe").is_file():
        raise LabelError(f"pymatgen CP2K data dir {data_dir} missing or incomplete: {SETUP_HINT}")
    return data_dir


#: serialises the short env/SETTINGS swaps below, so that label() may run in several threads
_ENV_LOCK = threading.RLock()


@contextlib.contextmanager
def _environ(set_vars: dict[str, str], unset: Sequence[str] = ()) -> Iterator[None]:
    with _ENV_LOCK:
        yield from _swap_environ(set_vars, unset)


def _swap_environ(set_vars: dict[str, str], unset: Sequence[str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in [*set_vars, *unset]}
    try:
        os.environ.update(set_vars)
        for k in unset:
            os.environ.pop(k, None)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def pymatgen_cp2k_env(data_dir: Path, functional: str = "PBE") -> Iterator[None]:
    """Point pymatgen at ``data_dir`` and ``functional`` while inputs are written; restore afterwards.

    pymatgen's ``DftSet`` reads ``$CP2K_DATA_DIR`` first, then ``SETTINGS["PMG_CP2K_DATA_DIR"]``, and the
    functional from ``$DEFAULT_CP2K_FUNCTIONAL`` or ``SETTINGS["PMG_DEFAULT_CP2K_FUNCTIONAL"]``. SETTINGS is
    built from the ``PMG_*`` environment once, on first access (pymatgen 2026.10), so setting env vars after
    that has no effect: we set both the env vars and the cached dict, and unset ``CP2K_DATA_DIR`` (which would
    otherwise win; cp2k.psmp has /usr/share/cp2k compiled in and does not need it).
    """
    from pymatgen.core import SETTINGS

    keys = {"PMG_CP2K_DATA_DIR": str(data_dir), "PMG_DEFAULT_CP2K_FUNCTIONAL": functional}
    with _ENV_LOCK:
        old = {k: SETTINGS.get(k) for k in keys}
        try:
            SETTINGS.update(keys)
            with _environ(keys, unset=("CP2K_DATA_DIR", "DEFAULT_CP2K_FUNCTIONAL")):
                yield
        finally:
            for k, v in old.items():
                if v is None:
                    SETTINGS.pop(k, None)
                else:
                    SETTINGS[k] = v


@functools.lru_cache(maxsize=64)
def _element_data(path: str) -> dict[str, Any]:
    """One element file of the pymatgen CP2K data dir, read with PyYAML's C loader (ruamel: 10–80 s)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as err:
        raise LabelError(f"{path}: unreadable pymatgen CP2K data file ({err}): {SETUP_HINT}") from err


def resolve_basis_and_potential(data_dir: Path, element: str, basis: str, potential: str) -> dict[str, Any]:
    """pymatgen basis/potential objects for ``element`` by name, chosen as pymatgen's DftSet would.

    DftSet re-reads the element YAML with pure-Python ruamel for every input it writes (20–80 s per frame on a
    busy 2-core machine); we read it once per element and hand DftSet the objects.
    """
    from pymatgen.io.cp2k.inputs import GaussianTypeOrbitalBasisSet, GthPotential

    fn = data_dir / element
    if not fn.is_file():
        raise LabelError(f"no CP2K basis data for {element} in {data_dir}: {SETUP_HINT}")
    data = _element_data(str(fn))
    want_b, want_p = GaussianTypeOrbitalBasisSet(name=basis), GthPotential(name=potential)
    bases = [
        b
        for d in data.get("basis_sets", {}).values()
        if want_b.softmatch(b := GaussianTypeOrbitalBasisSet.from_dict(d))
    ]
    pots = [
        p for d in data.get("potentials", {}).values() if want_p.softmatch(p := GthPotential.from_dict(d))
    ]
    for b in bases:
        match = [p for p in pots if p.info.electrons == b.info.electrons]
        if match:
            return {"basis": b, "potential": match[0]}
    have = sorted({d.get("name", "?") for d in data.get("basis_sets", {}).values()})
    raise ConfigError(
        f"no basis {basis!r} with potential {potential!r} for {element} in {fn} (basis sets there: {have})"
    )
