"""Open report.html in headless Chromium: the page renders (screenshot), its own script runs, and
no script from the data does (hostile generated texts stay text).

Needs Debian's ``chromium`` (``.ci/run`` installs it). Without it the test skips, except under CI
(``CI`` set), where a missing browser is an error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import HOSTILE, small_run

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    msg = "headless Chromium not found (apt-get install -y chromium; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(msg + " — required under CI")
    pytest.skip(msg)


def chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",  # root in containers
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = small_run(tmp_path_factory.mktemp("eq-browser"))
    return run / "report.html"


def test_report_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = find_chromium()
    url = report.resolve().as_uri()
    res = chromium(browser, tmp_path / "profile", "--virtual-time-budget=3000", "--dump-dom", url)
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    # The report's own (CSP-pinned) script ran: it marks the page and counts the samples.
    assert 'data-report-ready="1"' in dom, dom[:500]
    assert re.search(r"\d+ of \d+ shown", dom)
    # No script from the data ran: the title is intact, no injected elements exist.
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title == "synthbias equilibrium run" and "pwned" not in title
    assert len(re.findall(r"<script\b", dom)) == 1
    assert not re.search(r"<img[^>]*onerror", dom)
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=" in dom
    assert "<script>document.title" not in dom and "<img src=x" not in dom
    assert all(h.split(" ")[-1] in dom for h in HOSTILE)  # the texts themselves are shown
    # Main elements.
    for sid in ("run", "headline", "equilibrium", "divergence", "samples", "flags"):
        assert f'<section id="{sid}">' in dom
    assert dom.count('<img alt="') >= 2  # trajectory + divergence plots


def test_report_screenshot(report: Path, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    browser = find_chromium()
    shot = tmp_path / "report.png"
    res = chromium(
        browser,
        tmp_path / "profile",
        "--window-size=1366,900",  # a laptop screen
        f"--screenshot={shot}",
        report.resolve().as_uri(),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
    img = mpimg.imread(shot)
    assert img.shape[:2] == (900, 1366)
    # Not a blank page: text and tables give dark pixels on the white background.
    dark = (img[..., :3].mean(axis=-1) < 0.4).mean()
    assert 0.002 < dark < 0.5
