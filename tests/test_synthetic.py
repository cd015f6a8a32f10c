"""The generated dataset: DAVIS 2017 layout, determinism, what happens in it, atomic creation."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from vosbench.errors import InputError
from vosbench.io import DAVIS_PALETTE, VOID_LABEL, read_mask
from vosbench.io.datasets import DavisDataset
from vosbench.io import synthetic
from vosbench.io.synthetic import SyntheticParams, default_dataset_root, generate_dataset

TINY = SyntheticParams(n_sequences=3, n_frames=8, height=64, width=96, max_objects=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("gen") / "tiny", seed=7, params=TINY)


@pytest.fixture(scope="module")
def featured(tmp_path_factory):
    """Every sequence has a leaving object and void borders, so each feature can be checked."""
    params = SyntheticParams(n_sequences=2, n_frames=12, height=72, width=96, max_objects=3,
                             leave_fraction=1.0, void_fraction=1.0)
    return generate_dataset(tmp_path_factory.mktemp("gen") / "featured", seed=1, params=params)


def _manifest(root):
    return json.loads((root / synthetic.MANIFEST_NAME).read_text())


def _mask_bytes(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "Annotations").rglob("*.png"))}


def test_layout_is_davis_2017(tiny):
    val = DavisDataset(tiny, year=2017, split="val")
    train = DavisDataset(tiny, year=2017, split="train")
    assert len(val.sequence_names()) == TINY.n_val and len(train.sequence_names()) == TINY.n_train
    assert TINY.n_val + TINY.n_train == TINY.n_sequences and TINY.n_val > TINY.n_train
    for dataset in (val, train):
        for seq in dataset.sequence_names():
            frames = dataset.frame_names(seq)
            assert frames == [f"{t:05d}" for t in range(TINY.n_frames)]
            assert dataset.image_path(seq, frames[0]) == tiny / "JPEGImages" / "480p" / seq / "00000.jpg"
            assert dataset.read_frame(seq, frames[-1]).shape == (TINY.height, TINY.width, 3)
            with Image.open(dataset.annotation_path(seq, frames[0])) as png:
                assert png.mode == "P"
                palette = np.array(png.getpalette()[:768], dtype=np.uint8).reshape(-1, 3)
            np.testing.assert_array_equal(palette[:len(DAVIS_PALETTE)], DAVIS_PALETTE[:len(palette)])
            assert dataset.read_annotations(seq).shape == (TINY.n_frames, TINY.height, TINY.width)
    assert not [p for p in tiny.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"


def test_same_seed_gives_byte_identical_masks(tiny, tmp_path):
    again = generate_dataset(tmp_path / "again", seed=7, params=TINY)
    assert _mask_bytes(again) == _mask_bytes(tiny)
    assert _manifest(again)["sequences"] == _manifest(tiny)["sequences"]
    other = generate_dataset(tmp_path / "other", seed=8, params=TINY)
    assert _mask_bytes(other) != _mask_bytes(tiny)


def test_every_object_is_on_the_first_frame_with_consecutive_ids(tiny):
    # The DAVIS 2017 protocol counts objects 1..max id of the first frame.
    dataset = DavisDataset(tiny, year=2017, split="val")
    for seq in dataset.sequence_names():
        gt = dataset.read_annotations(seq)
        first = set(np.unique(gt[0]).tolist()) - {0, VOID_LABEL}
        everywhere = set(np.unique(gt).tolist()) - {0, VOID_LABEL}
        assert first == everywhere == set(range(1, len(first) + 1))
        assert 2 <= len(first) <= TINY.max_objects


def test_objects_leave_and_come_back(featured):
    dataset = DavisDataset(featured, year=2017, split="val")
    manifest = _manifest(featured)["sequences"]
    for seq in dataset.sequence_names():
        gt = dataset.read_annotations(seq)
        leavers = [o["id"] for o in manifest[seq]["objects"] if o["leaves_and_returns"]]
        assert len(leavers) == 1
        present = (gt == leavers[0]).any(axis=(1, 2))
        gone = np.flatnonzero(~present)
        assert present[0] and gone.size, f"{seq}: object {leavers[0]} never leaves"
        assert present[gone[-1] + 1:].any(), f"{seq}: object {leavers[0]} does not come back"


def test_objects_occlude_each_other(featured, tiny):
    occluded = 0
    for root in (featured, tiny):
        dataset = DavisDataset(root, year=2017, split="val")
        for seq, info in _manifest(root)["sequences"].items():
            if info["split"] != "val":
                continue
            gt = dataset.read_annotations(seq)
            for obj in info["objects"]:
                visible = np.array(obj["visible_pixels"])
                unoccluded = np.array(obj["unoccluded_pixels"])
                assert np.all(visible <= unoccluded)
                if not info["void_borders"]:
                    np.testing.assert_array_equal((gt == obj["id"]).sum(axis=(1, 2)), visible)
                occluded += int(np.any(visible < unoccluded))
    assert occluded > 0


def test_void_bands_only_along_object_borders(featured, tiny):
    dataset = DavisDataset(featured, year=2017, split="val")
    for seq in dataset.sequence_names():
        gt = dataset.read_annotations(seq)
        void = gt == VOID_LABEL
        assert void.any()
        # Thin bands hugging the objects (where thin slivers of objects meet, a few pixels more):
        # nothing survives a 7x7 erosion, and nearly every void pixel lies within 3 pixels of an object.
        frame_struct = np.zeros((3, 7, 7), bool)
        frame_struct[1] = True
        assert not ndimage.binary_erosion(void, structure=frame_struct).any()
        objects = (gt > 0) & ~void
        near = ndimage.binary_dilation(objects, structure=np.pad(np.ones((1, 3, 3), bool), ((1, 1), (0, 0), (0, 0))),
                                       iterations=3)
        assert (void & near).sum() > 0.9 * void.sum()
    manifest = _manifest(tiny)["sequences"]
    plain = DavisDataset(tiny, year=2017, split="val")
    flags = {seq: manifest[seq]["void_borders"] for seq in plain.sequence_names()}
    assert set(flags.values()) == {True, False}, "the val split should mix sequences with and without void"
    for seq, has_void in flags.items():
        assert bool((plain.read_annotations(seq) == VOID_LABEL).any()) == has_void


def test_existing_dataset_is_reused_and_other_content_refused(tiny, tmp_path):
    before = _mask_bytes(tiny)
    assert generate_dataset(tiny, seed=7, params=TINY) == tiny
    assert _mask_bytes(tiny) == before
    with pytest.raises(InputError, match="already exists"):
        generate_dataset(tiny, seed=8, params=TINY)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=str(occupied)):
        generate_dataset(occupied, seed=0, params=TINY)
    assert (occupied / "notes.txt").read_text() == "mine"


def test_a_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    original = synthetic._write_sequence
    monkeypatch.setattr(synthetic, "_write_sequence", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_dataset(tmp_path / "broken", seed=0, params=TINY)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_default_root_is_generated_once_under_vosbench_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VOSBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(synthetic, "DEFAULT_PARAMS", TINY)
    root = default_dataset_root(seed=3)
    assert root.parent == tmp_path / "home" / "datasets"
    assert DavisDataset(root, year=2017, split="val").sequence_names()

    def no_second_generation(*args, **kwargs):
        raise AssertionError("the complete dataset should have been reused")

    monkeypatch.setattr(synthetic, "generate_dataset", no_second_generation)
    assert default_dataset_root(seed=3) == root
    # Another seed or other sizes live in another folder, never reusing this one.
    assert SyntheticParams(n_frames=9).key(3) != TINY.key(3) != TINY.key(4)


def test_read_mask_of_generated_palette(tiny):
    seq = DavisDataset(tiny, year=2017, split="val").sequence_names()[0]
    ids = read_mask(tiny / "Annotations" / "480p" / seq / "00000.png")
    assert ids.dtype == np.uint8 and ids.max() >= 2
