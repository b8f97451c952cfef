"""Smoke test of the WinIT dashboard in a real browser: `panel serve` + Playwright driving Debian's Chromium.

The served dashboard reads saved attributions (the ``ci`` ones, written with ``save_attributions`` into a
temporary ``L6KIT_RESULTS``, as the notebook does), so the page needs no training; changing the sample and
the compared method in the browser changes the AUPRC shown, and an out-of-range sample gives a message.
"""

import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from l6kit.dashboards import DASHBOARDS
from l6kit.dashboards import winit as wd
from l6kit.papers import winit

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _wait_until_served(proc: subprocess.Popen, url: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"panel serve did not answer at {url} within {timeout:g} s:\n{log.read_text()}")


@pytest.fixture
def winit_app(tmp_path):
    """`panel serve` the dashboard on a free port over saved ci attributions; yields its URL."""
    port, log = _free_port(), tmp_path / "panel.log"
    view = wd.view("spike", 2, ("winit", "afo", "deeplift"), 5, "ci")          # cached after the logic tests
    result = {k: v for k, v in dataclasses.asdict(view).items() if k != "source"}
    winit.save_attributions(tmp_path / "results" / "artifacts" / "winit.npz", result)
    env = os.environ | {"L6KIT_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    path = DASHBOARDS["winit"]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", str(path), "--address", "127.0.0.1", "--port", str(port),
             "--allow-websocket-origin", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/{path.stem}"
    try:
        _wait_until_served(proc, url, log)
        yield url, view
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_winit_dashboard_in_a_browser(browser, winit_app):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    url, view = winit_app
    page.goto(url)

    status = page.locator("strong", has_text="Spike, delay 2").locator("..")
    status.get_by_text("AUPRC of this series").wait_for(timeout=20_000)
    page.locator(".js-plotly-plot").nth(2).wait_for()                     # series, heat maps, WinIT windows
    ours, afo = view.per_sample_auprc["winit"], view.per_sample_auprc["afo"]   # (N,), NaN without salient cells
    i = winit.example_index({"truth": view.truth})
    j = next(j for j in range(len(afo)) if np.isfinite(afo[j]) and f"{afo[j]:.3f}" != f"{afo[i]:.3f}")
    text = status.inner_text()
    assert f"series {i} of 100" in text and "saved run (winit.npz)" in text
    assert f"AUPRC of this series: WinIT {ours[i]:.3f} · AFO {afo[i]:.3f}" in text

    box = page.get_by_label("Sample (held-out series)")                       # another series, in the browser
    box.fill(str(j))
    box.press("Enter")
    status.get_by_text(f"series {j} of 100").wait_for()
    assert f"AUPRC of this series: WinIT {ours[j]:.3f} · AFO {afo[j]:.3f}" in status.inner_text()

    page.get_by_label("Compare with").select_option("DeepLIFT")
    status.get_by_text("DeepLIFT").first.wait_for()
    assert "AFO" not in status.inner_text()

    box.fill("500")                                                          # out of range: a message
    box.press("Enter")
    page.get_by_text("there are 100 held-out series").wait_for()
    box.fill(str(i))
    box.press("Enter")
    page.get_by_text("there are 100 held-out series").wait_for(state="hidden")
    status.get_by_text(f"series {i} of 100").wait_for()
    page.wait_for_timeout(500)                                               # let plotly finish redrawing

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-winit.png", full_page=True)
    page.close()
    assert not errors, errors
