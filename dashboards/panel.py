"""The panel type every figure builder returns, and the styling they share.

Every figure gets a title, axis titles with units, the same compact layout, and (on a time
axis) the warm-up shaded and the measured window marked, so that panels read alike.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from dashboards.view import Timeline

TIME_AXIS_TITLE = "time since run start (s)"
# Muted, colour-blind-friendly (Okabe-Ito) so that lines stay apart when printed too.
COLOURS = {
    "p50": "#0072B2",
    "p90": "#E69F00",
    "p99": "#D55E00",
    "ok": "#009E73",
    "error": "#CC3311",
    "tokens": "#56B4E9",
    "users": "#555555",
    "baseline": "#0072B2",
    "candidate": "#D55E00",
}
STATUS_COLOURS = {"PASS": "#009E73", "FAIL": "#CC3311", "INCONCLUSIVE": "#E69F00"}
WARMUP_FILL = "rgba(120, 120, 120, 0.18)"
_HEIGHT_PX = 380


@dataclass(frozen=True)
class Panel:
    """One figure of a report: ``key`` is a stable id (``"latency_over_time"``), ``note`` one
    line to show under the figure (what is shaded, what the bars are).

    ``title`` and ``note`` are plain text that may hold text from the run (an SLA name):
    escape them when writing HTML. Text inside ``figure`` is already escaped for plotly.js
    (which decodes entities and renders a few tags), so it shows as typed and runs nothing.
    """

    key: str
    title: str
    figure: go.Figure
    note: str = ""


def new_figure(title: str, *, x_title: str, y_title: str, height_px: int = _HEIGHT_PX) -> go.Figure:
    """An empty figure with the shared layout."""
    fig = go.Figure()
    style(fig, title, height_px=height_px)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def style(fig: go.Figure, title: str, *, height_px: int = _HEIGHT_PX) -> None:
    """The shared layout: title, white template, legend above the plot, compact margins."""
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        template=pio.templates["plotly_white"],  # the object: validated faster than its name
        height=height_px,
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
        hovermode="x unified",
    )


def mark_timeline(
    fig: go.Figure, timeline: Timeline, *, row: int | str | None = None, col: int | None = None
) -> None:
    """Shade the warm-up (run start to ``measured_from``) and draw the measured window's
    bounds as dashed lines; ``row``/``col`` pick the subplot (``row="all"`` for every one)."""
    where: dict[str, int | str] = {}
    if row is not None:
        where["row"] = row
    if col is not None:
        where["col"] = col
    if timeline.warmup_end_s is not None and timeline.warmup_end_s > 0:
        fig.add_vrect(
            x0=0.0,
            x1=timeline.warmup_end_s,
            fillcolor=WARMUP_FILL,
            line_width=0,
            layer="below",
            name="warm-up",
            **where,
        )
    for x, name in ((timeline.measured_start_s, "measured from"), (timeline.end_s, "run end")):
        fig.add_vline(
            x=x, line={"dash": "dash", "width": 1, "color": "#777777"}, name=name, **where
        )


def timeline_note(timeline: Timeline, *, by: str = "request start") -> str:
    """The note of a time-axis panel: what is shaded and what the dashed lines are; ``by``
    says which time places a request in its window."""
    window = f"{fmt_seconds(timeline.window_s)} windows by {by}"
    if timeline.warmup_end_s is not None and timeline.warmup_end_s > 0:
        return (
            f"Shaded: warm-up (0–{fmt_seconds(timeline.warmup_end_s)}, not judged); dashed: "
            f"the measured window ({fmt_seconds(timeline.measured_start_s)}–"
            f"{fmt_seconds(timeline.end_s)}); {window}."
        )
    return f"No warm-up; dashed: the run's end ({fmt_seconds(timeline.end_s)}); {window}."


def fmt_seconds(seconds: float) -> str:
    """``"0.5 s"``, ``"30 s"``, ``"1234 s"``: at most three decimals, no trailing zeros."""
    if not math.isfinite(seconds):
        return "? s"
    return f"{round(seconds, 3):g} s" if abs(seconds) < 1e6 else f"{seconds:.0f} s"


def safe_label(text: object, max_chars: int = 80) -> str:
    """A string from a run (an error message, an endpoint) made safe for a figure's text.

    plotly.js renders a few HTML tags in text and decodes entities, so escaping ``<``, ``>``
    and ``&`` shows the original characters and runs nothing; long text is cut."""
    value = " ".join(str(text).split())
    if len(value) > max_chars:
        value = value[: max_chars - 1] + "…"
    return html.escape(value, quote=False)


def padded_range(ends: np.ndarray) -> list[float]:
    """An x range holding 0 and every finite value of ``ends`` (bar ends, whisker ends) with
    room beside the bars for the text drawn outside them."""
    finite = ends[np.isfinite(ends)]
    low, high = float(min(0.0, finite.min(initial=0.0))), float(max(0.0, finite.max(initial=0.0)))
    pad = max(high - low, 10.0) * 0.3
    return [low - pad if low < 0 else low - pad / 6, high + pad if high > 0 else high + pad / 6]
