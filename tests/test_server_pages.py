"""The server's pages in a real headless browser (Debian's Chromium, as tests/test_html.py drives it).

A real `vosbench serve` process on 127.0.0.1; the browser logs in through the login form
(a local page posts the key, as a user's browser would) and must render every page with no
console message (a plot that fails to load logs one: checked below).
Without Chromium the tests skip on a developer machine and fail in CI.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[test]')")

import httpx  # noqa: E402

from server_support import IN_CI, free_port, make_gt, make_results, start_server, wait_until  # noqa: E402
from test_html import console_messages, find_browser, run_browser  # noqa: E402
from vosbench.server import users  # noqa: E402
from vosbench.server.db import Database  # noqa: E402
from vosbench.tracks.pack import pack_results  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        if IN_CI:
            pytest.fail("no Chromium found; CI must install it (.ci/run: apt-get install -y chromium)")
        pytest.skip("no Chromium on this machine (apt-get install -y chromium to run this test)")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    gt = make_gt(root / "gt")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = root / "data"
    # The server with the worker process `vosbench serve` starts itself.
    server = start_server(gt, data_dir, port, root / "server.log", "--title", "Lab <benchmark>", own_worker=True)
    db = Database(f"sqlite:///{data_dir / 'server.db'}")
    keys = {}
    try:
        for name, shift in (("alice", 1), ("bob", 3)):
            keys[name] = users.add_user(db, name)
            data = pack_results(make_results(gt, root / f"masks-{name}", shift=shift), root / f"{name}.zip")
            response = httpx.post(f"{base}/api/submissions", headers={"User-Key": keys[name]},
                                  data={"track": "semi", "method": f"{name}-net"},
                                  files={"file": ("r.zip", data.read_bytes(), "application/zip")}, timeout=60)
            assert response.status_code == 201, response.text

        def scored():
            assert server.alive(), server.log()
            return all(httpx.get(f"{base}/api/submissions", headers={"User-Key": k}, timeout=30).json()[0]["status"]
                       == "done" for k in keys.values())

        wait_until(scored, timeout=120, interval=0.5, what="both submissions scored")
        assert "submission 2: done" in server.log()  # scored by the worker `vosbench serve` started
        yield {"base": base, "keys": keys, "data_dir": data_dir}
    finally:
        server.stop()
        db.dispose()


def dump(browser: str, url_or_page, tmp_path: Path) -> tuple[str, list[str]]:
    target = url_or_page if isinstance(url_or_page, Path) else _Url(url_or_page)
    done = run_browser(browser, target, tmp_path, "--dump-dom", "--virtual-time-budget=10000")
    return done.stdout, console_messages(done.stderr)


class _Url:
    """What `run_browser` takes for a page (it calls ``as_uri()``), for an http URL."""

    def __init__(self, url: str):
        self.url = url

    def as_uri(self) -> str:
        return self.url


def login_page(tmp_path: Path, base: str, key: str, next_path: str) -> Path:
    """A local page that posts the key to the server's login form and lands on `next_path`."""
    page = tmp_path / "login.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>login</title></head><body>'
                    f'<form method="post" action="{base}/login"><input name="key" value="{html.escape(key)}">'
                    f'<input name="next" value="{next_path}"></form>'
                    f'<script>document.forms[0].submit();</script></body></html>')
    return page


def cells(dom: str, table_class: str) -> list[list[str]]:
    body = re.search(rf'<table class="{table_class}">(.*?)</table>', dom, re.S).group(1)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
            if "<td" in row]


def test_public_leaderboard_page_renders_the_json_numbers(browser, site, tmp_path):
    dom, console = dump(browser, f"{site['base']}/leaderboard?track=semi", tmp_path)
    assert console == []
    board = httpx.get(f"{site['base']}/leaderboard.json", timeout=30).json()
    table = cells(dom, "leaderboard")
    assert [row[1] for row in table] == [r["user"] for r in board["rows"]] == ["alice", "bob"]
    for row, entry in zip(table, board["rows"]):
        assert row[4:] == [f"{entry[c]:.3f}" for c in board["columns"]]
    assert "Lab &lt;benchmark&gt;" in dom  # the title is escaped, never markup
    dom, console = dump(browser, f"{site['base']}/", tmp_path)
    assert console == [] and "Leaderboard: semi" in dom and "alice-net" in dom


def test_result_page_after_login_shows_table_and_plot(browser, site, tmp_path):
    key = site["keys"]["alice"]
    mine = httpx.get(f"{site['base']}/api/submissions/1", headers={"User-Key": key}, timeout=30).json()
    dom, console = dump(browser, login_page(tmp_path, site["base"], key, "/submissions/1"), tmp_path)
    assert console == [], console
    assert "<h1>Submission 1: alice-net</h1>" in dom
    assert cells(dom, "global")[0] == [f"{mine['scores'][c]:.3f}" for c in mine["scores"]]
    assert [row[0] for row in cells(dom, "per-sequence")] == [r["Sequence"] for r in mine["per_sequence"]]
    assert '<img src="/submissions/1/sequences.png"' in dom  # still there: it loaded (see below)
    # The console check sees a plot that fails to load.
    plot = site["data_dir"] / "submissions" / "00000001" / "scores" / "sequences.png"
    saved = plot.read_bytes()
    plot.unlink()
    try:
        fresh = tmp_path / "fresh"  # a new profile: nothing cached
        fresh.mkdir()
        dom, console = dump(browser, login_page(fresh, site["base"], key, "/submissions/1"), fresh)
        assert any("the plot could not be loaded" in line for line in console), "a missing plot went unnoticed"
        assert "The plot could not be loaded." in dom and '<img src="/submissions/1/sequences.png"' not in dom
    finally:
        plot.write_bytes(saved)


def test_submissions_page_lists_only_the_users_own(browser, site, tmp_path):
    dom, console = dump(browser, login_page(tmp_path, site["base"], site["keys"]["bob"], "/submissions"), tmp_path)
    assert console == [], console
    assert "Submissions of bob" in dom and 'enctype="multipart/form-data"' in dom
    assert [row[2] for row in cells(dom, "submissions")] == ["bob-net"]
    dom, _ = dump(browser, login_page(tmp_path, site["base"], site["keys"]["bob"], "/submissions/1"), tmp_path)
    assert "no submission 1 of yours" in dom and "alice-net" not in dom


def test_wrong_key_shows_the_login_form_again(browser, site, tmp_path):
    dom, _ = dump(browser, login_page(tmp_path, site["base"], "vb_wrong", "/submissions"), tmp_path)
    assert "the key is not valid" in dom and '<form method="post" action="/login">' in dom
