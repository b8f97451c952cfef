"""Figures of the EHR pages (plotly, the book's template): one stay's irregular series and its binned grid,
training curves, label efficiency, ROC curves and DuETT's attention maps. Functions return figures only.

References:
    Labach et al., MLHC 2023, Fig. 1 (the binned grid and its two attention axes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from l6kit.ehr.aggregate import BinnedStays, EventBinner
from l6kit.ehr.physionet import PhysioNetData
from l6kit.viz import PALETTE


def stay_series(data: PhysioNetData, i: int, variables: Sequence[str], binner: EventBinner) -> go.Figure:
    """The raw measurements of stay ``i`` for a few ``variables`` (one panel each) with the bin boundaries."""
    events = data.events(i)
    fig = make_subplots(rows=len(variables), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        subplot_titles=list(variables))
    for r, name in enumerate(variables, start=1):
        part = events[events["parameter"] == name]
        fig.add_trace(go.Scatter(x=part["time_h"], y=part["value"], mode="markers+lines", name=name,
                                 marker=dict(size=5, color=PALETTE[(r - 1) % len(PALETTE)]),
                                 line=dict(width=1)), r, 1)
    for edge in np.linspace(0, binner.horizon_h, binner.n_bins + 1):
        fig.add_vline(x=float(edge), line_width=0.6, line_dash="dot", line_color="#999")
    died = int(data.labels[i])
    fig.update_layout(height=130 * len(variables) + 90, showlegend=False,
                      title=f"Stay {data.record_ids[i]} ({'died' if died else 'survived'}): "
                            f"irregular measurements and the {binner.n_bins} bins")
    fig.update_xaxes(title_text="hours since ICU admission", row=len(variables), col=1)
    fig.update_annotations(font_size=12)
    return fig


def binned_grid(stays: BinnedStays, i: int) -> go.Figure:
    """Heat maps of one stay's aggregated input: z-scored last value and observation count per (bin, variable)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["last value (z-score; blank = not observed)",
                                                        "observations per bin"], horizontal_spacing=0.12)
    values = np.where(stays.counts[i] > 0, stays.values[i], np.nan).T          # (D, T)
    bins = [f"{e:.0f} h" for e in stays.bin_end_h[i]]
    fig.add_trace(go.Heatmap(z=values, x=bins, y=list(stays.variables), colorscale="RdBu_r", zmid=0,
                             colorbar=dict(x=0.44, len=0.9)), 1, 1)
    fig.add_trace(go.Heatmap(z=stays.counts[i].T, x=bins, y=list(stays.variables), colorscale="Blues",
                             colorbar=dict(x=1.0, len=0.9)), 1, 2)
    fig.update_layout(title="DuETT's input for this stay: one (value, count) pair per bin and variable",
                      height=420)
    fig.update_xaxes(title_text="bin (end time)")
    return fig


def training_curves(pretrain: Sequence[float], finetune: Mapping[str, Sequence[float]]) -> go.Figure:
    """Loss per epoch: pre-training (left) and the named fine-tuning runs (right), each ``(epochs,)``."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["self-supervised pre-training, loss (4)",
                                                        "fine-tuning, cross-entropy"], horizontal_spacing=0.1)
    fig.add_trace(go.Scatter(x=np.arange(1, len(pretrain) + 1), y=list(pretrain), mode="lines+markers",
                             name="pre-training", marker=dict(color=PALETTE[6])), 1, 1)
    for k, (name, losses) in enumerate(finetune.items()):
        fig.add_trace(go.Scatter(x=np.arange(1, len(losses) + 1), y=list(losses), mode="lines+markers",
                                 name=name, marker=dict(color=PALETTE[2 + k])), 1, 2)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="training loss", row=1, col=1)
    fig.update_layout(title="Training loss per epoch", height=420)
    return fig


def label_efficiency(table: pd.DataFrame, metric: str = "auroc", ceiling: float | None = None) -> go.Figure:
    """Test ``metric`` against the number of labelled training stays, one line per model, with the oracle
    ceiling as a dashed line."""
    fig = go.Figure()
    for k, (name, part) in enumerate(table.groupby("model", sort=False)):
        part = part.sort_values("n_labelled")
        fig.add_trace(go.Scatter(x=part["n_labelled"], y=part[metric], mode="lines+markers", name=name,
                                 marker=dict(size=9, color=PALETTE[k]),
                                 text=[f"{f:.0%} labels" for f in part["fraction"]]))
    if ceiling is not None:
        fig.add_hline(y=ceiling, line_dash="dash", line_color=PALETTE[6],
                      annotation_text="generator's own risk (ceiling)", annotation_position="bottom right")
    fig.update_layout(title=f"Test {metric.upper()} vs number of labelled stays", xaxis_title="labelled stays",
                      yaxis_title=f"test {metric.upper()}", legend_title="model")
    fig.update_xaxes(type="log")
    return fig


def roc_curves(labels: np.ndarray, scores: Mapping[str, np.ndarray]) -> go.Figure:
    """ROC curves of several scorers (``name -> (n,)`` scores) on the same labels ``(n,)``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = go.Figure()
    for k, (name, s) in enumerate(scores.items()):
        fpr, tpr, _ = roc_curve(labels, s)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{name} ({roc_auc_score(labels, s):.3f})",
                                 line=dict(color=PALETTE[k])))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"),
                             name="chance", hoverinfo="skip"))
    fig.update_layout(title="ROC curves on the test stays (AUROC in brackets)", xaxis_title="false positive rate",
                      yaxis_title="true positive rate", height=480)
    return fig


def attention_heatmaps(maps: Mapping[str, np.ndarray], variables: Sequence[str], bin_labels: Sequence[str],
                       layer: int = -1) -> go.Figure:
    """Event x event and time x time attention of one layer (averaged over stays and heads)."""
    events = [*variables, "static"]
    times = [*bin_labels, "[REP]"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["event attention (row attends to column)",
                                                        "time attention (row attends to column)"],
                        horizontal_spacing=0.14)
    fig.add_trace(go.Heatmap(z=maps["event"][layer], x=events, y=events, colorscale="Viridis",
                             colorbar=dict(x=0.43, len=0.9)), 1, 1)
    fig.add_trace(go.Heatmap(z=maps["time"][layer], x=times, y=times, colorscale="Viridis",
                             colorbar=dict(x=1.0, len=0.9)), 1, 2)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Where DuETT's last layer attends, averaged over test stays and heads", height=460)
    return fig
