"""The HTML report opens in a headless browser (Chromium) with no console message and renders.

The browser is not installed by the tests: CI's .ci/run installs Debian's `chromium`.
Without it the browser tests skip on a developer machine and fail in CI (CI=1 or
VOSBENCH_REQUIRE_SHARED=1); the pure-Python checks of the page live in test_reports.py.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vosbench import reports
from vosbench.reports.attributes import attribute_table

IN_CI = os.environ.get("CI", "").lower() in ("1", "true") or os.environ.get("VOSBENCH_REQUIRE_SHARED") == "1"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CONSOLE = re.compile(r":CONSOLE[:(]")


def find_browser() -> str | None:
    explicit = os.environ.get("VOSBENCH_CHROMIUM")
    if explicit:
        return explicit
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        if IN_CI:
            pytest.fail("no Chromium found; CI must install it (.ci/run: apt-get install -y chromium)")
        pytest.skip("no Chromium on this machine (apt-get install -y chromium to run this test)")
    return path


def run_browser(browser: str, page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr",
            "--v=0", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", *extra, page.as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A report of three methods over the DAVIS 2016 val sequences (scores made up), with every section."""
    sequences = list(attribute_table("davis2016", split="val").index)
    rng = np.random.default_rng(0)
    rows = []
    for k, method in enumerate(["alpha", "beta", "gamma"]):
        for sequence in sequences:
            level = rng.uniform(0.4, 0.95)
            for frame in range(1, 11):
                j = float(np.clip(level + rng.normal(0, 0.03) - 0.01 * k * frame, 0, 1))
                f = float(np.clip(j + rng.normal(0, 0.02), 0, 1))
                rows += [(method, sequence, 1, frame, "J", j), (method, sequence, 1, frame, "F", f),
                         (method, sequence, 1, frame, "J&F", (j + f) / 2)]
    tidy = pd.DataFrame(rows, columns=reports.TIDY_COLUMNS)
    curves = {"robot-a": {"time": [0, 12, 30, 60], "J_AND_F": [0, 0.55, 0.7, 0.72]},
              "robot-b": {"time": [0, 20, 45, 60], "J_AND_F": [0, 0.4, 0.66, 0.68]}}
    return reports.write_html_report(tidy, tmp_path_factory.mktemp("page"), interactive=curves,
                                     attributes="davis2016", title="three methods")


def test_the_console_check_catches_errors(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>'
                   '<script>console.error("deliberate"); notDefined();</script></body></html>')
    messages = console_messages(run_browser(browser, bad, tmp_path, "--dump-dom").stderr)
    assert any("deliberate" in m for m in messages) and any("notDefined" in m for m in messages)


def test_report_opens_without_console_messages(browser, page, tmp_path):
    done = run_browser(browser, page, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    dom = done.stdout
    assert "<h1>three methods</h1>" in dom
    assert dom.count("<img") == 4  # attributes, per-sequence bars, J over time, interactive curves
    assert "J&amp;F per attribute" in dom


def test_report_renders_its_pictures(browser, page, tmp_path):
    shot = tmp_path / "shot.png"
    done = run_browser(browser, page, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    # Rendered charts bring the method colours; a page whose images failed would be text on white.
    colours = {tuple(c) for c in pixels.reshape(-1, 3)[::7]}
    blue = np.all(np.abs(pixels.astype(int) - (31, 119, 180)) < 6, axis=2).mean()
    assert len(colours) > 200 and blue > 0.002
