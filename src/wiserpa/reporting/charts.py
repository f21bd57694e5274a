"""Server-side SVG charts: no JavaScript, no web fonts, no CDN, so the public dashboard works offline.

Every chart is one standalone ``<svg role="img">`` with ``<title>``/``<desc>`` (referenced by
``aria-labelledby``), axis ticks at 1-2-5 "nice" numbers, a legend, and the Okabe–Ito colour-blind-safe
palette. ``None`` values (suppressed cells) are drawn as gaps and labelled "suppressed". Every plotted
bar/point carries ``data-value`` so browser tests can check a chart is not empty. Output is a pure
function of the arguments: the element id is a hash of the content, numbers are formatted with fixed
precision, and mappings are drawn in their insertion order.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from xml.sax.saxutils import escape

from wiserpa.reporting.suppression import suppress_counts

__all__ = [
    "PALETTE",
    "bar_chart",
    "grouped_bar_chart",
    "histogram",
    "line_chart",
    "nice_ticks",
]

# Okabe & Ito (2008), ordered so the first colours have the best contrast on white; yellow last.
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
    "#F0E442",
)
_SUPPRESSED_COLOUR = "#595959"  # 7:1 on white, readable as small text
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
_CHAR_W = 6.5  # average glyph width at 11px, used to size margins without measuring text
_MAX_LABEL = 24

# XML 1.0 forbids these code points outright; escaping cannot rescue them, so they are dropped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(s: object) -> str:
    """Escape for element content."""
    return escape(_XML_INVALID.sub("", str(s)))


def _attr(s: object) -> str:
    """Escape for a double-quoted attribute value."""
    return escape(_XML_INVALID.sub("", str(s)), {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _n(x: float) -> str:
    """Coordinate with fixed precision so output is byte-for-byte stable."""
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def _short(label: str, limit: int = _MAX_LABEL) -> str:
    """Truncate a long axis label; the full text stays in the element's tooltip."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _nice_step(raw: float) -> float:
    """Smallest 1, 2, 2.5 or 5 × 10^k step at least ``raw``."""
    exponent = math.floor(math.log10(raw))
    base = 10.0**exponent
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * base >= raw * (1 - 1e-12):
            return m * base
    return 10.0 * base  # pragma: no cover - loop always returns


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Evenly spaced round tick values covering [lo, hi] (always at least two ticks)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("tick bounds must be finite")
    if lo > hi:
        lo, hi = hi, lo
    if hi - lo <= max(abs(lo), abs(hi)) * 1e-9 or hi - lo < 1e-300:
        # One value, or two too close to tell apart on an axis (a span of a few ulps or subnormals makes
        # log10 of the step fail): chart them as one value with a margin around it.
        mid = (lo + hi) / 2
        pad = abs(mid) * 0.1 if abs(mid) >= 1e-300 else 1.0
        lo, hi = mid - pad, mid + pad
    step = _nice_step((hi - lo) / max(1, target - 1))
    magnitude = math.floor(math.log10(step))
    # Rounding each tick to the step's precision removes float fuzz such as 0.30000000000000004.
    decimals = max(0, -magnitude) + (1 if math.isclose(step / 10.0**magnitude, 2.5) else 0)
    start = math.floor(lo / step + 1e-9)
    end = math.ceil(hi / step - 1e-9)
    return [round(k * step, decimals) for k in range(start, end + 1)]


def _fmt(v: float) -> str:
    """Human number for ticks and tooltips: thousands separators, no trailing zeros."""
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    s = f"{v:,.4f}".rstrip("0").rstrip(".")
    return s


def _check_values(values: Sequence[float | None]) -> None:
    for v in values:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"chart values must be finite numbers or None, got {v!r}")


@dataclass(frozen=True)
class _Frame:
    """Plot geometry shared by all chart kinds."""

    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    ticks: list[float]

    def y(self, v: float) -> float:
        lo, hi = self.ticks[0], self.ticks[-1]
        return self.bottom - (v - lo) / (hi - lo) * (self.bottom - self.top)


def _open_svg(kind: str, title: str, desc: str, width: int, height: int, chart_id: str | None) -> list[str]:
    digest = hashlib.sha256(f"{kind}\x1f{title}\x1f{desc}".encode("utf-8", "surrogatepass")).hexdigest()
    cid = _attr(chart_id) if chart_id else f"chart-{digest[:10]}"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-labelledby="{cid}-title {cid}-desc" '
        f'class="wiserpa-chart {kind}" font-family="{_attr(_FONT)}" font-size="11">',
        f'<title id="{cid}-title">{_text(title)}</title>',
        f'<desc id="{cid}-desc">{_text(desc)}</desc>',
        f'<rect class="background" x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text class="chart-title" x="{_n(width / 2)}" y="20" text-anchor="middle" font-size="15" '
        f'font-weight="600" fill="#111111">{_text(_short(title, 90))}</text>',
    ]


def _no_data(kind: str, title: str, width: int, height: int, chart_id: str | None) -> str:
    parts = _open_svg(kind, title, f"{title}: no data to show.", width, height, chart_id)
    parts.append(
        f'<text class="no-data" x="{_n(width / 2)}" y="{_n(height / 2)}" text-anchor="middle" '
        f'font-size="14" fill="{_SUPPRESSED_COLOUR}">No data</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _legend_items(names: Sequence[str], any_suppressed: bool) -> list[tuple[str, str]]:
    items = [(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)]
    if any_suppressed:
        items.append(("suppressed (1–10 or derived)", ""))
    return items


def _legend_height(items: list[tuple[str, str]], width: int) -> float:
    rows = len(_legend_rows(items, width))
    return rows * 16.0


def _legend_rows(items: list[tuple[str, str]], width: int) -> list[list[tuple[str, str, float]]]:
    """Greedy wrap of legend entries into rows that fit the chart width."""
    rows: list[list[tuple[str, str, float]]] = [[]]
    x = 0.0
    for label, colour in items:
        w = 18 + _CHAR_W * len(_short(label, 40)) + 14
        if rows[-1] and x + w > width - 24:
            rows.append([])
            x = 0.0
        rows[-1].append((label, colour, w))
        x += w
    return rows


def _legend(items: list[tuple[str, str]], width: int, y0: float, line: bool = False) -> list[str]:
    out = ['<g class="legend">']
    for r, row in enumerate(_legend_rows(items, width)):
        total = sum(w for _, _, w in row)
        x = (width - total) / 2
        y = y0 + r * 16
        for label, colour, w in row:
            if colour == "":
                swatch = (
                    f'<rect x="{_n(x)}" y="{_n(y - 9)}" width="12" height="10" fill="none" '
                    f'stroke="{_SUPPRESSED_COLOUR}" stroke-dasharray="2 2"/>'
                )
            elif line:
                swatch = (
                    f'<line x1="{_n(x)}" y1="{_n(y - 4)}" x2="{_n(x + 12)}" y2="{_n(y - 4)}" '
                    f'stroke="{colour}" stroke-width="2.5"/>'
                )
            else:
                swatch = f'<rect x="{_n(x)}" y="{_n(y - 9)}" width="12" height="10" fill="{colour}"/>'
            out.append(
                f'<g class="legend-item">{swatch}<text x="{_n(x + 17)}" y="{_n(y)}" fill="#222222">'
                f"{_text(_short(label, 40))}</text></g>"
            )
            x += w
    out.append("</g>")
    return out


def _frame(
    values: Sequence[float | None],
    labels: Sequence[str],
    legend: list[tuple[str, str]],
    width: int,
    height: int,
    include_zero: bool = True,
) -> tuple[_Frame, bool]:
    """Choose margins and the y scale; returns the frame and whether x labels are rotated."""
    present = [v for v in values if v is not None]
    lo = min([*present, 0.0] if include_zero else present or [0.0])
    hi = max([*present, 0.0] if include_zero else present or [1.0])
    if lo == hi == 0.0:
        hi = 1.0  # an axis for all-zero or all-suppressed data
    ticks = nice_ticks(lo, hi)
    tick_w = max(len(_fmt(t)) for t in ticks) * _CHAR_W
    slot = (width - tick_w - 40) / max(1, len(labels))
    longest = max((len(_short(lb)) for lb in labels), default=0)
    rotate = longest * _CHAR_W > slot
    label_h = (longest * _CHAR_W * 0.72 + 10) if rotate else 18
    bottom = height - 12 - _legend_height(legend, width) - label_h
    top = 44.0
    if bottom - top < 40:
        bottom = top + 40  # tiny canvases still get a plot area; overflow is clipped by the viewer
    frame = _Frame(width, height, left=tick_w + 22, top=top, right=width - 16, bottom=bottom, ticks=ticks)
    return frame, rotate


def _axes(f: _Frame, unit: str) -> list[str]:
    out = ['<g class="axis y-axis">']
    for t in f.ticks:
        y = f.y(t)
        out.append(
            f'<line x1="{_n(f.left)}" y1="{_n(y)}" x2="{_n(f.right)}" y2="{_n(y)}" '
            f'stroke="{"#888888" if t == 0 else "#e2e2e2"}" stroke-width="1"/>'
        )
        out.append(
            f'<text class="tick" x="{_n(f.left - 6)}" y="{_n(y + 4)}" text-anchor="end" '
            f'fill="#333333">{_text(_fmt(t))}</text>'
        )
    out.append(
        f'<text class="unit" x="{_n(f.left)}" y="{_n(f.top - 10)}" text-anchor="start" '
        f'fill="#333333">{_text(unit)}</text>'
    )
    out.append(
        f'<line x1="{_n(f.left)}" y1="{_n(f.top)}" x2="{_n(f.left)}" y2="{_n(f.bottom)}" stroke="#888888"/>'
    )
    out.append("</g>")
    return out


def _x_label(x: float, f: _Frame, label: str, rotate: bool) -> str:
    y = f.bottom + 14
    if rotate:
        return (
            f'<text class="x-label" x="{_n(x)}" y="{_n(y)}" text-anchor="end" fill="#333333" '
            f'transform="rotate(-45 {_n(x)} {_n(y)})">'
            f"{_text(_short(label))}<title>{_text(label)}</title></text>"
        )
    return (
        f'<text class="x-label" x="{_n(x)}" y="{_n(y)}" text-anchor="middle" fill="#333333">'
        f"{_text(_short(label))}<title>{_text(label)}</title></text>"
    )


def _suppressed_mark(x: float, f: _Frame, tooltip: str, width: float) -> str:
    """A labelled gap: vertical 'suppressed' text standing on the zero line."""
    base = f.y(0.0) if f.ticks[0] <= 0 <= f.ticks[-1] else f.bottom
    font = max(7.0, min(10.0, width * 0.9))
    return (
        f'<g class="suppressed" data-suppressed="true"><title>{_text(tooltip)}</title>'
        f'<text x="{_n(x + font / 3)}" y="{_n(base - 4)}" font-size="{_n(font)}" font-style="italic" '
        f'fill="{_SUPPRESSED_COLOUR}" transform="rotate(-90 {_n(x + font / 3)} {_n(base - 4)})">'
        f"suppressed</text></g>"
    )


def _bar(x: float, w: float, v: float, f: _Frame, colour: str, tooltip: str, cls: str = "bar") -> str:
    y0 = f.y(0.0) if f.ticks[0] <= 0 <= f.ticks[-1] else f.bottom
    y1 = f.y(v)
    top, h = min(y0, y1), abs(y1 - y0)
    return (
        f'<rect class="{cls}" x="{_n(x)}" y="{_n(top)}" width="{_n(max(w, 0.5))}" height="{_n(h)}" '
        f'fill="{colour}" data-value="{_attr(repr(float(v)))}"><title>{_text(tooltip)}</title></rect>'
    )


def _describe(
    kind: str,
    title: str,
    unit: str,
    names: Sequence[str],
    values: Sequence[float | None],
    labels: Sequence[str],
) -> str:
    """Screen-reader summary: what is plotted, the range, and how many values are suppressed."""
    present = [v for v in values if v is not None]
    hidden = len(values) - len(present)
    parts = [f"{kind} of {title}, {len(labels)} categories"]
    if len(names) > 1:
        parts.append(f"series: {', '.join(names)}")
    if present:
        parts.append(f"values from {_fmt(min(present))} to {_fmt(max(present))} {unit}".rstrip())
    if hidden:
        parts.append(f"{hidden} value{'s' if hidden != 1 else ''} suppressed for small counts")
    return "; ".join(parts) + "."


def _bars_svg(
    kind: str,
    categories: Sequence[str],
    groups: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    unit: str,
    width: int,
    height: int,
    chart_id: str | None,
    gap: float = 0.2,
    legend_names: Sequence[str] | None = None,
) -> str:
    names = list(groups)
    flat = [v for name in names for v in groups[name]]
    _check_values(flat)
    for name in names:
        if len(groups[name]) != len(categories):
            raise ValueError(f"series {name!r}: {len(groups[name])} values for {len(categories)} categories")
    if not categories or not names:
        return _no_data(kind, title, width, height, chart_id)
    any_hidden = any(v is None for v in flat)
    legend = _legend_items(legend_names if legend_names is not None else names, any_hidden)
    f, rotate = _frame(flat, categories, legend, width, height)
    desc = _describe(kind.replace("-", " ").capitalize(), title, unit, names, flat, categories)
    parts = _open_svg(kind, title, desc, width, height, chart_id)
    parts += _axes(f, unit)
    slot = (f.right - f.left) / len(categories)
    bar_w = slot * (1 - gap) / len(names)
    parts.append('<g class="plot">')
    for i, cat in enumerate(categories):
        x0 = f.left + i * slot + slot * gap / 2
        for j, name in enumerate(names):
            v = groups[name][i]
            x = x0 + j * bar_w
            who = cat if len(names) == 1 else f"{name}, {cat}"
            if v is None:
                parts.append(_suppressed_mark(x + bar_w / 2 - 4, f, f"{who}: suppressed", bar_w))
            else:
                colour = PALETTE[j % len(PALETTE)]
                parts.append(_bar(x, bar_w, v, f, colour, f"{who}: {_fmt(v)} {unit}".rstrip()))
        parts.append(_x_label(f.left + (i + 0.5) * slot, f, cat, rotate))
    parts.append("</g>")
    parts += _legend(legend, width, height - _legend_height(legend, width) + 10)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    series: Sequence[tuple[str, float | None]],
    *,
    title: str,
    unit: str,
    width: int = 640,
    height: int = 320,
    series_label: str | None = None,
    chart_id: str | None = None,
) -> str:
    """One bar per (label, value); ``None`` is a labelled gap; empty input shows "No data"."""
    categories = [str(label) for label, _ in series]
    name = series_label or unit or title
    return _bars_svg(
        "bar-chart",
        categories,
        {name: [v for _, v in series]},
        title=title,
        unit=unit,
        width=width,
        height=height,
        chart_id=chart_id,
    )


def grouped_bar_chart(
    categories: Sequence[str],
    groups: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    unit: str,
    width: int = 640,
    height: int = 320,
    chart_id: str | None = None,
) -> str:
    """Clustered bars: one cluster per category, one coloured bar per group (legend = group names)."""
    return _bars_svg(
        "grouped-bar-chart",
        [str(c) for c in categories],
        groups,
        title=title,
        unit=unit,
        width=width,
        height=height,
        chart_id=chart_id,
    )


def line_chart(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    unit: str,
    width: int = 640,
    height: int = 320,
    include_zero: bool = True,
    chart_id: str | None = None,
) -> str:
    """One polyline per series; a ``None`` breaks the line and is marked "suppressed" at its x."""
    kind = "line-chart"
    labels = [str(x) for x in x_labels]
    names = list(series)
    flat = [v for name in names for v in series[name]]
    _check_values(flat)
    for name in names:
        if len(series[name]) != len(labels):
            raise ValueError(f"series {name!r} has {len(series[name])} values for {len(labels)} x labels")
    if not labels or not names:
        return _no_data(kind, title, width, height, chart_id)
    any_hidden = any(v is None for v in flat)
    legend = _legend_items(names, any_hidden)
    f, rotate = _frame(flat, labels, legend, width, height, include_zero=include_zero)
    parts = _open_svg(
        kind, title, _describe("Line chart", title, unit, names, flat, labels), width, height, chart_id
    )
    parts += _axes(f, unit)
    slot = (f.right - f.left) / len(labels)

    def x_at(i: int) -> float:
        return f.left + (i + 0.5) * slot

    parts.append('<g class="plot">')
    for j, name in enumerate(names):
        colour = PALETTE[j % len(PALETTE)]
        values = series[name]
        # Break the path at every None so a suppressed month is a visible gap, not an interpolation.
        d: list[str] = []
        pen_down = False
        for i, v in enumerate(values):
            if v is None:
                pen_down = False
                continue
            d.append(f"{'L' if pen_down else 'M'}{_n(x_at(i))} {_n(f.y(v))}")
            pen_down = True
        parts.append(f'<g class="series" data-series="{_attr(name)}">')
        if d:
            parts.append(
                f'<path d="{" ".join(d)}" fill="none" stroke="{colour}" stroke-width="2.5" '
                f'stroke-linejoin="round"/>'
            )
        for i, v in enumerate(values):
            who = labels[i] if len(names) == 1 else f"{name}, {labels[i]}"
            if v is None:
                # Stagger markers of different series so they do not overprint each other.
                parts.append(
                    _suppressed_mark(x_at(i) - 4 + 9 * j - 4.5 * (len(names) - 1), f, f"{who}: suppressed", 9)
                )
            else:
                parts.append(
                    f'<circle class="point" cx="{_n(x_at(i))}" cy="{_n(f.y(v))}" r="3.5" fill="{colour}" '
                    f'data-value="{_attr(repr(float(v)))}"><title>{_text(who)}: {_text(_fmt(v))} '
                    f"{_text(unit)}</title></circle>"
                )
        parts.append("</g>")
    for i, label in enumerate(labels):
        parts.append(_x_label(x_at(i), f, label, rotate))
    parts.append("</g>")
    parts += _legend(legend, width, height - _legend_height(legend, width) + 10, line=True)
    parts.append("</svg>")
    return "\n".join(parts)


def _bin_edges(values: Sequence[float], bins: int | Sequence[float]) -> list[float]:
    if isinstance(bins, int):
        if bins < 1:
            raise ValueError("bins must be >= 1")
        lo, hi = min(values), max(values)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        # Round bin width to a 1-2-2.5-5 step so labels read "0–25", not "0.19–22.29"; the bin count
        # may then differ from ``bins`` by one or two.
        step = _nice_step((hi - lo) / bins)
        magnitude = math.floor(math.log10(step))
        decimals = max(0, -magnitude) + 1
        start = math.floor(lo / step + 1e-9)
        stop = max(start + 1, math.ceil(hi / step - 1e-9))
        return [round(k * step, decimals) for k in range(start, stop + 1)]
    edges = [float(e) for e in bins]
    if len(edges) < 2 or any(b <= a for a, b in pairwise(edges)):
        raise ValueError("bin edges must be at least two strictly increasing numbers")
    return edges


def histogram(
    values: Sequence[float],
    bins: int | Sequence[float] = 10,
    *,
    title: str,
    unit: str,
    width: int = 640,
    height: int = 320,
    count_unit: str = "requests",
    suppress_small_counts: bool = True,
    chart_id: str | None = None,
) -> str:
    """Histogram of ``values`` (about ``bins`` equal round-width bins, or explicit edges; last bin closed).

    Bin counts are counts of requests, so by default they go through ``suppress_counts`` before drawing.
    """
    clean = [float(v) for v in values]
    _check_values(clean)
    if not clean:
        return _no_data("histogram", title, width, height, chart_id)
    edges = _bin_edges(clean, bins)
    counts = [0] * (len(edges) - 1)
    for v in clean:
        if v < edges[0] or v > edges[-1]:
            continue  # outside explicit edges: not drawn, as numpy.histogram does
        k = next((i for i in range(len(counts)) if v < edges[i + 1]), len(counts) - 1)
        counts[k] += 1
    shown: list[float | None]
    if suppress_small_counts:
        hidden = suppress_counts(dict(enumerate(counts)))
        shown = [None if hidden[i] is None else float(c) for i, c in enumerate(counts)]
    else:
        shown = [float(c) for c in counts]
    labels = [f"{_fmt(round(a, 4))}–{_fmt(round(b, 4))} {unit}".rstrip() for a, b in pairwise(edges)]
    return _bars_svg(
        "histogram",
        labels,
        {"count": shown},
        title=title,
        unit=count_unit,
        width=width,
        height=height,
        chart_id=chart_id,
        gap=0.04,
        legend_names=[f"{count_unit} per bin of {unit}".strip()],
    )
