"""Set up (or resume) a campaign directory, after checking every input a round needs: nothing is written and
no compute is spent when the config, a device, a start structure, a labeler setting or the store is unusable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from mfal.campaign.config import CampaignConfig, absolutize, load_config
from mfal.campaign.state import CampaignDir, CampaignState
from mfal.errors import ConfigError, DataError, MfalError
from mfal.fileio import atomic_write_text
from mfal.runopts import RunOptions


def check_devices(cfg: CampaignConfig, where: Path) -> None:
    """``cuda`` requested (config or override) on a machine without a GPU -> one-line ConfigError."""
    from mfal.device import resolve_device

    for field, dev in (("device", cfg.device), ("train.device", cfg.train.device)):
        try:
            resolve_device(dev)
        except ConfigError as err:
            raise ConfigError(f"{where}: field {field}: {err}") from None


def check_start_structures(cfg: CampaignConfig, where: Path) -> None:
    """Every start structure is read and built (a file that exists but cannot be parsed is an error)."""
    from mfal.explore import load_start_structures

    try:
        structures = load_start_structures(cfg.start_structures, where.parent, seed=cfg.seed)
    except ConfigError as err:
        raise ConfigError(f"{where}: field {err}") from None
    from mfal.store import validate_structure

    for i, s in enumerate(structures):
        try:
            validate_structure(s, f"{where}: field start_structures.{i}")
        except DataError as err:
            raise ConfigError(str(err)) from None


def check_labelers(cfg: CampaignConfig, where: Path) -> None:
    """Each fidelity's labeler can be built from its settings (unknown options fail here, not in round 0)."""
    from mfal.label.config import build_labeler

    for f in cfg.fidelities.names:
        try:
            build_labeler(cfg.labelers[f], fidelities=cfg.fidelities)
        except MfalError as err:
            raise ConfigError(f"{where}: field labelers.{f}: {err}") from None


def store_config(cfg: CampaignConfig, root: Path) -> Any:
    """The StoreConfig the campaign in ``root`` will use (paths in ``cfg`` are already absolute)."""
    from mfal.store.config import STORE_SUBDIR, StoreConfig

    if isinstance(cfg.store, str):
        return StoreConfig.from_yaml(cfg.store)
    if isinstance(cfg.store, dict):
        sc = StoreConfig.from_mapping(cfg.store, base=root, where="store")
    else:
        sc = StoreConfig()
    if sc.type == "embedded" and sc.path is None:
        sc = sc.model_copy(update={"path": root / STORE_SUBDIR})
    return sc


def _writable_dir(path: Path) -> bool:
    """True if ``path`` can be created (its nearest existing parent is a writable directory) or written."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def check_store(cfg: CampaignConfig, root: Path) -> None:
    """The store can be opened and written: a store inside ``root`` needs a writable ``root``; any other is
    opened now (StoreError/ConfigError with one line when unreachable or read-only)."""
    from mfal.store import open_store

    sc = store_config(cfg, root)
    if sc.type == "embedded" and sc.path is not None and Path(sc.path).resolve().is_relative_to(root):
        if not _writable_dir(root):
            raise MfalError(f"--dir {root}: cannot create or write the campaign directory (permission denied)")
        return
    with open_store(sc):
        pass


def validate(
    cfg: CampaignConfig, where: Path, root: Path, options: RunOptions, *, devices: bool = True
) -> None:
    """Every check before a round spends compute (devices only where the work runs: ``devices=False`` when the
    flow is built on a login node for a cluster)."""
    eff = cfg.with_options(options)
    if devices:
        check_devices(eff, where)
    check_start_structures(cfg, where)
    check_labelers(cfg, where)
    check_store(cfg, root)


def prepare(
    config_path: str | Path,
    root: str | Path,
    options: RunOptions | None = None,
    *,
    check_devices_here: bool = True,
) -> CampaignConfig:
    """Validate ``config_path`` and set up ``root`` (campaign.yaml copy, state.json), or check it matches.

    Nothing is written when any input is invalid. A rerun with the same config resumes; a different config
    in an existing campaign directory is an error.
    """
    import yaml

    config_path = Path(config_path)
    options = options or RunOptions()
    cfg = absolutize(load_config(config_path), config_path.resolve().parent)
    cd = CampaignDir(root)
    dumped = cfg.model_dump(mode="json")
    if cd.config_path.is_file() and cd.state_path.is_file():
        old = load_config(cd.config_path).model_dump(mode="json")
        if old != dumped:
            diff = sorted(k for k in set(old) | set(dumped) if old.get(k) != dumped.get(k))
            raise MfalError(
                f"{cd.root} already holds campaign {old.get('name')!r} with a different config "
                f"(differs in {diff}); use another --dir"
            )
        cd.load_state()  # a truncated state.json -> one line, before any work
        if check_devices_here:
            check_devices(cfg.with_options(options), config_path)
        return cfg
    validate(cfg, config_path, cd.root, options, devices=check_devices_here)
    created = not cd.root.exists()
    cd.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cd.config_path, yaml.safe_dump(dumped, sort_keys=False))
    try:
        from mfal.store import open_store

        with open_store(cd.root):  # the campaign's own store opens (and is created) before any work
            pass
    except BaseException:
        if created:
            shutil.rmtree(cd.root, ignore_errors=True)
        else:
            cd.config_path.unlink(missing_ok=True)
        raise
    if not cd.state_path.is_file():
        cd.save_state(CampaignState(campaign=cfg.name, spent={f: 0.0 for f in cfg.fidelities.names}))
    return cfg
