"""Figures of a capacity search (``capacity.json``, see ``sla.files.capacity``): pure builders.

    result = load_capacity("runs/sweep")
    panels = capacity_panels(result)          # latency–throughput curve, load vs throughput
    panel = capacity_comparison_panel([a, b], ["before", "after"])

The result is the frozen ``CapacityResult`` that ``load_capacity`` read and checked; how its
steps become points (curves, markers, hovers) is ``dashboards.capacity_points``. ERROR steps
measured nothing trustworthy: they stay out of the curves (the report's step table lists
them). Text from the file (labels, units, phases, statuses, the knee's metric) reaches a
figure only through ``safe_label``.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from dashboards.capacity_points import (
    STATUS_SYMBOLS,
    curve_points,
    hover,
    percentile,
    status_colour,
    status_markers,
)
from dashboards.panel import COLOURS, STATUS_COLOURS, Panel, new_figure, safe_label
from sla.files.capacity import CapacityResult, StepResult

# Okabe-Ito without its yellow, which vanishes on white.
SWEEP_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
BRACKET_FILL = "rgba(0, 158, 115, 0.14)"
_HEIGHT_PX = 460
_CURVES = (  # (name, step field, percentile, colour, dash)
    ("p50 latency", "latency_ms", "p50", COLOURS["p50"], "solid"),
    ("p99 latency", "latency_ms", "p99", COLOURS["p99"], "solid"),
    ("p99 TTFT", "ttft_ms", "p99", COLOURS["p90"], "dot"),
    ("p99 TPOT", "tpot_ms", "p99", COLOURS["tokens"], "dash"),
)


def _legend_below(fig: go.Figure) -> None:
    """The legend under the plot: these figures have too many entries to sit above it."""
    fig.update_layout(
        height=_HEIGHT_PX,
        margin={"b": 120},
        legend={"orientation": "h", "x": 0.0, "xanchor": "left", "y": -0.3, "yanchor": "top"},
    )


def _status_legend(fig: go.Figure, points: Sequence[StepResult]) -> None:
    """Legend entries (no data) for the statuses whose colour and shape the markers use."""
    for status in dict.fromkeys(p.status for p in points):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=safe_label(status, 20),
                legendgroup="status",
                marker={
                    "color": status_colour(status),
                    "symbol": STATUS_SYMBOLS.get(status, "square"),
                    "size": 10,
                },
                hoverinfo="skip",
            )
        )


def latency_throughput_panel(result: CapacityResult) -> Panel | None:
    """Latency percentiles against achieved throughput, one marker per measured step coloured
    and shaped by its status, the capacity step and the knee annotated; None without a
    measured step."""
    curve = curve_points(result.steps)
    if not curve:
        return None
    unit = result.load_unit
    title = "Latency against achieved throughput (one point per step)"
    fig = new_figure(title, x_title="achieved throughput (requests/s)", y_title="latency (ms)")
    customdata, head = hover(curve, unit)
    for name, field, stat, colour, dash in _CURVES:
        y = [percentile(getattr(p, field), stat) for p in curve]
        if all(v is None for v in y):
            continue
        fig.add_trace(
            go.Scatter(
                x=[p.throughput_rps for p in curve],
                y=y,
                name=name,
                mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 1.5},
                marker=status_markers(curve, colour),
                customdata=customdata,
                hovertemplate=head + f"{name} %{{y:.4g}} ms at %{{x:.4g}} req/s<extra></extra>",
            )
        )
    _status_legend(fig, curve)
    _annotate_capacity(fig, result, curve, unit)
    fig.update_layout(hovermode="closest")
    _legend_below(fig)
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(rangemode="tozero")
    errored = [p.step for p in result.steps if p.status == "ERROR"]
    note = "Marker colour and shape: the step's SLA status; lines join the steps by load."
    if errored:
        note += f" ERROR steps left out: {', '.join(map(str, errored))} (see the step table)."
    return Panel("capacity_latency_throughput", title, fig, note)


def _annotate_capacity(
    fig: go.Figure, result: CapacityResult, curve: Sequence[StepResult], unit: str
) -> None:
    capacity = result.capacity
    step = _on_curve(curve, capacity.step) if capacity else None
    if capacity and step and step.throughput_rps is not None:
        p99, p50 = percentile(step.latency_ms, "p99"), percentile(step.latency_ms, "p50")
        fig.add_annotation(
            x=step.throughput_rps,
            y=p99 if p99 is not None else p50,
            text=f"capacity: {capacity.load:.4g} {safe_label(unit, 20)} (step {step.step})",
            showarrow=True,
            arrowhead=2,
            ax=-60,
            ay=-40,
            font={"color": STATUS_COLOURS["PASS"]},
        )
    _annotate_knee(fig, result, curve, unit)


def _on_curve(curve: Sequence[StepResult], step: int) -> StepResult | None:
    return next((p for p in curve if p.step == step), None)


def _annotate_knee(
    fig: go.Figure, result: CapacityResult, curve: Sequence[StepResult], unit: str
) -> None:
    """The knee at its own point (throughput, the knee metric's latency), else at its step's
    p99; labelled with the metric it was found on, which need not be a drawn curve."""
    knee = result.knee
    if knee is None:
        return
    knee_step = _on_curve(curve, knee.step)
    x, y = knee.throughput_rps, knee.latency_ms
    if (x is None or y is None) and knee_step is not None:
        x, y = knee_step.throughput_rps, percentile(knee_step.latency_ms, "p99")
    if x is None or y is None:
        return
    text = f"knee: {knee.load:.4g} {safe_label(unit, 20)}"
    if knee.metric:
        text += f" ({safe_label(knee.metric, 40)})"
    fig.add_annotation(x=x, y=y, text=text, showarrow=True, arrowhead=2, ax=40, ay=-50)


def load_throughput_panel(result: CapacityResult) -> Panel | None:
    """Achieved throughput and goodput (req/s) against the load of each step, the capacity
    bracket shaded; None without a step that has a throughput."""
    points = curve_points(result.steps)
    if not points:
        return None
    unit = result.load_unit
    closed = result.mode == "concurrency" or unit == "users"
    x_title = f"concurrency ({safe_label(unit, 20)})" if closed else "offered load (req/s)"
    if not closed and unit != "req/s":
        x_title = f"offered load ({safe_label(unit, 20)})"
    title = "Achieved throughput and goodput against offered load"
    fig = new_figure(title, x_title=x_title, y_title="rate (requests/s)")
    customdata, head = hover(points, unit)
    x = [p.load for p in points]
    series = (
        ("throughput (req/s)", [p.throughput_rps for p in points], COLOURS["ok"], "solid"),
        ("goodput (req/s)", [p.goodput_rps for p in points], COLOURS["p50"], "dash"),
        ("offered (sent, req/s)", [p.offered_rps for p in points], COLOURS["users"], "dot"),
    )
    for name, y, colour, dash in series:
        if all(v is None for v in y):
            continue
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                name=name,
                mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 1.5},
                marker=status_markers(points, colour),
                customdata=customdata,
                hovertemplate=head + f"{name} %{{y:.4g}}<extra></extra>",
            )
        )
    _status_legend(fig, points)
    note = _shade_bracket(fig, result, unit)
    fig.update_layout(hovermode="closest")
    _legend_below(fig)
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(rangemode="tozero")
    return Panel("capacity_load_throughput", title, fig, note)


def _shade_bracket(fig: go.Figure, result: CapacityResult, unit: str) -> str:
    capacity, fail = result.capacity, result.lowest_fail
    line = {"dash": "dash", "width": 1, "color": "#555555"}
    if capacity and fail:
        fig.add_vrect(
            x0=capacity.load,
            x1=fail.load,
            fillcolor=BRACKET_FILL,
            line_width=0,
            layer="below",
            name="capacity bracket",
        )
        return (
            f"Shaded: the capacity bracket, from the highest PASS ({capacity.load:.4g} {unit}) "
            f"to the lowest FAIL ({fail.load:.4g} {unit}). Markers: the step's SLA status."
        )
    if capacity:
        fig.add_vline(x=capacity.load, line=line)
        return f"Dashed: the capacity ({capacity.load:.4g} {unit}; no step failed above it)."
    if fail:
        fig.add_vline(x=fail.load, line=line)
        return f"Dashed: the lowest FAIL ({fail.load:.4g} {unit}; no step passed below it)."
    return "No capacity bracket: the search established neither a PASS nor a FAIL load."


def capacity_panels(result: CapacityResult) -> list[Panel]:
    """The figures of one capacity result, in the order the report shows them."""
    panels = (latency_throughput_panel(result), load_throughput_panel(result))
    return [p for p in panels if p is not None]


def capacity_comparison_panel(
    results: Sequence[CapacityResult], labels: Sequence[str]
) -> Panel | None:
    """The p99 (solid) and p50 (dotted) latency–throughput curves of several sweeps, one
    colour each, with each sweep's capacity step starred; None when no sweep has a point."""
    title = "Latency against achieved throughput, by sweep"
    fig = new_figure(title, x_title="achieved throughput (requests/s)", y_title="latency (ms)")
    drawn = 0
    for index, (result, label) in enumerate(zip(results, labels, strict=True)):
        curve = curve_points(result.steps)
        if not curve:
            continue
        drawn += 1
        colour = SWEEP_COLOURS[index % len(SWEEP_COLOURS)]
        name = safe_label(label, 40)
        customdata, head = hover(curve, result.load_unit)
        for stat, dash in (("p99", "solid"), ("p50", "dot")):
            fig.add_trace(
                go.Scatter(
                    x=[p.throughput_rps for p in curve],
                    y=[percentile(p.latency_ms, stat) for p in curve],
                    name=f"{name} {stat}",
                    legendgroup=f"sweep-{index}",
                    mode="lines+markers",
                    line={"color": colour, "dash": dash, "width": 1.5},
                    marker={
                        "color": colour,
                        "size": 9,
                        "symbol": [STATUS_SYMBOLS.get(p.status, "square") for p in curve],
                    },
                    customdata=customdata,
                    hovertemplate=f"{name}: {head}{stat} latency %{{y:.4g}} ms at "
                    "%{x:.4g} req/s<extra></extra>",
                )
            )
        _star_capacity(fig, result, curve, colour, name, index)
    if not drawn:
        return None
    fig.update_layout(hovermode="closest")
    _legend_below(fig)
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(rangemode="tozero")
    note = (
        "One colour per sweep; solid p99, dotted p50; marker shape: the step's status "
        "(circle PASS, x FAIL, diamond INCONCLUSIVE); star: the sweep's capacity step."
    )
    return Panel("capacity_comparison", title, fig, note)


def _star_capacity(
    fig: go.Figure,
    result: CapacityResult,
    curve: Sequence[StepResult],
    colour: str,
    name: str,
    index: int,
) -> None:
    capacity = result.capacity
    step = _on_curve(curve, capacity.step) if capacity else None
    if capacity is None or step is None:
        return
    fig.add_trace(
        go.Scatter(
            x=[step.throughput_rps],
            y=[percentile(step.latency_ms, "p99")],
            name=f"{name} capacity",
            legendgroup=f"sweep-{index}",
            showlegend=False,
            mode="markers",
            marker={"color": colour, "symbol": "star", "size": 18, "line": {"width": 1}},
            hovertemplate=f"{name}: capacity {capacity.load:.4g} "
            f"{safe_label(result.load_unit, 20)} (step {step.step})<extra></extra>",
        )
    )
