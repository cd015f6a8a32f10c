"""Fast paths against their slow twins: the direct PNG decoder against PIL, the disk dilation as a
union of rectangles against OpenCV's generic dilation, and the pair matrix against one call per pair."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vosbench.io import masks
from vosbench.metrics.boundary import _disk_kernel, dilate_disk
from vosbench.metrics.frames import object_frame_scores, pairwise_frame_scores
from vosbench.metrics.reference import f_measure_reference, jaccard_reference


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_row(kind: int, row: bytes, prior: bytes) -> bytes:
    out = bytearray()
    for i, value in enumerate(row):
        left = row[i - 1] if i else 0
        up = prior[i]
        upleft = prior[i - 1] if i else 0
        predictor = [0, left, up, (left + up) // 2, _paeth(left, up, upleft)][kind]
        out.append((value - predictor) % 256)
    return bytes([kind]) + bytes(out)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(values: np.ndarray, depth: int, colour: int, filters: list[int], n_idat: int) -> bytes:
    """A PNG written by hand, so that every filter type, bit depth and IDAT split can be chosen."""
    height, width = values.shape
    rows = []
    for y in range(height):
        if depth == 8:
            packed = values[y].astype(np.uint8).tobytes()
        else:
            per_byte = 8 // depth
            padded = np.zeros(-(-width // per_byte) * per_byte, np.uint8)
            padded[:width] = values[y]
            groups = padded.reshape(-1, per_byte)
            packed = bytes(int(sum(int(v) << (8 - depth * (i + 1)) for i, v in enumerate(g))) for g in groups)
        rows.append(packed)
    raw = b""
    prior = bytes(len(rows[0]))
    for y, row in enumerate(rows):
        raw += _filter_row(filters[y % len(filters)], row, prior)
        prior = row
    compressed = zlib.compress(raw)
    cut = np.linspace(0, len(compressed), n_idat + 1).astype(int)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    if colour == 3:
        png += _chunk(b"PLTE", masks.DAVIS_PALETTE[: 1 << depth].tobytes())
    for a, b in zip(cut[:-1], cut[1:]):
        png += _chunk(b"IDAT", compressed[a:b])
    return png + _chunk(b"IEND", b"")


def _pil_ids(path) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        return masks._decode(image, path)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 19), st.integers(1, 23), st.sampled_from([1, 2, 4, 8]), st.sampled_from([0, 3]),
       st.lists(st.integers(0, 4), min_size=1, max_size=6), st.integers(1, 3), st.integers(0, 2**32 - 1),
       st.booleans())
def test_direct_png_decoder_equals_pil(tmp_path_factory, height, width, depth, colour, filters, n_idat, seed,
                                       binary_255):
    rng = np.random.default_rng(seed)
    top = (1 << depth) - 1
    values = rng.integers(0, top + 1, (height, width)).astype(np.uint8)
    if binary_255 and depth == 8:
        values = np.where(values > 128, 255, 0).astype(np.uint8)  # 0/255 masks read as 0/1
    data = encode_png(values, depth, colour, filters, n_idat)
    path = tmp_path_factory.mktemp("png") / "mask.png"
    path.write_bytes(data)
    expected = _pil_ids(path)
    got = masks.read_mask(path)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(masks.read_mask(path, binary=True), (expected != 0).astype(np.uint8))
    # Average and Paeth rows are left to PIL; the rest must take the direct path.
    used_fast = masks._decode_png_fast(data) is not None
    assert used_fast == (max(filters[: height] if height < len(filters) else filters) <= 2)


def test_truncated_png_is_an_input_error(tmp_path):
    path = tmp_path / "mask.png"
    path.write_bytes(encode_png(np.ones((20, 20), np.uint8), 8, 3, [0], 1)[:-30])
    try:
        masks.read_mask(path)
    except masks.InputError as exc:
        assert str(path) in str(exc)
    else:  # pragma: no cover - the assertion below explains
        raise AssertionError("a truncated PNG was read without error")


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.floats(0.0, 0.2))
def test_sparse_shapes_at_large_radii_equal_the_reference(seed, n_blobs, spread):
    """Blobs at all distances from each other, so that boundary pixels fall between the two squares."""
    rng = np.random.default_rng(seed)
    h, w = 40, 56
    gt = np.zeros((1, h, w), np.uint8)
    pred = np.zeros_like(gt)
    for _ in range(n_blobs):
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        gt[0, y:y + rng.integers(1, 8), x:x + rng.integers(1, 8)] = 1
        dy, dx = (rng.normal(0, 1 + 40 * spread, 2)).astype(int)
        y2, x2 = np.clip(y + dy, 0, h - 2), np.clip(x + dx, 0, w - 2)
        pred[0, y2:y2 + rng.integers(1, 8), x2:x2 + rng.integers(1, 8)] = 1
    for bound_th in (0.05, 0.12, 0.2, 5):
        j, f = object_frame_scores(gt, pred, [1], bound_th=bound_th)
        assert f[0, 0] == f_measure_reference(gt[0] == 1, pred[0] == 1, bound_th=bound_th)


def test_disk_is_scikit_image_disk():
    from skimage.morphology import disk

    for radius in range(0, 40):
        np.testing.assert_array_equal(_disk_kernel(radius), disk(radius).astype(np.uint8))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_rectangle_dilation_equals_disk_dilation(radius, height, width, seed):
    image = (np.random.default_rng(seed).random((height, width)) < 0.05).astype(np.uint8)
    expected = cv2.dilate(image, _disk_kernel(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    np.testing.assert_array_equal(dilate_disk(image, radius), expected)


def test_rectangle_dilation_equals_disk_dilation_for_every_radius_up_to_40():
    # The Horner-style passes depend on the radius's rectangles: check every radius a 1080p frame
    # (diagonal 2,203 px, radius 18 at 0.008) or a larger bound_th could ask for.
    rng = np.random.default_rng(3)
    image = (rng.random((90, 130)) < 0.02).astype(np.uint8)
    image[0, 5] = image[-1, -1] = image[45, 0] = 1      # pixels on the border
    for radius in range(0, 41):
        expected = cv2.dilate(image, _disk_kernel(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        np.testing.assert_array_equal(dilate_disk(image, radius), expected, err_msg=f"radius {radius}")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**32 - 1), st.booleans(),
       st.sampled_from([0.008, 0.05, 0.1, 0.2, 3]))
def test_pair_matrix_equals_references(n_frames, n_objects, n_props, seed, with_void, bound_th):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(3, 26, 2)
    gt = rng.integers(0, n_objects + 1, (n_frames, h, w)).astype(np.uint8)
    pred = rng.integers(0, n_props + 1, (n_frames, h, w)).astype(np.uint8)
    gt[:, : h // 2] = 0
    pred[:, h // 3: h // 2] = 0
    void = (rng.random((n_frames, h, w)) < 0.1) if with_void else None
    objects, proposals = list(range(1, n_objects + 1)), list(range(1, n_props + 1))
    j, f = pairwise_frame_scores(gt, pred, objects, proposals, void=void, bound_th=bound_th)
    assert j.shape == f.shape == (n_props, n_objects, n_frames)
    for p_index, p in enumerate(proposals):
        j_row, f_row = object_frame_scores(gt, pred, objects, void=void, pred_ids=[p] * n_objects,
                                           bound_th=bound_th)
        np.testing.assert_array_equal(j[p_index], j_row)
        np.testing.assert_array_equal(f[p_index], f_row)
        for k, o in enumerate(objects):
            for t in range(n_frames):
                v = None if void is None else void[t]
                assert j[p_index, k, t] == jaccard_reference(gt[t] == o, pred[t] == p, v)
                assert f[p_index, k, t] == f_measure_reference(gt[t] == o, pred[t] == p, v, bound_th=bound_th)
