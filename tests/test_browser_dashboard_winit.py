"""Smoke test of the WinIT dashboard in a real browser: `panel serve` + Playwright driving Debian's Chromium.

The served dashboard reads saved attributions (the ``ci`` ones, written with ``save_attributions`` into a
temporary ``L6KIT_RESULTS``, as the notebook does), so the page needs no training; changing the sample and
the compared method in the browser changes the AUPRC shown, and an out-of-range sample gives a message.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from l6kit.dashboards import DASHBOARDS
from l6kit.dashboards import winit as wd
from l6kit.papers import winit

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "_build" / "screenshots"


@pytest.fixture
def winit_app(tmp_path, panel_server):
    """`panel serve` the dashboard over saved ci attributions; returns its URL and the saved view."""
    view = wd.view("spike", 2, ("winit", "afo", "deeplift"), 5, "ci")          # cached after the logic tests
    result = {k: v for k, v in dataclasses.asdict(view).items() if k != "source"}
    winit.save_attributions(tmp_path / "results" / "artifacts" / "winit.npz", result)
    env = os.environ | {"L6KIT_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    return panel_server(DASHBOARDS["winit"], env=env), view


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
