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
