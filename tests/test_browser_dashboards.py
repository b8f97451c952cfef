"""Smoke tests of the dashboards in a real browser: `panel serve` + Playwright driving Debian's Chromium."""

from pathlib import Path

import pytest

from l6kit.dashboards import DASHBOARDS

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "_build" / "screenshots"


@pytest.fixture
def manifold_app(panel_server):
    return panel_server(DASHBOARDS["manifold"])


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
