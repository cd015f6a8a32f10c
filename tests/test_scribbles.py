"""Scribble files in the DAVIS interactive format: reading real files, writing, checking, rasterising."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vosbench.errors import InputError
from vosbench.io.scribbles import (annotated_frames, dumps_scribbles, empty_scribbles, fuse_scribbles, is_empty,
                                   read_scribbles, scribbles_to_masks, write_scribbles)


@pytest.mark.shared
def test_reads_the_real_human_scribble_of_bear(davis_interactive_root):
    data = read_scribbles(davis_interactive_root / "Scribbles" / "bear-001-full.json", nb_frames=82)
    raw = json.loads((davis_interactive_root / "Scribbles" / "bear-001-full.json").read_text())
    assert data["sequence"] == "bear"
    assert annotated_frames(data) == [i for i, f in enumerate(raw["scribbles"]) if f]
    assert len(annotated_frames(data)) == 1
    first = data["scribbles"][annotated_frames(data)[0]][0]
    assert first["path"] == raw["scribbles"][annotated_frames(data)[0]][0]["path"]
    assert {s["object_id"] for f in data["scribbles"] for s in f} == {1}


@pytest.mark.shared
def test_reads_two_object_tennis_and_rasterises_both_objects(davis_interactive_root):
    data = read_scribbles(davis_interactive_root / "Scribbles" / "tennis" / "001.json")
    frame = annotated_frames(data)[0]
    masks = scribbles_to_masks(data, 480, 854)
    assert list(masks) == [frame]
    ids = set(np.unique(masks[frame]).tolist())
    assert ids == {-1} | {s["object_id"] for s in data["scribbles"][frame]}
    # Every path point lands on its object's pixels (points scaled by (W-1, H-1), truncated).
    for s in data["scribbles"][frame]:
        pts = (np.asarray(s["path"]) * [853, 479]).astype(int)
        assert np.isin(masks[frame][pts[:, 1], pts[:, 0]], [s["object_id"]]).mean() > 0.9


@pytest.mark.shared
def test_round_trip_is_byte_stable(davis_interactive_root, tmp_path):
    data = read_scribbles(davis_interactive_root / "Scribbles" / "bear" / "001.json")
    out = write_scribbles(tmp_path / "a.json", data)
    again = read_scribbles(out)
    assert again["scribbles"] == data["scribbles"]
    assert dumps_scribbles(again) == out.read_text()


def test_wrong_number_of_frames_names_the_file(tmp_path):
    path = write_scribbles(tmp_path / "s.json", empty_scribbles("seq", 3))
    with pytest.raises(InputError) as err:
        read_scribbles(path, nb_frames=4)
    assert str(path) in str(err.value) and "3 frames" in str(err.value)


@pytest.mark.parametrize("bad, problem", [
    ({"sequence": "s"}, "scribble file"),
    ({"sequence": "s", "scribbles": [[{"path": [[0.1, 0.2]]}]]}, "object_id"),
    ({"sequence": "s", "scribbles": [[{"path": [[0.1, 1.5]], "object_id": 1}]]}, "within [0, 1]"),
    ({"sequence": "s", "scribbles": [[{"path": [[0.1]], "object_id": 1}]]}, "[x, y] pairs"),
    ({"sequence": "s", "scribbles": [[{"path": [[0.1, 0.1]], "object_id": -1}]]}, "integer >= 0"),
])
def test_malformed_files_are_refused(tmp_path, bad, problem):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError) as err:
        read_scribbles(path)
    assert problem in str(err.value) and str(path) in str(err.value)


def test_not_json_and_missing(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        read_scribbles(tmp_path / "x.json")
    with pytest.raises(InputError, match="does not exist"):
        read_scribbles(tmp_path / "missing.json")


def test_write_is_atomic_and_refuses_bad_data(tmp_path):
    path = tmp_path / "s.json"
    write_scribbles(path, empty_scribbles("seq", 2))
    before = path.read_bytes()
    with pytest.raises(InputError):
        write_scribbles(path, {"sequence": "seq", "scribbles": [[{"path": [[2, 2]], "object_id": 1}], []]})
    assert path.read_bytes() == before


def test_fuse_keeps_both_and_copies():
    a = empty_scribbles("s", 3)
    b = empty_scribbles("s", 3)
    a["scribbles"][0].append({"path": [[0.1, 0.1], [0.2, 0.2]], "object_id": 1, "start_time": 0, "end_time": 1})
    b["scribbles"][0].append({"path": [[0.3, 0.3], [0.4, 0.4]], "object_id": 0, "start_time": 0, "end_time": 1})
    b["scribbles"][2].append({"path": [[0.5, 0.5], [0.6, 0.6]], "object_id": 2, "start_time": 0, "end_time": 1})
    fused = fuse_scribbles(a, b)
    assert [len(f) for f in fused["scribbles"]] == [2, 0, 1]
    assert annotated_frames(fused) == [0, 2] and not is_empty(fused) and is_empty(empty_scribbles("s", 1))
    fused["scribbles"][0][0]["object_id"] = 9
    assert a["scribbles"][0][0]["object_id"] == 1
    with pytest.raises(ValueError):
        fuse_scribbles(a, empty_scribbles("other", 3))


def test_rasterised_line_joins_its_points():
    data = empty_scribbles("s", 1)
    data["scribbles"][0].append({"path": [[0.0, 0.0], [1.0, 1.0]], "object_id": 3, "start_time": 0, "end_time": 0})
    mask = scribbles_to_masks(data, 11, 11)[0]
    assert np.array_equal(np.argwhere(mask == 3), np.array([[i, i] for i in range(11)]))
    assert (mask[mask != 3] == -1).all()
