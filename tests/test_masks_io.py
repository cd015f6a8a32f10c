"""Every PNG encoding real methods write decodes to the same object ids."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vosbench.errors import InputError
from vosbench.io import DAVIS_PALETTE, read_mask, read_mask_stack, write_mask


@pytest.fixture
def binary_mask():
    rng = np.random.default_rng(1)
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 8:30] = 1
    mask[rng.random(mask.shape) < 0.05] ^= 1
    return mask


@pytest.fixture
def id_mask():
    mask = np.zeros((30, 40), np.uint8)
    mask[2:10, 2:10] = 1
    mask[12:25, 5:20] = 2
    mask[20:28, 25:38] = 3
    mask[0, :] = 255
    return mask


def _save(array_or_image, path):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    image.save(path)
    return path


@pytest.mark.parametrize("encoding", ["1bit", "L255", "L01", "P01", "P0255", "LA", "RGBA_gray", "RGB_gray"])
def test_binary_encodings(tmp_path, binary_mask, encoding):
    m = binary_mask
    if encoding == "1bit":
        image = Image.fromarray(m.astype(bool)).convert("1")
    elif encoding == "L255":
        image = Image.fromarray(m * 255, mode="L")
    elif encoding == "L01":
        image = Image.fromarray(m, mode="L")
    elif encoding in ("P01", "P0255"):
        image = Image.fromarray(m if encoding == "P01" else m * 255, mode="P")
        image.putpalette(DAVIS_PALETTE.ravel().tolist())
    elif encoding == "LA":
        image = Image.fromarray(np.dstack([m * 255, np.full_like(m, 255)]), mode="LA")
    elif encoding == "RGBA_gray":
        image = Image.fromarray(np.dstack([m * 255] * 3 + [np.full_like(m, 255)]), mode="RGBA")
    else:
        image = Image.fromarray(np.dstack([m * 255] * 3), mode="RGB")
    path = _save(image, tmp_path / f"{encoding}.png")
    assert np.array_equal(read_mask(path), m)
    assert np.array_equal(read_mask(path, binary=True), m)


def test_palette_ids_and_void_round_trip(tmp_path, id_mask):
    write_mask(tmp_path / "a.png", id_mask)
    assert Image.open(tmp_path / "a.png").mode == "P"
    assert np.array_equal(read_mask(tmp_path / "a.png"), id_mask)


def test_palette_coloured_rgb(tmp_path, id_mask):
    rgb = DAVIS_PALETTE[id_mask]
    path = _save(Image.fromarray(rgb, mode="RGB"), tmp_path / "rgb.png")
    assert np.array_equal(read_mask(path), id_mask)


def test_unknown_rgb_colour_names_the_file(tmp_path, id_mask):
    rgb = DAVIS_PALETTE[id_mask].copy()
    rgb[3, 3] = (1, 2, 3)
    path = _save(Image.fromarray(rgb, mode="RGB"), tmp_path / "odd.png")
    with pytest.raises(InputError, match="odd.png"):
        read_mask(path)


def test_unreadable_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png"):
        read_mask(bad)
    with pytest.raises(InputError, match="missing.png"):
        read_mask(tmp_path / "missing.png")


def test_stack_is_uint8_and_rejects_mixed_sizes(tmp_path, id_mask):
    write_mask(tmp_path / "0.png", id_mask)
    write_mask(tmp_path / "1.png", id_mask[:, :20])
    stack = read_mask_stack([tmp_path / "0.png", tmp_path / "0.png"])
    assert stack.dtype == np.uint8 and stack.shape == (2,) + id_mask.shape
    with pytest.raises(InputError, match="1.png"):
        read_mask_stack([tmp_path / "0.png", tmp_path / "1.png"])


def test_write_is_atomic_on_failure(tmp_path, id_mask):
    target = tmp_path / "keep.png"
    write_mask(target, id_mask)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_mask(target, np.zeros((2, 2, 2)))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


@pytest.mark.shared
def test_real_davis2016_encodings_agree(davis2016_root):
    """The 7 published folders use 1-bit, L 0/255, L 0/1, P 0/1 and P 0/255; all read as 0/1."""
    seen_modes = set()
    for method in ["osvos", "stm", "premvos", "onavos", "andiff", "ranet", "fseg"]:
        path = davis2016_root / "results" / method / "blackswan" / "00001.png"
        seen_modes.add(Image.open(path).mode)
        assert set(np.unique(read_mask(path)).tolist()) == {0, 1}
    assert {"1", "L", "P"} <= seen_modes
    la = davis2016_root / "Annotations" / "480p" / "bear" / "00077.png"
    assert Image.open(la).mode == "LA"
    assert set(np.unique(read_mask(la, binary=True)).tolist()) <= {0, 1}


def test_atomic_writes_get_ordinary_permissions(tmp_path, id_mask):
    import os

    from vosbench.io import atomic_write

    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "page.html", "<html></html>")
        write_mask(tmp_path / "m.png", id_mask)
    finally:
        os.umask(umask)
    assert (tmp_path / "page.html").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o644
