"""The book: built by Jupyter Book 1 from the executed notebooks (run after the parallel stage, which
executes them), then opened in headless Chromium."""

import http.server
import socket
import threading
from pathlib import Path

import pytest

from l6kit import runner

pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def html():
    for slug in runner.toc_notebooks():
        if not (runner.build_dir() / "executed" / f"{slug}.ipynb").exists():
            runner.run_paper(slug, "ci")
    index = runner.build_book()
    assert index.exists()
    return index.parent


def test_every_toc_page_is_rendered_with_outputs(html):
    for slug in runner.toc_notebooks():
        page = (html / "notebooks" / f"{slug}.html").read_text()
        assert "cell_output" in page and "Plotly.newPlot" in page, slug
        assert "cdn.plot.ly" not in page and "injected-parameters" not in page
    scoreboard = (html / "book" / "scoreboard.html").read_text()
    assert "claims hold" in scoreboard and "uomh" in scoreboard
    assert "scoreboard.html" in (html / "book" / "intro.html").read_text()


def test_refuses_a_notebook_without_outputs(html, tmp_path, monkeypatch):
    import json
    import shutil
    monkeypatch.setenv("L6KIT_BUILD", str(tmp_path))
    (tmp_path / "executed").mkdir()
    for slug in runner.toc_notebooks():
        nb = json.loads(runner.repo_root().joinpath("notebooks", f"{slug}.ipynb").read_text())
        (tmp_path / "executed" / f"{slug}.ipynb").write_text(json.dumps(nb))
    with pytest.raises(RuntimeError, match="has no outputs"):
        runner.build_book()
    shutil.rmtree(tmp_path / "stage", ignore_errors=True)


@pytest.fixture(scope="module")
def server(html):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = lambda *a: Quiet(*a, directory=str(html))  # noqa: E731
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


@pytest.mark.browser
def test_uomh_page_is_interactive_in_chromium(server, browser):
    errors = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{server}/notebooks/uomh.html", wait_until="networkidle")
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20_000)
    plots = page.locator(".js-plotly-plot")
    assert plots.count() >= 5
    first = plots.first
    first.scroll_into_view_if_needed()
    box = first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(300)
    assert page.locator(".hoverlayer").count() >= 1            # plotly.js is live: it has a hover layer
    page.wait_for_selector("mjx-container", timeout=20_000)   # the equations are typeset (local MathJax)
    out = Path(runner.build_dir()) / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "book-uomh.png"), full_page=False)
    page.goto(f"{server}/book/scoreboard.html", wait_until="networkidle")
    assert "claims hold" in page.inner_text("main")
    page.screenshot(path=str(out / "book-scoreboard.png"))
    page.close()
    assert not errors, errors
