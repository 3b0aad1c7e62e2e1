"""Bar charts drawn on the server as inline SVG: no script, no CDN, works offline.

Every text that goes into the SVG is escaped here; colours come from ``style.css`` classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 760
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 14, 34


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value, an optional inner value, and a style class."""

    label: str
    value: float
    inner: float | None = None
    tone: str = ""
    tip: str = ""


def bar_chart(bars: Sequence[Bar], *, title: str, every: int = 1) -> Markup:
    """Return an SVG bar chart; ``every`` thins the x-axis labels."""
    top = _nice_top(max((bar.value for bar in bars), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(bars), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    parts += _grid(top, plot_w, plot_h)
    for index, bar in enumerate(bars):
        x = LEFT + index * step + step * 0.12
        width = step * 0.76
        parts.append(_rect(x, width, bar.value, top, plot_h, f"bar {bar.tone}".strip(), bar))
        if bar.inner is not None:
            parts.append(_rect(x, width, bar.inner, top, plot_h, "bar bar-inner", bar))
        if index % every == 0:
            cx = LEFT + index * step + step / 2
            parts.append(
                f'<text class="axis" x="{cx:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _rect(
    x: float, width: float, value: float, top: float, plot_h: float, cls: str, bar: Bar
) -> str:
    height = plot_h * value / top if top else 0
    y = TOP + plot_h - height
    tip = escape(bar.tip or f"{bar.label}: {value:g}")
    return (
        f'<rect class="{escape(cls)}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
        f'height="{height:.1f}"><title>{tip}</title></rect>'
    )


def _grid(top: float, plot_w: float, plot_h: float) -> list[str]:
    lines = []
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        lines.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{value:g}</text>"
        )
    return lines


def _nice_top(value: float) -> float:
    """Return a round axis maximum at or above ``value`` (4 gridlines of whole numbers)."""
    if value <= 4:
        return 4
    magnitude = 10 ** (len(str(int(value))) - 1)
    for factor in (1, 2, 2.5, 4, 5, 8, 10):
        top = factor * magnitude
        if top >= value and top % 4 == 0:
            return top
    return 10 * magnitude * 4
