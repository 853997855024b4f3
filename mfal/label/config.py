"""Typed labeler configs: one pydantic model per labeler kind, a discriminated union on ``kind``.

The YAML shape is ``labelers: {lf: {kind: teacher, options: {...}, cost_per_label: 190, chunk_size: 1}}``.
Each kind's ``options`` is that labeler's own settings model (``extra="forbid"``), so a typo in an option
fails when the campaign config is read (``field labelers.hf.options.max_scff: unknown key``), not when the
labeler is first built after round 0. :func:`build_labeler` turns a spec into a labeler;
:meth:`prior_cost` gives the cost prior of one label (core-seconds).
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from mfal.errors import ConfigError
from mfal.fidelity import DEFAULT, Fidelities
from mfal.label import LABELERS
from mfal.label.base import Labeler
from mfal.label.cp2k_settings import Cp2kSettings
from mfal.label.replay import ReplayOptions
from mfal.label.teacher import TeacherConfig
from mfal.label.vasp import VaspConfig

#: atom count of the reference cell that ``cost_per_label`` refers to (28-atom LiFePO4)
REF_ATOMS = 28
#: cost prior of one reference-cell label when neither the config nor the labeler gives one (core-seconds)
DEFAULT_COST_PER_LABEL = 3600.0


class _SpecBase(BaseModel):
    """Fields every labeler spec has besides ``kind`` and ``options``."""

    model_config = ConfigDict(extra="forbid")

    cost_per_label: float | None = Field(
        None,
        gt=0,
        description="prior cost of one label of a 28-atom cell (core-seconds); default: the labeler's",
    )
    chunk_size: int = Field(
        1, ge=1, description="structures per labeler call (each chunk is stored on return)"
    )

    def prior_cost(self, n_atoms: int, fidelity: str) -> float:
        """Prior cost of one label of a cell with ``n_atoms`` atoms at ``fidelity`` (core-seconds).

        ``cost_per_label`` × n_atoms / 28 if set, else the labeler's own estimate, else 3600 core-s per 28 atoms.
        """
        if self.cost_per_label is not None:
            return self.cost_per_label * n_atoms / REF_ATOMS
        own = self._own_cost(n_atoms, fidelity)
        return own if own is not None else DEFAULT_COST_PER_LABEL * n_atoms / REF_ATOMS

    def _own_cost(self, n_atoms: int, fidelity: str) -> float | None:
        return None


class TeacherLabelerConfig(_SpecBase):
    """Surrogate labels from pretrained CHGNet models (:mod:`mfal.label.teacher`)."""

    kind: Literal["teacher"] = "teacher"
    options: TeacherConfig = Field(default_factory=TeacherConfig)

    def _own_cost(self, n_atoms: int, fidelity: str) -> float | None:
        fid = self.options.fidelities.get(fidelity)
        if fid is None:
            return None
        return fid.cost_ref * (n_atoms / self.options.cost_ref_atoms) ** self.options.cost_exponent


class VaspLabelerConfig(_SpecBase):
    """VASP through atomate2 (:mod:`mfal.label.vasp`)."""

    kind: Literal["vasp"] = "vasp"
    options: VaspConfig = Field(default_factory=VaspConfig)


class Cp2kLabelerConfig(_SpecBase):
    """CP2K PBE+U through pymatgen + custodian (:mod:`mfal.label.cp2k`)."""

    kind: Literal["cp2k"] = "cp2k"
    options: Cp2kSettings = Field(default_factory=Cp2kSettings)


class ReplayLabelerConfig(_SpecBase):
    """Labels looked up in an existing dataset (:mod:`mfal.label.replay`)."""

    kind: Literal["replay"] = "replay"
    options: ReplayOptions


def _tag_free_locs(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Drop the union tag from error locations: ``labelers.hf.options.x``, not ``labelers.hf.cp2k.options.x``."""
    try:
        return handler(value)
    except ValidationError as err:
        tag = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
        details = []
        for e in err.errors(include_url=False):
            loc = tuple(e["loc"])
            if tag is not None and loc[:1] == (tag,):
                loc = loc[1:]
            detail: dict[str, Any] = {"type": e["type"], "loc": loc, "input": e.get("input")}
            if e["type"] in ("union_tag_invalid", "union_tag_not_found"):  # name the field and the kinds
                known = ValueError(
                    f"kind={tag!r} not in {list(KINDS)}" if tag is not None else f"kind missing: one of {list(KINDS)}"
                )
                detail = {"type": "value_error", "loc": (*loc, "kind"), "input": tag, "ctx": {"error": known}}
            elif "ctx" in e:
                detail["ctx"] = e["ctx"]
            details.append(detail)
        raise ValidationError.from_exception_data(err.title, details) from None  # type: ignore[arg-type]


_Union = Annotated[
    Union[TeacherLabelerConfig, VaspLabelerConfig, Cp2kLabelerConfig, ReplayLabelerConfig],  # noqa: UP007
    Field(discriminator="kind"),
]
#: one labeler config, chosen by ``kind`` (teacher | vasp | cp2k | replay)
LabelerSpec = Annotated[_Union, WrapValidator(_tag_free_locs)]

#: the labeler kinds, in the order of :data:`mfal.label.LABELERS`
KINDS: tuple[str, ...] = tuple(LABELERS)

_ADAPTER: TypeAdapter[Any] = TypeAdapter(LabelerSpec)


def parse_labeler_spec(data: Any, where: str | None = None) -> Any:
    """Validate a ``{kind, options, ...}`` mapping into a LabelerSpec; invalid -> one-line ConfigError.

    ``where`` is the config position for the message (e.g. ``labelers.hf``); without it the message starts
    with ``<kind> labeler:``.
    """
    if isinstance(data, _SpecBase):
        return data
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in ((where,) if where else ()) + tuple(first["loc"])) or "kind"
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
        kind = data.get("kind") if isinstance(data, dict) else None
        head = "" if where else f"{kind} labeler: "
        raise ConfigError(f"{head}field {loc}: {msg}{more}".replace("\n", " ")) from err


def build_labeler(spec: Any, *, fidelities: Fidelities = DEFAULT) -> Labeler:
    """The labeler a spec describes (heavy imports happen here, not when the config is read).

    ``fidelities``: the campaign's fidelity names; its magnetic ones get spin-polarized labels.
    """
    spec = parse_labeler_spec(spec)
    module_name, cls_name = LABELERS[spec.kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"labeler={spec.kind!r} is not available ({module_name}: {err})") from err
    cls = getattr(module, cls_name)
    if spec.kind == "cp2k":
        return cls(spec.options, fidelities=fidelities)
    if spec.kind == "replay":
        return cls(**spec.options.labeler_kwargs(), fidelities=fidelities)
    return cls(config=spec.options, fidelities=fidelities)


__all__ = [
    "KINDS",
    "Cp2kLabelerConfig",
    "LabelerSpec",
    "ReplayLabelerConfig",
    "TeacherLabelerConfig",
    "VaspLabelerConfig",
    "build_labeler",
    "parse_labeler_spec",
]
