"""``mfal import``/``mfal query`` on hostile inputs and unusable stores: one line, strict JSON, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from mfal.errors import MfalError
from mfal.store import open_store
from mfal.store.extxyz import frame_to_atoms

runner = CliRunner()


def _quarantined_nan_frame(frames_factory):
    (q,) = frames_factory(1)
    forces = np.asarray(q.forces)
    forces[:, :] = np.nan
    return q.model_copy(
        update={"status": "quarantined", "status_reason": "SCF diverged", "forces": forces.tolist()}
    )


def test_query_json_is_strict_json_for_nan_forces(tmp_path, frames_factory):
    store_dir = tmp_path / "store"
    q = _quarantined_nan_frame(frames_factory)
    with open_store(store_dir) as store:
        store.upsert_frames([q, *frames_factory(1, seed=3)])

    def refuse(token):
        raise AssertionError(f"invalid JSON token {token}")

    res = runner.invoke(app, ["query", "--store", str(store_dir), "--format", "json"])
    assert res.exit_code == 0, res.output
    docs = json.loads(res.stdout, parse_constant=refuse)
    (bad,) = [d for d in docs if d["frame_id"] == q.frame_id]
    assert bad["forces"][0] == [None, None, None]
    out = tmp_path / "export.json"
    res = runner.invoke(app, ["query", "--store", str(store_dir), "--format", "json", "--out", str(out)])
    assert res.exit_code == 0 and len(json.loads(out.read_text(), parse_constant=refuse)) == 2


@pytest.mark.parametrize("what", ["nan_positions", "binary_json", "no_lattice"])
def test_bad_import_inputs_are_one_line_and_write_nothing(tmp_path, frames_factory, what):
    import ase.io

    frames = frames_factory(2)
    if what == "nan_positions":
        path = tmp_path / "data.xyz"
        images = [frame_to_atoms(f) for f in frames]
        pos = images[1].get_positions()
        pos[0, 0] = np.nan
        images[1].set_positions(pos)
        ase.io.write(path, images, format="extxyz")
        expected = "data.xyz frame 1: positions has a non-finite value"
    elif what == "binary_json":
        path = tmp_path / "data.json"
        path.write_bytes(bytes(range(256)))
        expected = "data.json: not a text JSON file"
    else:
        path = tmp_path / "data.json"
        docs = [f.model_dump(mode="json") for f in frames]
        del docs[0]["structure"]["lattice"]
        path.write_text(json.dumps(docs))
        expected = "data.json frame 0: frame"
    store_dir = tmp_path / "store"
    res = runner.invoke(app, ["import", str(path), "--store", str(store_dir)])
    assert res.exit_code == 1 and isinstance(res.exception, MfalError), res.output
    assert expected in str(res.exception) and "\n" not in str(res.exception)
    assert not store_dir.exists()


def test_cli_query_of_a_read_only_store_works_and_import_fails_in_one_line(
    tmp_path, frames_factory, unprivileged, read_only_tree
):
    parent = tmp_path / "ro"
    store_dir = parent / "store"
    frames = frames_factory(2)
    with open_store(store_dir) as store:
        store.upsert_frames(frames)
    data = tmp_path / "more.json"
    data.write_text(json.dumps([f.model_dump(mode="json") for f in frames_factory(1, seed=4)]))
    code = "import sys; from flows.cli import main; sys.argv[0] = 'mfal'; main()"
    with read_only_tree(parent):
        prefix = [*unprivileged, sys.executable, "-c", code]
        query = subprocess.run(
            [*prefix, "query", "--store", str(store_dir), "--format", "json"], capture_output=True, text=True
        )
        imp = subprocess.run(
            [*prefix, "import", str(data), "--store", str(store_dir)], capture_output=True, text=True
        )
    assert query.returncode == 0, query.stderr[-2000:]
    assert {d["frame_id"] for d in json.loads(query.stdout)} == {f.frame_id for f in frames}
    assert imp.returncode == 1 and len(imp.stderr.strip().splitlines()) == 1, imp.stderr[-2000:]
    assert f"store {store_dir} is read-only" in imp.stderr
