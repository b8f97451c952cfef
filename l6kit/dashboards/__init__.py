"""Panel dashboards: one ``pn.viewable.Viewer`` per module, served with ``panel serve <file>``.

Each module keeps its logic in plain functions (tested without a browser) under a thin Viewer whose
``param`` parameters are the controls, provides ``app()`` returning a fresh dashboard, and ends with a
guarded ``.servable()``. :data:`DASHBOARDS` maps a dashboard's name to its module file, so a command line
can run ``panel serve DASHBOARDS[name] --address 127.0.0.1``.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent

DASHBOARDS: dict[str, Path] = {
    "embeddings": _HERE / "embeddings.py",
    "manifold": _HERE / "manifold.py",
    "winit": _HERE / "winit.py",
}

__all__ = ["DASHBOARDS"]
