"""Hostile and careless inputs to the readers and the importer: one DataError line naming file, frame and field,
and nothing written (issue 15 items 2, 8, 14, 15)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfal.errors import DataError
from mfal.store import StoreConfig, open_store
from mfal.store.extxyz import frame_to_atoms, iter_extxyz, read_extxyz, write_extxyz
from mfal.store.importer import import_paths
from mfal.store.jsonio import read_json, write_json


def _write_atoms(path, frames, mutate=None):
    import ase.io

    images = [frame_to_atoms(f) for f in frames]
    if mutate is not None:
        mutate(images)
    ase.io.write(path, images, format="extxyz")
    return path


def _nan_positions(images):
    pos = images[1].get_positions()
    pos[2, 1] = np.nan
    images[1].set_positions(pos)


def _nan_cell(images):
    cell = images[1].cell[:].copy()
    cell[0, 0] = np.inf
    images[1].set_cell(cell)


def _nan_magmoms(images):
    images[1].calc.results["magmoms"][4] = np.nan


def _nan_forces(images):
    images[1].calc.results["forces"][0, 0] = np.nan


def _nan_energy(images):
    images[1].calc.results["energy"] = float("nan")


def _nan_stress(images):
    images[1].info["mfal_stress_gpa"] = np.array([1.0] * 8 + [np.nan])


def _nan_cost(images):
    images[1].info["cost"] = float("inf")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_nan_positions, r"positions has a non-finite value at index \(2, 1\)"),
        (_nan_cell, r"lattice has a non-finite value at index \(0, 0\)"),
        (_nan_magmoms, r"magmoms contains NaN or inf"),
        (_nan_forces, r"forces contains NaN or inf"),
        (_nan_energy, r"energy is not finite"),
        (_nan_stress, r"stress contains NaN or inf"),
        (_nan_cost, r"cost has a non-finite value"),
    ],
)
def test_any_non_finite_number_in_an_extxyz_frame_is_refused(tmp_path, frames_factory, mutate, message):
    path = _write_atoms(tmp_path / "bad.xyz", frames_factory(3, fidelity="hf"), mutate)
    with pytest.raises(DataError, match=rf"bad.xyz frame 1: .*{message}") as err:
        read_extxyz(path)
    assert "\n" not in str(err.value)
    store_dir = tmp_path / "store"
    with open_store(store_dir) as store, pytest.raises(DataError, match=r"bad.xyz frame 1"):
        import_paths(store, [path])
    with open_store(store_dir) as store:
        assert store.count() == 0  # the two good frames were not written either


def test_eight_number_stress_and_bad_info_values_name_the_field(tmp_path, frames_factory):
    frames = frames_factory(2)

    def eight(images):
        images[0].info["mfal_stress_gpa"] = np.arange(8.0)

    with pytest.raises(DataError, match=r"s8.xyz frame 0: info 'mfal_stress_gpa' has 8 numbers; expected 9"):
        read_extxyz(_write_atoms(tmp_path / "s8.xyz", frames, eight))

    def text_round(images):
        images[1].info["round"] = "three"

    with pytest.raises(DataError, match=r"round.xyz frame 1: info 'round' is 'three'; expected a number"):
        read_extxyz(_write_atoms(tmp_path / "round.xyz", frames, text_round))


def test_unknown_element_in_extxyz_is_refused(tmp_path, frames_factory):
    path = tmp_path / "xx.xyz"
    write_extxyz(frames_factory(1), path)
    text = path.read_text().splitlines()
    text[2] = "Xx" + text[2][2:]  # first atom line: an element that does not exist
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"xx.xyz.*Xx"):
        read_extxyz(path)


def test_extxyz_is_streamed_and_a_file_over_the_limit_is_refused_before_reading(tmp_path, frames_factory):
    path = tmp_path / "big.xyz"
    write_extxyz(frames_factory(3), path)
    with path.open("a") as fh:
        fh.write("2\nnot a header\nFe 0 0\n")  # a broken 4th frame at the end
    frames = iter_extxyz(path, fidelity=None)
    assert next(frames).fidelity == "hf"  # frame 0 arrives before the rest of the file is parsed
    with pytest.raises(DataError, match=r"big.xyz: not a readable extxyz file \(frame 3"):
        list(frames)
    size = path.stat().st_size
    with pytest.raises(
        DataError, match=r"big.xyz: \d+ KiB is over the \d+ KiB limit for an extxyz file .*; split it"
    ):
        read_extxyz(path, max_bytes=size - 1)
    with open_store(StoreConfig(type="memory")) as store, pytest.raises(DataError, match="over the"):
        import_paths(store, [path], max_bytes=size - 1)


def test_json_reader_binary_missing_lattice_oversized_and_memory_error(tmp_path, frames_factory, monkeypatch):
    binary = tmp_path / "frames.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(DataError, match=r"frames.json: not a text JSON file"):
        read_json(binary)

    good = tmp_path / "good.json"
    write_json(frames_factory(2), good)
    data = json.loads(good.read_text())
    del data[1]["structure"]["lattice"]
    no_lattice = tmp_path / "nolattice.json"
    no_lattice.write_text(json.dumps(data))
    with pytest.raises(
        DataError, match=r"nolattice.json frame 1: frame \w+: structure has no 'lattice'"
    ) as err:
        read_json(no_lattice)
    assert "\n" not in str(err.value)

    with pytest.raises(
        DataError, match=r"good.json: \d+ KiB is over the 10 bytes limit for a JSON frame file"
    ):
        read_json(good, max_bytes=10)

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(json, "loads", out_of_memory)
    with pytest.raises(DataError, match=r"good.json: too large to load into memory"):
        read_json(good)


def test_json_export_is_strict_and_nan_forces_come_back(tmp_path, frames_factory, lifepo4):
    (q,) = frames_factory(1)
    forces = np.asarray(q.forces)
    forces[0, 0] = np.nan
    q = q.model_copy(
        update={"status": "quarantined", "status_reason": "SCF not converged", "forces": forces.tolist()}
    )
    path = tmp_path / "q.json"
    write_json([q], path)

    def refuse(token):
        raise AssertionError(f"non-strict JSON token {token}")

    (doc,) = json.loads(path.read_text(), parse_constant=refuse)
    assert doc["forces"][0][0] is None
    (back,) = read_json(path)
    assert np.isnan(back.forces[0][0]) and back.status == "quarantined"
