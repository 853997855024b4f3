"""Initial magnetic moments (μB) of spin-polarized DFT labels — the one module the VASP and CP2K labelers use.

A moment per site is ``|m|`` × sign:

- ``|m|``: a ``magmom`` site property wins where set (e.g. a model's prediction, or a hand-made order); else,
  with ``source="oxidation"``, the high-spin moment of the site's guessed oxidation state for transition metals
  (pymatgen's ``BVAnalyzer`` per site, else ``Composition.oxi_state_guesses``; ``Species.get_crystal_field_spin``
  octahedral high spin: Fe2+ 4, Fe3+ 5, Mn2+ 5, Mn3+ 4, Co2+ 3 μB); else the labeler's per-element table
  (VASP: Fe 5, Mn 5, others 0.6 as in MP; CP2K: Fe 4, Mn 5, others 0); ``source="chemistry"`` is the
  oxidation-state guess under its issue name; ``source="model"`` takes |m| from the site property
  ``mfal_predicted_magmom`` (the HF moment head's prediction, μB per site: :func:`attach_predicted`,
  :func:`predict_magmoms`) and falls back to the chemistry guess (recorded) where no prediction is attached;
- sign: the collinear ``ordering`` of the magnetic sites (transition metals, lanthanides and actinides with
  |m| > 0): ``fm`` all up; ``afm`` alternating in site order (the CP2K recipe's LiFePO4 AFM start);
  ``afm-a``/``afm-b``/``afm-c`` a layered sublattice AFM (up where the fractional coordinate along that axis is
  < 0.5, down elsewhere; origin-dependent: check it with :func:`mfal.label.inputs.write_inputs`); or an explicit
  sign string such as ``+-+-`` (one character per magnetic site, in site order). Signs of a ``magmom`` site
  property are kept. Not yet: symmetry-distinct orderings from pymatgen's ``MagneticStructureEnumerator`` (needs
  enumlib's ``enum.x``, not installed here).

:func:`initial_moments` returns the moments and a record (``ordering``, ``magmom_source``) for ``FrameDoc.calc``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pymatgen.core import Element, Structure

from mfal.errors import ConfigError, DataError

MomentSource = Literal["table", "oxidation", "chemistry", "model"]
#: site property holding a model's predicted moments (μB per site, |m| used, sign ignored)
PREDICTED = "mfal_predicted_magmom"
#: decimals of model moments written to MAGMOM (μB)
MODEL_DECIMALS = 3
#: ordering ids besides an explicit sign string
NAMED_ORDERINGS: tuple[str, ...] = ("fm", "afm", "afm-a", "afm-b", "afm-c")
_SIGNS_RE = re.compile(r"^[+-]+$")


def check_ordering(ordering: str) -> str:
    """``ordering`` if it is a known id or a sign string (``+-+-``); else ValueError naming the choices."""
    if ordering in NAMED_ORDERINGS or _SIGNS_RE.match(ordering):
        return ordering
    raise ValueError(
        f"ordering={ordering!r}: expected one of {list(NAMED_ORDERINGS)} or a sign string like '+-+-'"
    )


def is_magnetic_element(symbol: str) -> bool:
    """Transition metals, lanthanides and actinides: the sites an ordering assigns signs to."""
    el = Element(symbol)
    return bool(el.is_transition_metal or el.is_lanthanoid or el.is_actinoid)


def guess_oxidation_states(structure: Structure) -> list[float] | None:
    """Oxidation state per site: bond valence (BVAnalyzer), else the best composition guess; None if neither."""
    from pymatgen.analysis.bond_valence import BVAnalyzer

    plain = structure.copy()
    plain.remove_oxidation_states()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return [float(v) for v in BVAnalyzer().get_valences(plain)]
        except Exception:  # noqa: BLE001 - BVAnalyzer raises ValueError or worse on odd cells
            pass
        guesses = plain.composition.oxi_state_guesses(max_sites=-50)
    if not guesses:
        return None
    # a mixed-valence guess is an average per element: round per site, keep the element's total
    guess = guesses[0]
    out: list[float] = []
    seen: dict[str, int] = {}
    for site in plain:
        el = site.specie.symbol
        n = seen.get(el, 0)
        seen[el] = n + 1
        total, count = guess[el] * plain.composition[el], int(plain.composition[el])
        lo = int(np.floor(guess[el]))
        n_hi = round(total - lo * count)  # sites of this element at lo + 1
        out.append(float(lo + 1 if n < n_hi else lo))
    return out


def high_spin_moment(symbol: str, oxidation_state: float) -> float | None:
    """Octahedral high-spin moment (μB, unpaired d electrons) of a transition-metal ion; None if not defined."""
    from pymatgen.core import Species

    if not Element(symbol).is_transition_metal or oxidation_state != int(oxidation_state):
        return None
    try:
        return float(Species(symbol, int(oxidation_state)).get_crystal_field_spin("oct", "high"))
    except (AttributeError, ValueError):
        return None


def magnitudes(
    structure: Structure,
    per_element: Mapping[str, float],
    *,
    default: float = 0.0,
    source: MomentSource = "table",
) -> list[float]:
    """|m| per site (μB) from the chemistry (site properties are handled by :func:`initial_moments`)."""
    oxi = guess_oxidation_states(structure) if source in ("oxidation", "chemistry", "model") else None
    out = []
    for i, site in enumerate(structure):
        el = site.specie.symbol
        m = high_spin_moment(el, oxi[i]) if oxi is not None else None
        out.append(float(m) if m is not None else float(per_element.get(el, default)))
    return out


def ordering_signs(structure: Structure, moments: Sequence[float], ordering: str) -> list[float]:
    """±1 per site: the ``ordering``'s sign on magnetic sites (TM/lanthanide/actinide, |m| > 0), +1 elsewhere."""
    check_ordering(ordering)
    mag = [i for i, site in enumerate(structure) if moments[i] and is_magnetic_element(site.specie.symbol)]
    signs = [1.0] * len(structure)
    if ordering == "fm":
        return signs
    if ordering == "afm":
        for k, i in enumerate(mag):
            signs[i] = 1.0 if k % 2 == 0 else -1.0
    elif ordering.startswith("afm-"):
        axis = "abc".index(ordering[-1])
        for i in mag:
            frac = structure[i].frac_coords[axis] % 1.0
            signs[i] = 1.0 if frac < 0.5 - 1e-6 else -1.0
    else:
        if len(ordering) != len(mag):
            raise ConfigError(
                f"ordering={ordering!r} has {len(ordering)} signs, the cell has {len(mag)} magnetic sites"
            )
        for ch, i in zip(ordering, mag, strict=True):
            signs[i] = 1.0 if ch == "+" else -1.0
    return signs


def initial_moments(
    structure: Structure,
    per_element: Mapping[str, float],
    *,
    default: float = 0.0,
    source: MomentSource = "table",
    ordering: str = "fm",
) -> tuple[list[float], dict[str, Any]]:
    """Initial moment per site (μB) and the record for ``FrameDoc.calc`` (``ordering``, ``magmom_source``).

    A ``magmom`` site property wins (its values and signs, vectors summed); otherwise :func:`magnitudes` ×
    :func:`ordering_signs`.
    """
    props = structure.site_properties.get("magmom")
    if props is not None and all(p is not None for p in props):
        moments = [float(np.sum(p)) for p in props]
        return moments, {"ordering": "site_property", "magmom_source": "site_property"}
    record: dict[str, Any] = {"ordering": ordering, "magmom_source": source}
    predicted = predicted_magmoms(structure) if source == "model" else None
    if predicted is not None:
        mags = [round(abs(m), MODEL_DECIMALS) for m in predicted]
    else:
        mags = magnitudes(structure, per_element, default=default, source=source)
        if source == "model":
            record = {**record, "magmom_source": "chemistry", "model_fallback": f"no {PREDICTED} site property"}
    if props is not None:  # partly set: the set sites win
        mags = [abs(float(np.sum(p))) if p is not None else m for p, m in zip(props, mags, strict=True)]
    signs = ordering_signs(structure, mags, ordering)
    if props is not None:
        signs = [
            (-1.0 if float(np.sum(p)) < 0 else 1.0) if p is not None else s
            for p, s in zip(props, signs, strict=True)
        ]
    moments = [m * s for m, s in zip(mags, signs, strict=True)]
    return moments, record


def with_initial_magmoms(
    structure: Structure, magmoms: Sequence[float], *, keep_signs: bool = True
) -> Structure:
    """Copy of ``structure`` with the ``magmom`` site property set from ``magmoms`` (μB), e.g. a model's prediction.

    CHGNet predicts |m| only; with ``keep_signs`` the signs of an existing ``magmom`` property (e.g. an AFM
    order) are kept and only the magnitudes are taken from ``magmoms``.
    """
    new = np.abs(np.asarray(magmoms, dtype=float)) if keep_signs else np.asarray(magmoms, dtype=float)
    if len(new) != len(structure):
        raise ConfigError(f"magmoms has {len(new)} values, expected {len(structure)} sites")
    old = structure.site_properties.get("magmom")
    if keep_signs and old is not None:
        new = new * np.where(np.asarray(old, dtype=float) < 0, -1.0, 1.0)
    out = structure.copy()
    out.add_site_property("magmom", new.tolist())
    return out


def predicted_magmoms(structure: Structure) -> list[float] | None:
    """The ``mfal_predicted_magmom`` site property (μB per site) if every site has one, else None."""
    values = structure.site_properties.get(PREDICTED)
    if values is None or any(v is None for v in values):
        return None
    return [float(np.sum(v)) for v in values]


def attach_predicted(structure: Structure, magmoms: Sequence[float] | None) -> Structure:
    """Copy of ``structure`` with the site property ``mfal_predicted_magmom`` (μB per site, e.g. the ensemble-mean
    moments of the HF head); ``magmoms`` None returns an unchanged copy. Wrong length or non-finite -> DataError."""
    out = structure.copy()
    if magmoms is None:
        return out
    values = np.asarray(magmoms, dtype=float).reshape(-1)
    if len(values) != len(structure):
        raise DataError(f"{PREDICTED}: {len(values)} values for a structure of {len(structure)} sites")
    if not np.all(np.isfinite(values)):
        raise DataError(f"{PREDICTED}: non-finite predicted moments for {structure.composition.reduced_formula}")
    out.add_site_property(PREDICTED, values.tolist())
    return out


def attach_scored(structures: Sequence[Structure], scores: Any, fidelity: str) -> list[Structure]:
    """Each structure with its predicted moments at ``fidelity`` from a round's scores, looked up by
    ``properties["candidate_id"]`` in ``scores.ids`` (a RoundScores: ``.index()`` and
    ``.fidelities[f].magmoms``). No model yet, a non-magnetic fidelity or an unscored id -> the structure as it is
    (the labeler then falls back to the chemistry guess, recorded in ``calc``)."""
    fid = scores.fidelities.get(fidelity) if getattr(scores, "has_model", False) else None
    moments = getattr(fid, "magmoms", None)
    if moments is None:
        return [s.copy() for s in structures]
    where = scores.index()
    out = []
    for s in structures:
        i = where.get((s.properties or {}).get("candidate_id"))
        out.append(attach_predicted(s, moments[i]) if i is not None else s.copy())
    return out


def moments_from_model(
    structure: Structure, ordering: str = "fm", *, magmoms: Sequence[float] | None = None
) -> list[float]:
    """Initial moments (μB) from a model: |m| of ``magmoms`` (default: the ``mfal_predicted_magmom`` site
    property), rounded to 0.001 μB, with the signs of ``ordering``. No prediction -> DataError."""
    values = predicted_magmoms(structure) if magmoms is None else [float(m) for m in magmoms]
    if values is None:
        raise DataError(f"{structure.composition.reduced_formula}: no {PREDICTED} site property to take |m| from")
    if len(values) != len(structure):
        raise DataError(f"magmoms: {len(values)} values for a structure of {len(structure)} sites")
    mags = [round(abs(m), MODEL_DECIMALS) for m in values]
    signs = ordering_signs(structure, mags, ordering)
    return [m * s for m, s in zip(mags, signs, strict=True)]


def predict_magmoms(
    model: Any, structures: Sequence[Structure], fidelity: str | None = None
) -> list[list[float]]:
    """Site moments (μB) of each structure from an MFCHGNet (or a checkpoint path, loaded with weights_only) at
    ``fidelity`` (default: the model's last magnetic fidelity, i.e. the HF moment head)."""
    from mfal.model import MFCHGNet

    if not isinstance(model, MFCHGNet):
        model = MFCHGNet.load(model)
    magnetic = tuple(getattr(model, "magnetic_fidelities", ()))
    if fidelity is None or fidelity not in magnetic:
        if not magnetic:
            raise ConfigError("model has no magnetic fidelity: its moment head was never trained on spin labels")
        fidelity = magnetic[-1]
    preds = model.predict(list(structures), fidelity, task="em")
    return [[float(v) for v in p["m"]] for p in preds]


def summary(moments: Sequence[float] | None) -> str:
    """One-line moment list (μB) with runs compressed VASP-style, e.g. ``4*0 4 -4 4 -4 20*0``; None -> ``none``."""
    if moments is None:
        return "none"
    parts: list[str] = []
    for m in moments:
        text = f"{m:g}"
        if parts and parts[-1].split("*")[-1] == text:
            last = parts[-1]
            n = int(last.split("*")[0]) + 1 if "*" in last else 2
            parts[-1] = f"{n}*{text}"
        else:
            parts.append(text)
    return " ".join(parts)


__all__ = [
    "NAMED_ORDERINGS",
    "PREDICTED",
    "attach_predicted",
    "attach_scored",
    "moments_from_model",
    "predict_magmoms",
    "predicted_magmoms",
    "check_ordering",
    "guess_oxidation_states",
    "high_spin_moment",
    "initial_moments",
    "is_magnetic_element",
    "magnitudes",
    "ordering_signs",
    "summary",
    "with_initial_magmoms",
]
