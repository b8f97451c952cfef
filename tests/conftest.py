"""Shared test settings: one torch thread (tiny models on 2 cores), results and builds kept out of the tree
unless a test asks for the real folders."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Send results/ and _build/ of code under test to a temporary folder."""
    monkeypatch.setenv("L6KIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("L6KIT_BUILD", str(tmp_path / "build"))
    return tmp_path


# -- browser tests: Debian's chromium driven by Playwright, dashboards under `panel serve` -------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (skips the test when Debian's chromium is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def panel_server(tmp_path):
    """``start(path, env=None) -> url``: `panel serve` a dashboard file on a free 127.0.0.1 port and wait until
    it answers; every server started is stopped at teardown."""
    procs = []

    def start(path: Path, env: dict | None = None, timeout: float = 90) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = tmp_path / f"panel-{port}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "panel", "serve", str(path), "--address", "127.0.0.1", "--port", str(port),
                 "--allow-websocket-origin", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}/{Path(path).stem}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"panel serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return url
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"panel serve did not answer at {url} within {timeout:g} s:\n{log.read_text()}")

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
