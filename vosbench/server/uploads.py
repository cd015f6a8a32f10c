"""Unpack an uploaded zip of result masks, refusing anything that could escape or exhaust the server.

Refused, each with a message naming the member: absolute names, ``..`` parts,
backslashes and drive letters, symbolic links and other special files, files
other than PNG masks, more members than allowed, members that inflate past
their share (zip bombs: sizes are counted on the bytes actually inflated, never
on what the archive's headers claim). Files are created with ``O_EXCL |
O_NOFOLLOW`` inside a fresh folder, so nothing is written outside it.

Accepted layout (what `vosbench pack` writes): ``<sequence>/<frame>.png`` at the
archive's root; a single top folder holding the sequence folders is stripped.
"""
from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vosbench.errors import VosbenchError
from vosbench.server.config import Limits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IGNORED_PREFIXES = ("__MACOSX/",)
IGNORED_NAMES = (".DS_Store", "Thumbs.db")
CHUNK = 64 * 1024


class UploadError(VosbenchError):
    """An upload refused before it is stored; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        self.status = status
        super().__init__(message)


@dataclass
class Unpacked:
    root: Path
    files: int
    bytes: int


def _member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    name = info.filename
    if "\x00" in name:
        raise UploadError(f"{name!r}: a name inside the zip holds a NUL character.")
    if "\\" in name:
        raise UploadError(f"{name}: backslashes are not allowed in names inside the zip; use '/'.")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UploadError(f"{name}: absolute names are not allowed inside the zip; "
                          "names must be <sequence>/<frame>.png (vosbench pack writes them so).")
    parts = PurePosixPath(name).parts
    if any(part in ("..", ".") for part in name.split("/")):
        raise UploadError(f"{name}: '..' and '.' are not allowed in names inside the zip; "
                          "names must be <sequence>/<frame>.png.")
    return parts


def _is_special(info: zipfile.ZipInfo) -> bool:
    """A symbolic link, device, FIFO or socket (by the Unix mode a zip may carry; no type bits = a file)."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    return kind not in (0, stat.S_IFREG, stat.S_IFDIR)


def _skipped(name: str) -> bool:
    return name.startswith(IGNORED_PREFIXES) or PurePosixPath(name).name in IGNORED_NAMES


def plan_members(archive: zipfile.ZipFile, limits: Limits) -> list[tuple[zipfile.ZipInfo, tuple[str, str]]]:
    """Check every member's name and kind; return ``(member, (sequence, file name))`` of the masks."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise UploadError(f"the zip holds {len(infos)} entries; at most {limits.max_members} are accepted.", 413)
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    for info in infos:
        parts = _member_parts(info)
        if _skipped(info.filename):
            continue
        if _is_special(info):
            raise UploadError(f"{info.filename}: symbolic links and special files are not allowed inside the zip; "
                              "add the mask file itself.")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise UploadError(f"{info.filename}: encrypted entries are not accepted.")
        files.append((info, parts))
    if not files:
        raise UploadError("the zip holds no mask; it must hold <sequence>/<frame>.png (`vosbench pack` writes it).")
    tops = {parts[0] for _, parts in files}
    if len(tops) == 1 and all(len(parts) == 3 for _, parts in files):
        files = [(info, parts[1:]) for info, parts in files]
    planned = []
    for info, parts in files:
        if len(parts) != 2:
            raise UploadError(f"{info.filename}: masks must be <sequence>/<frame>.png at the zip's root "
                              "(one folder per sequence, no deeper folders).")
        if not parts[1].lower().endswith(".png"):
            raise UploadError(f"{info.filename}: is not a PNG mask; a results zip holds only <sequence>/<frame>.png "
                              "(save masks as PNG: JPEG compression corrupts object ids).")
        planned.append((info, (parts[0], parts[1])))
    return planned


def unpack(zip_path: str | os.PathLike, dest: str | os.PathLike, limits: Limits) -> Unpacked:
    """Extract the masks of `zip_path` into the new folder `dest` (which must not exist)."""
    dest = Path(dest)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadError(f"the upload is not a readable zip file ({exc}); make it with `vosbench pack`.") from None
    with archive:
        planned = plan_members(archive, limits)
        dest.mkdir(parents=True, exist_ok=False)
        root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
        total = 0
        try:
            folders: dict[str, int] = {}
            for info, (sequence, filename) in planned:
                if sequence not in folders:
                    os.mkdir(sequence, 0o755, dir_fd=root_fd)
                    folders[sequence] = os.open(sequence, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                                dir_fd=root_fd)
                total += _extract(archive, info, folders[sequence], filename, limits, total)
        except FileExistsError:
            raise UploadError(f"{info.filename}: the zip holds this name twice.") from None
        finally:
            for fd in list(locals().get("folders", {}).values()):
                os.close(fd)
            os.close(root_fd)
    return Unpacked(dest, len(planned), total)


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dir_fd: int, filename: str, limits: Limits,
             written_before: int) -> int:
    budget = min(limits.max_member_bytes, limits.max_unpacked_bytes - written_before)
    ratio_cap = max(int(limits.max_ratio * max(info.compress_size, 1)), 64 * 1024)
    fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out, archive.open(info) as source:
            first = True
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                if first and not chunk.startswith(PNG_SIGNATURE):
                    raise UploadError(f"{info.filename}: has a .png name but its content is not PNG; "
                                      "save masks as PNG (JPEG compression corrupts object ids).")
                first = False
                written += len(chunk)
                if written > budget:
                    which = ("the zip's masks together inflate past "
                             f"{limits.max_unpacked_bytes} bytes" if written > limits.max_unpacked_bytes - written_before
                             else f"inflates past {limits.max_member_bytes} bytes, more than any mask")
                    raise UploadError(f"{info.filename}: {which}; refused (zip bomb?).", 413)
                if written > ratio_cap:
                    raise UploadError(f"{info.filename}: inflates more than {limits.max_ratio:.0f} times its "
                                      "compressed size; refused (zip bomb?).", 413)
                out.write(chunk)
            if first:
                raise UploadError(f"{info.filename}: is empty; write a PNG mask for the frame.")
    except zipfile.BadZipFile as exc:
        raise UploadError(f"{info.filename}: cannot be read from the zip ({exc}).") from None
    return written
