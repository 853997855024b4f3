"""Store configuration (YAML) and resolution of ``--store``/``--dir`` paths to a :class:`StoreConfig`.

Secrets: a MongoDB URI is read from the environment variable ``uri_env`` or from ``uri_file`` (keep that file
outside the repository, mode 600) only when the store is opened; it is never stored on the config, logged,
or put in a repr or an error message (see :func:`redact_uri`).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mfal.errors import ConfigError, StoreError
from mfal.fileio import check_private_file

logger = logging.getLogger(__name__)

#: file that marks a directory as an initialised embedded mfal store
STORE_MARKER = ".mfal-store.json"
CAMPAIGN_FILE = "campaign.yaml"
STORE_SUBDIR = "store"


def load_yaml(path: Path, what: str) -> Any:
    """``yaml.safe_load`` of ``path``; an unreadable, binary, oversized or invalid file is one ConfigError line."""
    from mfal.fileio import MAX_READ_BYTES

    try:
        size = path.stat().st_size
        if size > MAX_READ_BYTES:
            raise ConfigError(
                f"{path}: {size / 2**20:.0f} MiB is too big for a {what} (limit {MAX_READ_BYTES >> 20} MiB)"
            )
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read {what} ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text YAML file (binary content at byte {err.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None


class StoreConfig(BaseModel):
    """Where frames, rounds and blobs live: embedded (montydb/sqlite dir), mongo (MongoDB + GridFS) or memory."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["embedded", "mongo", "memory"] = Field("embedded", description="store backend")
    path: Path | None = Field(
        None,
        description="embedded: store directory (default <campaign dir>/store); relative to the YAML file",
    )
    database: str = Field("mfal", description="database name (embedded and mongo)")
    frames: str = Field("frames", description="collection of FrameDocs")
    rounds: str = Field("rounds", description="collection of RoundDocs")
    blobs: str = Field(
        "blobs", description="GridFS bucket (mongo) or sub-directory (embedded) of binary blobs"
    )
    uri_env: str = Field("MFAL_MONGO_URI", description="environment variable holding the MongoDB URI")
    uri_file: Path | None = Field(
        None,
        description="file whose first line is the MongoDB URI (used when uri_env is unset; keep it outside the repo)",
    )
    timeout_ms: int = Field(5000, gt=0, description="MongoDB server selection timeout (ms)")
    lock_timeout: float = Field(
        120.0, gt=0, description="embedded: seconds to wait for the write/connect lock"
    )

    @classmethod
    def from_yaml(cls, path: str | Path) -> StoreConfig:
        """Load a store YAML (``yaml.safe_load``); a relative ``path``/``uri_file`` is taken relative to it."""
        path = Path(path)
        data = load_yaml(path, "store config")
        if isinstance(data, dict) and isinstance(data.get("store"), dict):
            data = data["store"]
        return cls.from_mapping(data, base=path.parent, where=str(path))

    @classmethod
    def from_mapping(cls, data: Any, *, base: Path, where: str) -> StoreConfig:
        """Validate a mapping (e.g. the ``store:`` section of a campaign YAML); names ``where`` on error."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping of store settings, got {type(data).__name__}")
        try:
            cfg = cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "store"
            raise ConfigError(f"{where}: field {loc!r}: {first['msg']}") from None
        updates: dict[str, Any] = {}
        for name in ("path", "uri_file"):
            value = getattr(cfg, name)
            if value is not None:
                value = value.expanduser()
                updates[name] = value if value.is_absolute() else base / value
        return cfg.model_copy(update=updates)

    def resolve_uri(self) -> str:
        """The MongoDB URI from ``uri_env`` or ``uri_file`` (never logged). Raises ConfigError naming the source."""
        uri = os.environ.get(self.uri_env, "").strip()
        if uri:
            return uri
        if self.uri_file is not None:
            check_private_file(self.uri_file.expanduser(), "uri_file")
            try:
                text = self.uri_file.expanduser().read_text().strip()
            except OSError as err:
                raise ConfigError(f"uri_file {self.uri_file}: cannot read ({err.strerror})") from err
            if not text:
                raise ConfigError(f"uri_file {self.uri_file}: is empty, expected a mongodb:// URI")
            return text.splitlines()[0].strip()
        raise ConfigError(
            f"mongo store: environment variable {self.uri_env} is not set and no uri_file is configured"
        )


_CRED_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^@/\s]*@")


def redact_uri(text: str, uri: str | None = None) -> str:
    """``text`` with the credentials of any ``scheme://user:password@`` URI (and of ``uri``, if given) masked."""
    if uri:
        text = text.replace(uri, redact_uri(uri))
        m = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://([^@/\s]*)@", uri)
        if m and ":" in m.group(1):
            password = m.group(1).split(":", 1)[1]
            if password:
                text = text.replace(password, "***")
    return _CRED_RE.sub(r"\1***@", text)


def is_store_dir(path: Path) -> bool:
    """True if ``path`` holds an initialised embedded store."""
    return (path / STORE_MARKER).is_file()


def is_campaign_dir(path: Path) -> bool:
    """True if ``path`` looks like a campaign directory (has ``campaign.yaml`` or a ``store/`` sub-directory)."""
    return (path / CAMPAIGN_FILE).is_file() or (path / STORE_SUBDIR).is_dir()


def campaign_store_config(campaign_dir: str | Path) -> StoreConfig:
    """Store of a campaign directory: the ``store:`` section of its ``campaign.yaml`` (a mapping, or a path to a
    store YAML) if present, else an embedded store in ``<dir>/store``."""
    d = Path(campaign_dir)
    if d.exists() and not d.is_dir():
        raise ConfigError(f"--dir {d}: is not a directory")
    cfile = d / CAMPAIGN_FILE
    section: Any = None
    if cfile.is_file():
        data = load_yaml(cfile, "campaign config")
        section = data.get("store") if isinstance(data, dict) else None
    if isinstance(section, str):
        return StoreConfig.from_yaml(d / section)
    if isinstance(section, dict):
        cfg = StoreConfig.from_mapping(section, base=d, where=f"{cfile} store")
    else:
        cfg = StoreConfig()
    if cfg.type == "embedded" and cfg.path is None:
        cfg = cfg.model_copy(update={"path": d / STORE_SUBDIR})
    return cfg


def resolve_store_config(target: StoreConfig | str | Path) -> StoreConfig:
    """A StoreConfig from a config, a store YAML, an embedded store directory or a campaign directory.

    A directory that is neither an initialised store nor a campaign directory becomes a new embedded store there.
    """
    if isinstance(target, StoreConfig):
        cfg = target
    else:
        p = Path(target).expanduser()
        if p.name == CAMPAIGN_FILE and p.is_file():
            cfg = campaign_store_config(p.parent)
        elif p.suffix in (".yaml", ".yml"):
            if not p.is_file():
                raise ConfigError(f"{p}: no such store config file")
            cfg = StoreConfig.from_yaml(p)
            if cfg.type == "embedded" and cfg.path is None:
                cfg = cfg.model_copy(update={"path": p.parent / STORE_SUBDIR})
        elif p.exists() and not p.is_dir():
            raise ConfigError(f"{p}: expected a store directory, a store YAML or a campaign directory")
        elif is_store_dir(p):
            cfg = StoreConfig(path=p)
        elif is_campaign_dir(p):
            cfg = campaign_store_config(p)
        else:
            cfg = StoreConfig(path=p)
    if cfg.type == "embedded" and cfg.path is None:
        raise StoreError("embedded store config has no path; give --store DIR or --dir CAMPAIGN_DIR")
    return cfg


def store_from_options(
    store: str | Path | None = None, campaign_dir: str | Path | None = None
) -> StoreConfig:
    """StoreConfig of the CLI options ``--store DIR|YAML`` / ``--dir CAMPAIGN_DIR`` (exactly one is required)."""
    if (store is None) == (campaign_dir is None):
        raise ConfigError("give exactly one of --store DIR (or store YAML) and --dir CAMPAIGN_DIR")
    if campaign_dir is not None:
        return campaign_store_config(campaign_dir)
    return resolve_store_config(store)  # type: ignore[arg-type]
