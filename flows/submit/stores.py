"""The jobflow JobStore of a cluster campaign: a YAML template with ``${MFAL_MONGO_URI}`` rendered privately."""

from __future__ import annotations

import warnings
from pathlib import Path

import yaml

from flows.submit.security import expand_env, write_private
from mfal.errors import ConfigError


def render_jobflow_config(template: str | Path, out: str | Path) -> Path:
    """Fill ``${VAR}`` from the environment into a 0600 copy of ``template`` and check it builds a JobStore.

    The rendered file holds the database password: it is never printed, and the error messages name only
    the file and the field.
    """
    from jobflow import JobStore

    template = Path(template)
    if not template.is_file():
        raise ConfigError(f"jobflow config template {template} does not exist")
    text = expand_env(template.read_text(), source=str(template))
    try:
        spec = yaml.safe_load(text)
        with warnings.catch_warnings():  # maggma marks the *URIStore classes deprecated; jobflow needs them
            warnings.simplefilter("ignore", FutureWarning)
            JobStore.from_dict_spec(spec["JOB_STORE"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"jobflow config {template}: JOB_STORE is not a valid store spec ({type(err).__name__})"
        ) from err
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_private(out, text)


#: printed when a SLURM campaign keeps its frames in the embedded (sqlite) store on the shared filesystem
SINGLE_WRITER_NOTE = (
    "note: the campaign's store is the embedded (sqlite) store in the run directory, on the cluster's shared "
    "filesystem where sqlite locking is unreliable: its steps run one at a time (max_running_steps: 1, a single "
    "writer). Give the campaign a MongoDB store (store: {type: mongo, ...}) to run steps in parallel."
)


def campaign_store_kind(config: str | Path) -> str:
    """``embedded``, ``mongo`` or ``memory``: the store backend a campaign config asks for (default embedded).

    A relative store YAML path is taken relative to the config file; problems are one-line ConfigErrors.
    """
    from mfal.config_io import read_yaml
    from mfal.store.config import StoreConfig

    config = Path(config)
    data = read_yaml(config)
    section = data.get("store") if isinstance(data, dict) else None
    if isinstance(section, str):
        path = Path(section).expanduser()
        return StoreConfig.from_yaml(path if path.is_absolute() else config.parent / path).type
    if isinstance(section, dict):
        return StoreConfig.from_mapping(section, base=config.parent, where=f"{config} store").type
    return "embedded"

#: printed when FireWorks workers would share a campaign's embedded (sqlite) store
SHARED_STORE_NOTE = (
    "note: the campaign's store is the embedded (sqlite) store in the run directory: every FireWorks worker opens "
    "it, and sqlite locking is unreliable on a shared filesystem. Use one worker at a time, or give the campaign "
    "a MongoDB store (store: {type: mongo, ...})."
)
