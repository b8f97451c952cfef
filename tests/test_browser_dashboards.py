"""Smoke tests of the dashboards in a real browser: `panel serve` + Playwright driving Debian's Chromium."""

from pathlib import Path

import pytest

from l6kit.dashboards import DASHBOARDS

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "_build" / "screenshots"


@pytest.fixture
def manifold_app(tmp_path, panel_server):
    """`panel serve` the manifold dashboard with one saved learned manifold (a circle) in a temporary folder."""
    import os

    import numpy as np

    from l6kit.manifold.learned import save_learned

    t = np.linspace(0, 2 * np.pi, 200)
    circle = np.column_stack([np.cos(t), np.sin(t)])
    save_learned(tmp_path / "results" / "artifacts" / "toy-manifold.npz", title="toy circle", data=circle,
                 models={"two-step": {"samples": circle, "manifold": circle, "density": 1 + np.cos(t)}},
                 description="A saved toy model.")
    env = os.environ | {"L6KIT_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    return panel_server(DASHBOARDS["manifold"], env=env)


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
    page.get_by_text("Learned manifolds", exact=True).first.click()           # the second tab
    page.get_by_text("A saved toy model.").wait_for()
    page.get_by_text("Density along each learned curve").wait_for()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-manifold.png", full_page=True)
    page.close()
    assert not errors, errors


@pytest.fixture
def embeddings_app(tmp_path, panel_server):
    """`panel serve` the embeddings dashboard over one saved Poincaré table in a temporary results folder."""
    import os

    import numpy as np
    import pandas as pd

    from l6kit.embeddings import save_table

    rng = np.random.default_rng(0)
    r, a = rng.uniform(0, 0.9, 400), rng.uniform(0, 2 * np.pi, 400)
    meta = pd.DataFrame({"kind": np.where(np.arange(400) < 150, "user", "item"), "depth": (r * 4).astype(int)})
    save_table(tmp_path / "results" / "artifacts" / "toy.npz", np.column_stack([r * np.cos(a), r * np.sin(a)]),
               meta, metric="poincare", name="toy disk", description="Random points in the Poincaré disk.")
    env = os.environ | {"L6KIT_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    return panel_server(DASHBOARDS["embeddings"], env=env)


def test_embeddings_dashboard_in_a_browser(browser, embeddings_app):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(embeddings_app)

    page.locator(".js-plotly-plot").first.wait_for(timeout=20_000)
    status = page.locator("strong", has_text="toy disk").locator("..")
    status.get_by_text("metric").wait_for()
    assert "400 points × 2 dimensions" in status.inner_text() and "Point 0" in status.inner_text()

    box = page.get_by_label("Selected point")
    box.fill("123")
    box.press("Enter")
    status.get_by_text("Point 123").wait_for()
    assert page.locator("table").first.locator("tbody tr").count() == 10       # the neighbour list

    page.get_by_label("Colour by").select_option("kind")
    page.get_by_text("kind = user").first.wait_for()                          # the legend entries
    box.fill("999")
    box.press("Enter")
    page.get_by_text("outside this table").wait_for()
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-embeddings.png", full_page=True)

    page.get_by_text("Retrieval (EGT vs kNN)", exact=True).first.click()     # the retrieval view (demo digits)
    page.get_by_text("Precision of the first 20").wait_for(timeout=30_000)
    query = page.get_by_label("Query (row)")
    query.fill("7")
    query.press("Enter")
    page.get_by_text("query 7").wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=SCREENSHOTS / "dashboard-retrieval.png", full_page=True)
    page.close()
    assert not errors, errors
