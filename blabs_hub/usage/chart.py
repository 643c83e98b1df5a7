"""The concurrent-labs chart, drawn as SVG on the server: no script, no CDN, prints well.

:func:`geometry` is the arithmetic (pure, tested); :func:`render_svg` only formats it.
"""

from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 720, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 40, 12, 12, 28


@dataclass(frozen=True)
class Geometry:
    path: str  # the step line, SVG path data
    y_ticks: list[tuple[float, int]]  # (y, value)
    x_ticks: list[tuple[float, str]]  # (x, label)
    top: int  # the value at the top of the plot


def _scale_top(highest: int) -> int:
    """A round top for the y axis, at least 1."""
    for top in (1, 2, 4, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if highest <= top:
            return top
    return highest


def geometry(
    points: list[tuple[datetime, int]], start: datetime, end: datetime, limit: int | None = None
) -> Geometry:
    """Where everything goes in a WIDTH × HEIGHT picture of ``points`` over [start, end)."""
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    span = (end - start).total_seconds() or 1
    top = _scale_top(max([n for _, n in points] + [limit or 0, 1]))

    def x(when: datetime) -> float:
        return round(MARGIN_LEFT + plot_w * (when - start).total_seconds() / span, 1)

    def y(n: int) -> float:
        return round(MARGIN_TOP + plot_h * (1 - n / top), 1)

    parts = []
    for i, (when, n) in enumerate(points):
        if i == 0:
            parts.append(f"M{x(when)},{y(n)}")
        else:
            parts.append(f"H{x(when)}V{y(n)}")
    parts.append(f"H{x(end)}")
    step = max(1, top // 4)
    y_ticks = [(y(v), v) for v in range(0, top + 1, step)]
    hours = int(span // 3600) or 1
    every = 3 if hours > 12 else 1
    x_ticks = []
    for h in range(0, hours + 1, every):
        when = start.timestamp() + h * 3600
        x_ticks.append(
            (round(MARGIN_LEFT + plot_w * (when - start.timestamp()) / span, 1), f"{h % 24:02d}:00")
        )
    return Geometry(" ".join(parts), y_ticks, x_ticks, top)


def render_svg(
    points: list[tuple[datetime, int]],
    start: datetime,
    end: datetime,
    title: str,
    limit: int | None = None,
) -> str:
    """The chart as an accessible inline SVG (a title and a description for screen readers)."""
    g = geometry(points, start, end, limit)
    peak = max((n for _, n in points), default=0)
    desc = f"Peak {peak} labs running at once" + (f"; the limit is {limit}" if limit else "")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title chart-desc" class="usage-chart" id="concurrency-chart">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(desc)}</desc>',
    ]
    right = WIDTH - MARGIN_RIGHT
    bottom = HEIGHT - MARGIN_BOTTOM
    for yy, v in g.y_ticks:
        out.append(
            f'<line x1="{MARGIN_LEFT}" y1="{yy}" x2="{right}" y2="{yy}" stroke="#ddd"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{yy + 4}" text-anchor="end" font-size="11">{v}</text>'
        )
    for xx, label in g.x_ticks:
        out.append(
            f'<text x="{xx}" y="{bottom + 16}" text-anchor="middle" font-size="11">{label}</text>'
        )
    if limit:
        ly = round(MARGIN_TOP + (bottom - MARGIN_TOP) * (1 - limit / g.top), 1)
        out.append(
            f'<line x1="{MARGIN_LEFT}" y1="{ly}" x2="{right}" y2="{ly}" stroke="#c00" '
            f'stroke-dasharray="4 3" class="limit-line"/>'
        )
    out.append(
        f'<line x1="{MARGIN_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#666"/>'
        f'<path d="{g.path}" fill="none" stroke="#0d6efd" stroke-width="2" class="series"/>'
        "</svg>"
    )
    return "".join(out)
