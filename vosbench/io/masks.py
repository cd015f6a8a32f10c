"""Mask PNGs in every encoding that real methods write, read as uint8 object-id arrays.

Accepted encodings (all decode to an ``(H, W) uint8`` array of object ids,
0 = background, 255 = void in DAVIS 2017 ground truth):

* ``1`` (1-bit): foreground -> 1.
* ``L`` 0/255: foreground -> 1 (the usual binary encoding).
* ``L`` with small integers (0/1, or ids 0..N): the values are the ids.
* ``P`` (palette, the DAVIS encoding): the palette indices are the ids, whatever
  the palette's colours are.  A ``P`` image holding only 0 and 255 is a binary
  mask written with index 255 and is read as object 1.
* ``LA`` / ``PA`` / ``RGBA``: the alpha channel is ignored.
* ``RGB`` drawn with the DAVIS palette colours: each colour maps back to its id;
  grey RGB (r = g = b) is read like ``L``.
* ``I;16`` / ``I``: integer ids below 256.

``binary=True`` (DAVIS 2016: one object per sequence) turns every non-zero
value into 1, so that 0/255, 0/1 and palette masks all agree.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

try:  # libdeflate inflates a whole mask in one call, about twice as fast as zlib-ng and 4x the stdlib zlib
    from deflate import zlib_decompress as _inflate_exact
except ImportError:  # pragma: no cover - deflate is a dependency; stay correct without it
    def _inflate_exact(data: bytes, size: int) -> bytes:
        return zlib.decompress(data, 15, size)

from vosbench.errors import InputError
from vosbench.io.atomic import atomic_path

VOID_LABEL = 255


def _davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL VOC colour map: 256 RGB colours, id i -> bits of i spread over RGB."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        r = g = b = 0
        c = index
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[index] = (r, g, b)
    return palette


DAVIS_PALETTE: np.ndarray = _davis_palette()
# Colour (packed as r << 16 | g << 8 | b) -> id, for masks saved as RGB.
_COLOUR_TO_ID = {int(r) << 16 | int(g) << 8 | int(b): i for i, (r, g, b) in enumerate(DAVIS_PALETTE)}


def _binary_like(values: np.ndarray) -> bool:
    """True when the only values are 0 and 255 (a binary mask written as 0/255)."""
    return bool(np.all((values == 0) | (values == 255)))


def _ids_from_indices(ids: np.ndarray) -> np.ndarray:
    """``P``/``L`` values -> ids: an image of only 0 and 255 (with some 255) is a binary mask, read as 0/1.

    Two cheap passes instead of a sort (np.unique): the maximum, and only when it
    is 255 a check for any value strictly between 0 and 255.
    """
    if ids.size == 0 or int(ids.max()) != 255:
        return ids
    # (v - 1) wraps 0 to 255 and 255 to 254: only values 1..254 fall below 254.
    if np.any((ids - np.uint8(1)) < np.uint8(254)):
        return ids
    return (ids == 255).view(np.uint8)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY, _PALETTE = 0, 3


def _unfilter(rows: np.ndarray) -> np.ndarray | None:
    """Undo PNG row filters of a one-byte-per-pixel image (bytes of each row after its filter byte).

    Filters None, Sub and Up are undone with vectorised cumulative sums (uint8
    arithmetic wraps modulo 256 as PNG requires). Average and Paeth depend on
    the decoded left neighbour pixel by pixel: return None and let PIL decode.
    """
    kinds = rows[:, 0]
    data = rows[:, 1:]
    if not kinds.any():
        return data  # a read-only view; callers copy it once, into wherever it goes
    if int(kinds.max()) > 2:
        return None
    out = np.array(data)
    sub = np.flatnonzero(kinds == 1)
    if sub.size:
        out[sub] = np.cumsum(out[sub], axis=1, dtype=np.uint8)
    up = np.flatnonzero(kinds == 2)
    if up.size:
        # A run of Up rows adds each row to the decoded row above it: a cumulative sum down the run,
        # starting from the row before the run (zeros above the first row).
        starts = up[np.r_[True, np.diff(up) > 1]]
        ends = up[np.r_[np.diff(up) > 1, True]]
        for start, end in zip(starts, ends):
            if start == 0:
                out[0:end + 1] = np.cumsum(out[0:end + 1], axis=0, dtype=np.uint8)
            else:
                out[start - 1:end + 1] = np.cumsum(out[start - 1:end + 1], axis=0, dtype=np.uint8)
    return out


def _decode_png_fast(data: bytes) -> tuple[str, np.ndarray] | None:
    """Decode the PNGs masks almost always are: palette or greyscale, 1 to 8 bits, not interlaced.

    Returns ``(mode, values)`` with the values PIL would give for that mode
    ("P": palette indices; "L": grey levels, 2- and 4-bit scaled to 0..255 as PIL
    does; "1": 0/1), or None for anything else (PIL then decodes it, and raises
    on broken files). Decoding is the floor of an evaluation's time: this skips
    PIL's per-image overhead and its copy into numpy, and inflates with libdeflate.
    """
    if len(data) < 45 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if colour not in (_GREY, _PALETTE) or depth not in (1, 2, 4, 8) or interlace or compression or filtering:
        return None
    if width == 0 or height == 0:
        return None
    parts = []
    pos = 8
    end = len(data)
    while pos + 8 <= end:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            parts.append(data[pos + 8:pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    else:
        return None  # no IEND: truncated; PIL decides what it is
    if not parts:
        return None
    row_bytes = (width * depth + 7) // 8
    try:
        # The size is known from the header: one allocation, no growing copies.
        raw = _inflate_exact(b"".join(parts), height * (row_bytes + 1))
    except Exception:  # zlib.error and deflate.DeflateError share no base class but Exception
        return None
    if len(raw) != height * (row_bytes + 1):
        return None
    rows = _unfilter(np.frombuffer(raw, dtype=np.uint8).reshape(height, row_bytes + 1))
    if rows is None:
        return None
    if depth == 8:
        values = rows
    elif depth == 1:
        values = np.unpackbits(rows, axis=1, count=width)
    else:
        shifts = np.arange(8 - depth, -1, -depth, dtype=np.uint8)
        values = ((rows[:, :, None] >> shifts) & np.uint8((1 << depth) - 1)).reshape(height, -1)[:, :width]
        values = np.ascontiguousarray(values)
    if colour == _PALETTE:
        return "P", values
    if depth == 1:
        return "1", values
    if depth < 8:
        values = values * np.uint8(255 // ((1 << depth) - 1))
    return "L", values


def _ids_from_fast(mode: str, values: np.ndarray) -> np.ndarray:
    if mode == "1":
        return values
    return _ids_from_indices(values)


def _decode(image: Image.Image, path: Path) -> np.ndarray:
    from PIL import Image

    mode = image.mode
    if mode == "1":
        return np.asarray(image, dtype=np.uint8)
    if mode in ("LA", "PA"):
        image = image.getchannel(0)
        mode = "L" if mode == "LA" else "P"
        if mode == "P":
            return np.array(image, dtype=np.uint8)
    if mode in ("P", "L"):
        return _ids_from_indices(np.asarray(image, dtype=np.uint8))
    if mode in ("I;16", "I;16B", "I", "F"):
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 255 or (mode == "F" and np.any(values != np.round(values))):
            raise InputError(path, f"{mode} mask has values outside the ids 0..255.",
                             "Save masks as 8-bit palette (P) or grayscale (L) PNGs of object ids.")
        return _decode(Image.fromarray(values.astype(np.uint8), mode="L"), path)
    if mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return _decode(Image.fromarray(rgb[..., 0], mode="L"), path)
        packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        colours, inverse = np.unique(packed, return_inverse=True)
        lut = np.empty(len(colours), dtype=np.uint8)
        for k, colour in enumerate(colours):
            object_id = _COLOUR_TO_ID.get(int(colour))
            if object_id is None:
                rgb_text = (int(colour) >> 16, (int(colour) >> 8) & 255, int(colour) & 255)
                raise InputError(path, f"RGB mask uses the colour {rgb_text}, which is not a DAVIS palette colour.",
                                 "Save masks as palette (P) PNGs of object ids, or draw them with the DAVIS palette.")
            lut[k] = object_id
        return lut[inverse.reshape(packed.shape)]
    raise InputError(path, f"unsupported PNG mode {mode!r} for a mask.",
                     "Save masks as palette (P), grayscale (L) or 1-bit PNGs of object ids.")


def _as_path(path: str | os.PathLike) -> Path:
    # Path(p) parses a Path's parts again: microseconds per mask, paid by every mask scored.
    return path if isinstance(path, Path) else Path(path)


def read_mask(path: str | os.PathLike, binary: bool = False) -> np.ndarray:
    """Read one mask file into an ``(H, W) uint8`` array of object ids.

    Raises InputError naming the file when it is missing or cannot be decoded.
    """
    return np.ascontiguousarray(_read_ids(_as_path(path), binary))


def read_mask_view(path: str | os.PathLike, binary: bool = False) -> np.ndarray:
    """`read_mask` without its final copy into C order: the ids may be a row-strided view of the decoded
    PNG rows (each row still follows its filter byte). For readers that index, compare and count, as
    scoring does; it saves a copy of every frame."""
    return _read_ids(_as_path(path), binary)


def read_mask_into(path: str | os.PathLike, out: np.ndarray, binary: bool = False) -> tuple[int, int]:
    """Decode one mask straight into `out` (an ``(H, W) uint8`` slot of a stack) and return its shape.

    When the mask's shape differs from ``out.shape`` nothing is written: the caller
    reports the mismatch in its own words. Spares a copy and an allocation per frame.
    """
    ids = _read_ids(_as_path(path), binary)
    if ids.shape == out.shape:
        np.copyto(out, ids)
    return ids.shape


def _read_ids(path: Path, binary: bool) -> np.ndarray:
    """The ids of one mask file, possibly a read-only or strided view."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        fast = _decode_png_fast(data)
        if fast is not None:
            ids = _ids_from_fast(*fast)
        else:
            # PIL is imported here, for the PNGs the direct decoder leaves to it: workers that score
            # DAVIS-style masks never import it.
            from PIL import Image

            with Image.open(path) as image:
                image.load()
                ids = _decode(image, path)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(path, "mask file does not exist.", "Write one PNG per frame, named like the ground truth.") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a mask file.", "Write one PNG file per frame.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(path, f"cannot be read as an image ({exc}).",
                         "Re-write the file as a PNG mask; it may be truncated or not an image.") from None
    if binary:
        ids = (ids != 0).view(np.uint8)
    return ids


def read_mask_stack(paths: Sequence[str | os.PathLike], binary: bool = False) -> np.ndarray:
    """Read several same-sized masks into a ``(T, H, W) uint8`` array (never float)."""
    if not paths:
        raise ValueError("read_mask_stack needs at least one path")
    first = read_mask(paths[0], binary=binary)
    stack = np.empty((len(paths),) + first.shape, dtype=np.uint8)
    stack[0] = first
    for t, path in enumerate(paths[1:], start=1):
        shape = read_mask_into(path, stack[t], binary=binary)
        if shape != first.shape:
            raise InputError(path, f"mask is {shape[1]}x{shape[0]} but {paths[0]} is "
                                   f"{first.shape[1]}x{first.shape[0]}.",
                             "Write every mask of a sequence at the size of its frames.")
    return stack


def write_mask(path: str | os.PathLike, ids: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write an ``(H, W)`` array of object ids as a palette PNG (the DAVIS encoding), atomically."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {ids.shape}")
    if ids.dtype != np.uint8:
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError("object ids must lie in 0..255")
        ids = ids.astype(np.uint8)
    from PIL import Image

    image = Image.fromarray(ids, mode="P")
    image.putpalette((DAVIS_PALETTE if palette is None else palette).astype(np.uint8).ravel().tolist())
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
