"""Pack a results folder into the zip a DAVIS-style evaluation server takes.

The official layout (DAVIS challenge, `vosbench serve`): the archive's root holds
one folder per sequence, each with one PNG mask per frame::

    bike-packing/00000.png
    bike-packing/00001.png
    ...

Only the masks go in (the CSVs and JSON vosbench writes beside them stay out).
The archive is deterministic (sorted names, fixed timestamps, stored: PNG data is
already compressed) and written atomically.
"""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from vosbench.errors import InputError
from vosbench.io.atomic import atomic_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Zip timestamps start in 1980; a fixed one keeps the same masks giving the same bytes.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def collect_masks(results_dir: str | os.PathLike, sequences: list[str] | None = None) -> list[tuple[str, Path]]:
    """``(archive name, file)`` of every mask under `results_dir`, sorted by name.

    Raises InputError naming the file for anything inside a sequence folder that is
    not a PNG mask (another image format, a nested folder).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(root, "results folder does not exist." if not root.exists() else "is a file, not a folder.",
                         "Pass the folder that holds one sub-folder of PNG masks per sequence.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if sequences is not None:
        wanted = set(sequences)
        folders = [p for p in folders if p.name in wanted]
    members: list[tuple[str, Path]] = []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_symlink() or not path.is_file():
                raise InputError(path, "is not a regular file; a sequence folder holds only PNG masks.",
                                 "Remove it (or replace a link by the file it points to).")
            if path.suffix.lower() != ".png":
                raise InputError(path, f"is not a PNG ({path.suffix or 'no suffix'}).",
                                 "Save masks as PNG named after the frames (00000.png, ...), or remove the file.")
            with open(path, "rb") as handle:
                if handle.read(8) != PNG_SIGNATURE:
                    raise InputError(path, "has a .png name but its content is not PNG.",
                                     "Re-save the mask as PNG (JPEG compression corrupts object ids).")
            members.append((f"{folder.name}/{path.name}", path))
    if not members:
        raise InputError(root, "holds no sequence folder with PNG masks.",
                         "Point at the folder holding <sequence>/<frame>.png.")
    return members


def pack_results(results_dir: str | os.PathLike, out: str | os.PathLike,
                 sequences: list[str] | None = None) -> Path:
    """Write the masks of `results_dir` into the zip `out` in the official layout; return `out`."""
    members = collect_masks(results_dir, sequences)
    out = Path(out)
    with atomic_path(out, suffix=".zip.tmp") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, path in members:
                info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                archive.writestr(info, path.read_bytes())
    return out
