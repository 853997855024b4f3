"""Labelers: structures + fidelity -> FrameDocs (teacher, vasp, cp2k, replay) and quality gates.

Configs are typed: :data:`mfal.label.config.LabelerSpec` (a discriminated union on ``kind``) is what a campaign
config holds, :func:`mfal.label.config.build_labeler` builds the labeler. ``get_labeler(name, **options)`` is the
keyword shortcut for the same path (options validated by the kind's options model). Heavy imports (chgnet,
atomate2, custodian) happen only when a labeler runs.
"""

from __future__ import annotations

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
    """Build the labeler ``name`` from its options (validated like ``labelers.<f>.options`` in a campaign).

    Unknown name or option -> one-line ConfigError.
    """
    from mfal.label.config import build_labeler, parse_labeler_spec

    if name not in LABELERS:
        raise ConfigError(f"labeler={name!r} not in known labelers {sorted(LABELERS)}")
    return build_labeler(parse_labeler_spec({"kind": name, "options": options}))


__all__ = ["LABELERS", "Labeler", "get_labeler"]
