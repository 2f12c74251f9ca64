"""Server-side SVG charts: no JavaScript, no CDN, so the page works in an air-gapped deployment.

Every function returns a complete ``<svg>`` element as a string; all text is XML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

# Colour-blind friendly palette (Okabe-Ito), cycled per series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
LIMIT_COLOUR = "#D55E00"


@dataclass(frozen=True)
class Series:
    """One stacked series: a name and one value per bar."""

    name: str
    values: Sequence[float]


def _nice_ceiling(value: float) -> float:
    """The smallest 1/2/5 x 10^n that is >= value (axis maximum)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def stacked_bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    limit: float | None = None,
    limit_label: str = "limit",
    width: int = 760,
    height: int = 240,
    label_every: int = 1,
) -> str:
    """Stacked bars (one per label) with an optional horizontal limit line.

    ``series`` values line up with ``labels``; a series shorter than ``labels`` counts as 0 after its end.
    """
    left, right, top, bottom = 56, 12, 28, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(labels), 1)
    totals = [sum(s.values[i] if i < len(s.values) else 0 for s in series) for i in range(len(labels))]
    y_max = _nice_ceiling(max([*totals, limit or 0, 1]))
    slot = plot_w / count
    bar_w = max(1.0, slot * 0.75)

    def y(value: float) -> float:
        return top + plot_h - (value / y_max) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="{escape(title, {chr(34): "&quot;"})}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for tick in range(5):
        value = y_max * tick / 4
        ty = y(value)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" class="axis">{_fmt(value)}</text>')
    for index, label in enumerate(labels):
        x = left + index * slot + (slot - bar_w) / 2
        base = 0.0
        for number, one in enumerate(series):
            value = one.values[index] if index < len(one.values) else 0
            if value <= 0:
                continue
            colour = PALETTE[number % len(PALETTE)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y(base + value):.1f}" width="{bar_w:.1f}" '
                f'height="{y(base) - y(base + value):.1f}" fill="{colour}" class="bar">'
                f"<title>{escape(label)} {escape(one.name)}: {_fmt(value)}</title></rect>"
            )
            base += value
        if index % max(label_every, 1) == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" class="axis">'
                f"{escape(label)}</text>"
            )
    if limit is not None:
        ly = y(limit)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{ly:.1f}" y2="{ly:.1f}" stroke="{LIMIT_COLOUR}" '
            f'stroke-dasharray="6 4" class="limit"/>'
        )
        parts.append(
            f'<text x="{width - right}" y="{ly - 4:.1f}" text-anchor="end" class="axis limit-label">'
            f"{escape(limit_label)} {_fmt(limit)}</text>"
        )
    legend_x = left
    for number, one in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        parts.append(f'<rect x="{legend_x}" y="{height - 16}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 7}" class="legend">{escape(one.name)}</text>')
        legend_x += 24 + 7 * len(one.name)
    if not series or not any(totals):
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" class="empty">'
            "no data yet</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
