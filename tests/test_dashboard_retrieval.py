"""The embeddings dashboard's retrieval view: one query's EGT traversal against kNN (no browser)."""

import numpy as np
import pandas as pd
import pytest

from l6kit import embeddings as emb
from l6kit.dashboards import embeddings as ed
from l6kit.dashboards import retrieval as rv
from l6kit.retrieval import arcs, average_precision, egt_rank, knn_rank


@pytest.fixture(scope="module")
def arcs_table():
    X, labels = arcs(n_classes=6, pts=40, seed=0)
    return emb.EmbeddingTable(X, pd.DataFrame({"label": labels, "noise": np.arange(len(X)) * 0.1}), "cosine", "arcs")


def test_query_leaves_the_index_and_rankings_match_the_library(arcs_table):
    run = rv.run_query(arcs_table, "label", 17, k=8, tau=0.9)
    n = len(arcs_table)
    assert 17 not in run.egt and 17 not in run.knn and sorted(run.egt) == sorted(run.index)
    X, keep = arcs_table.coords, run.index
    egt, _ = egt_rank(X[17:18], X[keep], 8, 0.9, progress=False)     # the same traversal, graph built directly
    np.testing.assert_array_equal(run.egt, keep[egt[0]])
    np.testing.assert_array_equal(run.knn, keep[knn_rank(X[17:18], X[keep])[0]])
    positives = np.flatnonzero(arcs_table.meta["label"].to_numpy()[keep] == arcs_table.meta["label"][17])
    assert run.ap_knn == pytest.approx(average_precision(knn_rank(X[17:18], X[keep])[0], positives))
    assert run.relevant.sum() == len(positives) == 39 and len(run.egt) == n - 1
    assert set(run.step) <= {"exploit", "explore"} and run.parent[0] == 17      # first edge leaves the query


def test_egt_beats_knn_on_crossing_arcs_for_most_queries(arcs_table):
    wins = [rv.run_query(arcs_table, "label", q, 8, 0.9) for q in range(0, 240, 24)]
    assert np.mean([r.ap_egt > r.ap_knn for r in wins]) >= 0.5
    p_egt, p_knn = rv.precision(wins[0], 10)
    assert 0 <= p_egt <= 1 and 0 <= p_knn <= 1


def test_figure_numbers_the_first_steps(arcs_table):
    run = rv.run_query(arcs_table, "label", 3, 8, 0.9)
    fig = rv.traversal_figure(arcs_table, run, 12)
    numbered = [t for t in fig.data if t.mode == "markers+text"]
    assert sum(len(t.x) for t in numbered if t.name.startswith("EGT")) == 12
    assert [t.name for t in numbered][-1] == "kNN" and list(numbered[-1].text) == [str(i) for i in range(1, 13)]


@pytest.mark.parametrize("column, query, k, match", [
    ("noise", 0, 8, "cannot define relevance"), ("label", 999, 8, "outside"), ("label", 0, 0, "between")])
def test_bad_choices_say_why(arcs_table, column, query, k, match):
    with pytest.raises(ValueError, match=match):
        rv.run_query(arcs_table, column, query, k)
    poincare = emb.EmbeddingTable(arcs_table.coords[:, :2] * 0.1, arcs_table.meta, "poincare", "p")
    with pytest.raises(ValueError, match="descriptor table"):
        rv.run_query(poincare, "label", 0, 8)


def test_view_uses_the_demo_digits_and_reports_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("L6KIT_RESULTS", str(tmp_path))
    view = rv.RetrievalView(ed.find_tables(), ed.load)
    assert view.table == ed.DEMO and "Precision of the first 20" in view.status.object
    view.steps = 5
    assert "first 5" in view.status.object
    view.query = 5000
    assert view.alert.visible and "outside" in view.alert.object
