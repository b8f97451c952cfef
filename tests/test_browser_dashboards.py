"""Smoke tests of the dashboards in a real browser: `panel serve` + Playwright driving Debian's Chromium."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from l6kit.dashboards import DASHBOARDS

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


def _serve(path: Path, log: Path):
    """Start `panel serve path` on a free port; return the process and the app's URL once it answers."""
    port = _free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", str(path), "--address", "127.0.0.1", "--port", str(port),
             "--allow-websocket-origin", f"127.0.0.1:{port}"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/{path.stem}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"panel serve did not answer at {url} within 30 s:\n{log.read_text()}")


@pytest.fixture
def manifold_app(tmp_path):
    proc, url = _serve(DASHBOARDS["manifold"], tmp_path / "panel.log")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_manifold_dashboard_in_a_browser(browser, manifold_app):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(manifold_app)

    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=20_000)        # bars, histogram, extremes
    status = page.locator("strong", has_text="digits").locator("..")
    status.get_by_text("k = 10,").wait_for()
    assert "class all" in status.inner_text()

    page.get_by_label("Class").select_option("3")                          # the class selector
    status.get_by_text("class 3:").wait_for()
    k_box = page.get_by_label("k (neighbours)")                              # the k control
    k_box.fill("20")
    k_box.press("Enter")
    status.get_by_text("k = 20,").wait_for()
    text = status.inner_text()
    assert "class 3: n = 183 distinct points, k = 20" in text
    page.wait_for_timeout(500)                                               # let plotly finish redrawing

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-manifold.png", full_page=True)
    page.close()
    assert not errors, errors
