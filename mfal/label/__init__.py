"""Labelers: structures + fidelity -> FrameDocs (teacher, vasp, cp2k, replay) and quality gates.

``get_labeler(name, **options)`` builds one by name; heavy imports happen only when a labeler is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from mfal.errors import ConfigError
from mfal.label.base import Labeler

#: labeler name -> (module, class name)
LABELERS: dict[str, tuple[str, str]] = {
    "teacher": ("mfal.label.teacher", "TeacherLabeler"),
    "vasp": ("mfal.label.vasp", "VaspLabeler"),
    "cp2k": ("mfal.label.cp2k", "Cp2kLabeler"),
    "replay": ("mfal.label.replay", "ReplayLabeler"),
}


def get_labeler(name: str, **options: Any) -> Labeler:
    """Build the labeler ``name`` with its options; unknown name -> ConfigError listing the known ones."""
    if name not in LABELERS:
        raise ConfigError(f"labeler={name!r} not in known labelers {sorted(LABELERS)}")
    module_name, cls_name = LABELERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"labeler={name!r} is not available ({module_name}: {err})") from err
    cls = getattr(module, cls_name, None) or _find_labeler_class(module, name)
    if cls is None:
        raise ConfigError(f"labeler={name!r}: no labeler class in {module_name}")
    return cls(**options)


def _find_labeler_class(module: Any, name: str) -> type | None:
    """A class in ``module`` whose ``name`` attribute is ``name`` and that has a ``label`` method."""
    for obj in vars(module).values():
        if (
            isinstance(obj, type)
            and getattr(obj, "name", None) == name
            and callable(getattr(obj, "label", None))
        ):
            return obj
    return None


__all__ = ["LABELERS", "Labeler", "get_labeler"]
