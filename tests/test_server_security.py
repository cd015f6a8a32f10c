"""Hostile uploads are refused with a clear error naming the member, and nothing is written outside the
server's folders: zip bombs, ``../`` and absolute names, symbolic links, oversized bodies, non-PNG files."""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[test]')")

from sqlalchemy import func, select  # noqa: E402

from server_support import make_gt, make_results, results_entries, zip_bytes  # noqa: E402
from test_server import make_server  # noqa: E402
from vosbench.server.db import Submission  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def gt(tmp_path_factory) -> Path:
    return make_gt(tmp_path_factory.mktemp("bench") / "gt")


@pytest.fixture(scope="module")
def entries(gt, tmp_path_factory) -> dict[str, bytes]:
    return results_entries(make_results(gt, tmp_path_factory.mktemp("results") / "masks"))


@pytest.fixture
def sandbox(tmp_path):
    """The server's data folder inside a sandbox folder; the test checks that nothing else appears there."""
    return tmp_path / "sandbox"


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def refused(server, data: bytes, status: int, *needles: str, filename: str = "results.zip"):
    alice = server.user(f"u{os.urandom(4).hex()}")
    response = server.client.post("/api/submissions", headers=alice, data={"track": "semi"},
                                  files={"file": (filename, data, "application/zip")})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == "UploadError" and isinstance(body["message"], list)
    for needle in needles:
        assert needle in body["message"][0], body
    with server.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0
    outside = files_under(server.config.data_dir.parent) - {"data"} - {
        f"data/{p}" for p in files_under(server.config.data_dir)}
    assert outside == set(), outside
    assert not any((server.config.data_dir / "incoming").glob("*")), "an unpacked upload was left behind"
    assert not list(server.config.data_dir.glob("upload-*")), "the uploaded zip was left behind"
    return body


@pytest.fixture
def server(gt, sandbox):
    return make_server(gt, sandbox / "data", max_upload_bytes=400_000, max_unpacked_bytes=2_000_000,
                       max_member_bytes=300_000, max_members=500, max_ratio=100.0)


def test_zip_bomb_member_is_refused_by_the_bytes_inflated(server, entries):
    bomb = dict(entries)
    name = next(iter(bomb))
    bomb[name] = PNG + bytes(50_000_000)  # 50 MB of zeros deflate to ~50 kB
    data = zip_bytes(bomb)
    assert len(data) < 400_000
    refused(server, data, 413, name, "zip bomb")


def test_zip_bomb_by_total_size_is_refused(gt, sandbox, entries):
    server = make_server(gt, sandbox / "data", max_upload_bytes=400_000, max_unpacked_bytes=2_000_000,
                         max_member_bytes=300_000, max_ratio=10_000.0)
    many = dict(entries)
    for k in range(40):  # each member under its own limit and ratio, all together past the total
        many[f"extra{k:02d}/00000.png"] = PNG + bytes(99_000)
    refused(server, zip_bytes(many), 413, "inflate past 2000000 bytes")


def test_too_many_members_are_refused(server, entries):
    many = dict(entries)
    for k in range(600):
        many[f"many/{k:05d}.png"] = PNG
    refused(server, zip_bytes(many, compression=zipfile.ZIP_STORED), 413, "at most 500")


@pytest.mark.parametrize("member", ["../escape/00000.png", "seq/../../escape.png", "/tmp/escape/00000.png",
                                    "C:/escape/00000.png", "seq\\..\\..\\escape.png", "./seq/00000.png"])
def test_names_that_escape_are_refused(server, entries, member):
    refused(server, zip_bytes({**entries, member: PNG + b"x"}), 400, member)
    assert not (server.config.data_dir.parent.parent / "escape").exists()
    assert not Path("/tmp/escape").exists()


def test_symbolic_links_are_refused(server, entries, sandbox):
    name = next(iter(entries))
    link = zip_bytes({**entries, name: b"/etc/passwd"}, modes={name: stat.S_IFLNK | 0o777})
    refused(server, link, 400, name, "symbolic links")


def test_oversized_uploads_are_refused(server, entries):
    big = {**entries, "big/00000.png": PNG + os.urandom(450_000)}
    refused(server, zip_bytes(big, compression=zipfile.ZIP_STORED), 413, "larger than this server accepts")


def test_oversized_streamed_body_without_length_is_cut_off(server):
    alice = server.user("streamer")

    boundary = "vosbenchboundary"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.zip\"\r\n"
               "Content-Type: application/zip\r\n\r\n").encode()
        for _ in range(100):  # 100 x 10 kB: past the 400 kB limit, sent without a Content-Length
            yield b"x" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**alice, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = server.client.post("/api/submissions", headers=headers, content=body())
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413
    assert "larger than this server accepts" in response.json()["message"][0]


@pytest.mark.parametrize("member,content,needle", [
    ("{seq}/00000.jpg", b"\xff\xd8\xff\xe0JFIF", "is not a PNG mask"),
    ("{seq}/00000.png", b"\xff\xd8\xff\xe0JFIF not a png", "content is not PNG"),
    ("{seq}/00000.png", b"", "is empty"),
    ("{seq}/deeper/00000.png", PNG, "no deeper folders"),
])
def test_non_png_files_are_refused(server, entries, member, content, needle):
    seq = next(iter(entries)).split("/")[0]
    member = member.format(seq=seq)
    refused(server, zip_bytes({**entries, member: content}), 400, member, needle)


def test_not_a_zip_and_duplicate_names_are_refused(server, entries):
    refused(server, b"PK\x03\x04 not really a zip", 400, "not a readable zip")
    name = next(iter(entries))
    data = zip_bytes(entries)
    import io

    buffer = io.BytesIO(data)
    with pytest.warns(UserWarning):
        with zipfile.ZipFile(buffer, "a") as archive:
            archive.writestr(name, entries[name])
    refused(server, buffer.getvalue(), 400, name, "twice")


def test_a_png_with_huge_declared_size_is_refused_by_the_validator(server, entries):
    """A decompression bomb inside a PNG is caught from its header before any pixel is decoded."""
    import struct
    import zlib

    name = next(iter(entries))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = PNG + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    alice = server.user("pngbomb")
    response = server.client.post("/api/submissions", headers=alice, data={"track": "semi"},
                                  files={"file": ("r.zip", zip_bytes({**entries, name: png}), "application/zip")})
    assert response.status_code == 422
    assert any(p["file"] == name and "100000x100000" in p["problem"] for p in response.json()["problems"])
