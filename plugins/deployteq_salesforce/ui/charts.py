"""Server-side SVG charts: no JavaScript, no CDN, so the page works in an air-gapped deployment.

``stacked_bar_chart`` returns a ``<figure>``: the SVG (scaled to the width of its box, with a
``<title>`` for screen readers) and an HTML caption and legend, which wrap instead of being cut off.
All text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind friendly palette (Okabe-Ito, then four of Paul Tol's), one colour per series: callers keep
# to MAX_SERIES series (view_models folds the rest into "other").
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#882255", "#44AA99", "#332288", "#999933")
MAX_SERIES = len(PALETTE)
LIMIT_COLOUR = "#D55E00"
ZERO_COLOUR = "#98A2B3"


@dataclass(frozen=True)
class Series:
    """One stacked series: a name and one value per bar."""

    name: str
    values: Sequence[float]


def _axis(value: float) -> tuple[float, int]:
    """The axis maximum and its number of steps: 4 or 5 equal steps of a round size (1, 2, 2.5 or 5 x 10^n)
    that reach ``value``, whichever ends lower."""
    value = max(value, 4.0)  # counts: at least steps of 1

    def ceiling(ticks: int) -> float:
        step = value / ticks
        magnitude = 10 ** math.floor(math.log10(step))
        return next(f * magnitude for f in (1, 2, 2.5, 5, 10) if f * magnitude >= step) * ticks

    return min((ceiling(ticks), ticks) for ticks in (4, 5))


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _percent(value: float) -> str:
    return f"{value:.0f} %" if value >= 10 or value == 0 else f"{value:.1f} %"


def stacked_bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    limit: float | None = None,
    limit_label: str = "limit",
    tooltips: Sequence[str] | None = None,
    unit: str = "",
    width: int = 760,
    height: int = 220,
    label_every: int = 1,
    mark_zero: bool = False,
) -> str:
    """Stacked bars (one per label), with an optional limit.

    The axis is scaled to the data, not to the limit, so 47 requests against a budget of 3,600 still
    show; with a limit a second axis on the right gives "% of the limit", and the limit line is
    drawn when it is on the scale (else the caption says how far below it the busiest bar is).
    ``tooltips`` replace the per-bar hover text; ``mark_zero`` draws a stub for empty bars (a run
    that did nothing is still a run).
    """
    left, right, top, bottom = 48, 52 if limit else 12, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(labels), 1)
    totals = [sum(s.values[i] if i < len(s.values) else 0 for s in series) for i in range(len(labels))]
    peak = max([*totals, 0])
    y_max, ticks = _axis(peak)
    if limit and limit <= y_max * 1.25:
        y_max, ticks = _axis(max(peak, limit))  # the limit is near: show it on the scale
    slot = plot_w / count
    bar_w = max(1.0, slot * 0.72)

    def y(value: float) -> float:
        return top + plot_h - (value / y_max) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(ticks + 1):
        value = y_max * tick / ticks
        ty = y(value)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" class="axis">{_fmt(value)}</text>')
        if limit:
            parts.append(
                f'<text x="{width - right + 6}" y="{ty + 4:.1f}" class="axis">{_percent(value / limit * 100)}</text>'
            )
    for index, label in enumerate(labels):
        x = left + index * slot + (slot - bar_w) / 2
        hover = tooltips[index] if tooltips and index < len(tooltips) else None
        base = 0.0
        for number, one in enumerate(series):
            value = one.values[index] if index < len(one.values) else 0
            if value <= 0:
                continue
            colour = PALETTE[number % len(PALETTE)]
            text = hover or f"{label} {one.name}: {_fmt(value)}{unit}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y(base + value):.1f}" width="{bar_w:.1f}" '
                f'height="{max(y(base) - y(base + value), 1.0):.1f}" fill="{colour}" class="bar">'
                f"<title>{escape(text)}</title></rect>"
            )
            base += value
        if base == 0 and mark_zero:
            text = hover or f"{label}: 0{unit}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y(0) - 3:.1f}" width="{bar_w:.1f}" height="3" fill="{ZERO_COLOUR}" class="bar zero">'
                f"<title>{escape(text)}</title></rect>"
            )
        if index % max(label_every, 1) == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 15}" text-anchor="middle" class="axis">'
                f"{escape(label)}</text>"
            )
    caption = escape(title)
    if limit:
        if limit <= y_max:
            ly = y(limit)
            parts.append(
                f'<line x1="{left}" x2="{width - right}" y1="{ly:.1f}" y2="{ly:.1f}" stroke="{LIMIT_COLOUR}" '
                f'stroke-dasharray="6 4" class="limit"/>'
            )
        else:
            caption += (
                f' <span class="muted">— {escape(limit_label)} {_fmt(limit)} is above the scale; the busiest bar is '
                f"{_fmt(peak)} ({_percent(peak / limit * 100)} of it). Right axis: % of the {escape(limit_label)}.</span>"
            )
    if not labels or not series or (not any(totals) and not mark_zero):
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" class="empty">'
            "no data yet</text>"
        )
    parts.append("</svg>")
    legend = [
        f'<li><span class="swatch" style="background:{PALETTE[number % len(PALETTE)]}"></span>{escape(one.name)}</li>'
        for number, one in enumerate(series)
    ]
    if limit and limit <= y_max:
        legend.append(f'<li><span class="swatch limit-swatch"></span>{escape(limit_label)} {_fmt(limit)}</li>')
    return (
        f'<figure class="chart-figure"><figcaption>{caption}</figcaption>{"".join(parts)}'
        f'<ul class="legend">{"".join(legend)}</ul></figure>'
    )
