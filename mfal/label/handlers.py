"""The custodian error handlers every mfal VASP run uses, named in one place and configurable by name.

The default set is atomate2's ``run_vasp`` default (``atomate2.vasp.run.DEFAULT_HANDLERS``, checked by a test),
plus custodian's ``WalltimeHandler`` when a wall time (s) is given — as ``run_vasp(wall_time=...)`` does. The
VASP labeler passes the set to atomate2 as ``run_vasp_kwargs={"handlers": vasp_handlers(...)}``.

What the main ones correct (custodian's logic, exercised in tests/label/test_custodian_handlers.py on real
failure outputs):

- ``VaspErrorHandler``: error messages in ``vasp.out`` (ZBRENT: CONTCAR → POSCAR, EDIFF 1e-6, NELMIN 8, then
  IBRION 1; and ~60 others).
- ``UnconvergedErrorHandler``: ``vasprun.xml`` not converged (electronic: ALGO ladder Fast → Normal → All, then
  mixing; ionic: IBRION 1 from the CONTCAR).
- ``NonConvergingErrorHandler``: the last ``nionic_steps`` (default 10) ionic steps of ``OSZICAR`` all at NELM.
- ``PositiveEnergyErrorHandler``: positive final energy in ``OSZICAR`` (ALGO Normal, then POTIM / 2).
- ``WalltimeHandler``: time left < max(3 × the longest ionic step in ``OUTCAR``, ``buffer_time``) → a STOPCAR
  with LSTOP, so VASP ends cleanly and writes its outputs. It counts from the first one built in the process
  (custodian keeps the start in ``CUSTODIAN_WALLTIME_START``), i.e. from the start of the batch job.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mfal.errors import ConfigError

#: atomate2 0.1.5 ``run_vasp`` defaults, in its order
DEFAULT_HANDLERS: tuple[str, ...] = (
    "VaspErrorHandler",
    "MeshSymmetryErrorHandler",
    "UnconvergedErrorHandler",
    "NonConvergingErrorHandler",
    "PotimErrorHandler",
    "PositiveEnergyErrorHandler",
    "FrozenJobErrorHandler",
    "StdErrHandler",
    "LargeSigmaHandler",
    "IncorrectSmearingHandler",
    "KspacingMetalHandler",
)
WALLTIME = "WalltimeHandler"

__all__ = [
    "DEFAULT_HANDLERS",
    "VaspHandlerConfig",
    "handler_classes",
    "handler_names",
    "resolve_names",
    "run_vasp_kwargs",
    "vasp_handlers",
]


def handler_classes() -> dict[str, type]:
    """Every custodian VASP error handler by class name (``custodian.vasp.handlers``)."""
    import custodian.vasp.handlers as mod
    from custodian.custodian import ErrorHandler

    return {
        name: cls
        for name, cls in inspect.getmembers(mod, inspect.isclass)
        if issubclass(cls, ErrorHandler) and cls.__module__ == mod.__name__
    }


def resolve_names(names: Sequence[str] | None = None, *, wall_time: int | None = None) -> list[str]:
    """The handler names to run: ``names`` (None: :data:`DEFAULT_HANDLERS`), + WalltimeHandler if ``wall_time``.

    ConfigError for an unknown or repeated name (the message lists the known ones)."""
    chosen = list(DEFAULT_HANDLERS if names is None else names)
    known = handler_classes()
    for name in chosen:
        if name not in known:
            raise ConfigError(f"custodian handler {name!r} unknown; known: {', '.join(sorted(known))}")
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"custodian handlers {chosen}: a handler is named twice")
    if wall_time is not None and WALLTIME not in chosen:
        chosen.append(WALLTIME)
    return chosen


def vasp_handlers(
    names: Sequence[str] | None = None,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    wall_time: int | None = None,
) -> list[Any]:
    """custodian handler instances, in order (see :func:`resolve_names`).

    ``options``: keyword arguments per handler name, e.g. ``{"NonConvergingErrorHandler": {"nionic_steps": 5}}``;
    ``wall_time`` (s) goes to WalltimeHandler. ConfigError for an option of a handler not in the set or an
    argument the handler does not take.
    """
    chosen, opts = _checked(names, options, wall_time)
    classes = handler_classes()
    return [classes[name](**opts.get(name, {})) for name in chosen]


def _checked(
    names: Sequence[str] | None, options: Mapping[str, Mapping[str, Any]] | None, wall_time: int | None
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Names and per-handler keyword arguments, checked against the handlers' signatures (none is built:
    building a WalltimeHandler starts custodian's wall clock)."""
    chosen = resolve_names(names, wall_time=wall_time)
    opts = {k: dict(v) for k, v in (options or {}).items()}
    for name in opts:
        if name not in chosen:
            raise ConfigError(f"custodian handler options for {name!r}: not in the handler set {chosen}")
    if wall_time is not None:
        opts.setdefault(WALLTIME, {}).setdefault("wall_time", int(wall_time))
    classes = handler_classes()
    for name, kwargs in opts.items():
        params = [p for p in inspect.signature(classes[name].__init__).parameters if p not in ("self", "kwargs")]
        bad = sorted(set(kwargs) - set(params))
        if bad:
            raise ConfigError(f"custodian handler {name}: unknown option(s) {bad}; it takes {params}")
    return chosen, opts


def run_vasp_kwargs(
    names: Sequence[str] | None = None,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    wall_time: int | None = None,
) -> dict[str, Any]:
    """``run_vasp_kwargs`` for an atomate2 VASP maker: ``{"handlers": vasp_handlers(...)}``.

    The wall time is in the handler set already, so ``run_vasp``'s own ``wall_time`` stays unset (no duplicate).
    """
    return {"handlers": vasp_handlers(names, options=options, wall_time=wall_time)}


def handler_names(handlers: Sequence[Any]) -> list[str]:
    """Class names of handler instances (what a run's custodian.json records)."""
    return [type(h).__name__ for h in handlers]


class VaspHandlerConfig(BaseModel):
    """The custodian handler set of the VASP labeler (validated when the campaign config is read)."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] | None = Field(
        None, description="custodian VASP handler class names; None = atomate2's run_vasp defaults"
    )
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="keyword arguments per handler name"
    )
    wall_time: int | None = Field(
        None, gt=0, description="job wall time (s): adds WalltimeHandler, which stops VASP cleanly before it"
    )

    @model_validator(mode="after")
    def _check(self) -> VaspHandlerConfig:
        try:
            _checked(self.names, self.options, self.wall_time)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self

    def handlers(self) -> list[Any]:
        """The handler instances."""
        return vasp_handlers(self.names, options=self.options, wall_time=self.wall_time)

    def run_vasp_kwargs(self) -> dict[str, Any]:
        """``run_vasp_kwargs`` for the atomate2 maker."""
        return run_vasp_kwargs(self.names, options=self.options, wall_time=self.wall_time)
