"""SVG charts: well-formed, accessible, escaped, deterministic; None drawn as a labelled gap."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wiserpa.reporting.charts import (
    PALETTE,
    bar_chart,
    grouped_bar_chart,
    histogram,
    line_chart,
    nice_ticks,
)

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img"
    title = root.find(f"{NS}title")
    desc = root.find(f"{NS}desc")
    assert title is not None and desc is not None
    # aria-labelledby points at the title and desc ids.
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    # Self-contained: no scripts, no foreign content, no links to fetch anything.
    for el in root.iter():
        assert el.tag.rsplit("}", 1)[-1] not in {"script", "image", "foreignObject", "use", "style"}
        assert not any(k.endswith("href") for k in el.attrib)
    return root


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if cls in (e.get("class") or "").split()]


def suppressed_marks(root: ET.Element) -> list[ET.Element]:
    return by_class(root, "g", "suppressed")


SERIES = [("TX", 72.5), ("NJ", None), ("OK", 12.0), ("OH", 0.0), ("WA", 40.0)]


def test_bar_chart_counts_and_values() -> None:
    root = parse(bar_chart(SERIES, title="On-time %", unit="%"))
    bars = by_class(root, "rect", "bar")
    assert [float(b.get("data-value", "nan")) for b in bars] == [72.5, 12.0, 0.0, 40.0]
    assert len(suppressed_marks(root)) == 1
    texts = "".join(root.itertext())
    assert "suppressed" in texts
    legend = by_class(root, "g", "legend")
    assert legend and "suppressed" in "".join(legend[0].itertext())
    desc = root.find(f"{NS}desc")
    assert desc is not None and "1 value suppressed" in (desc.text or "")


def test_bar_heights_are_proportional() -> None:
    root = parse(bar_chart([("a", 10.0), ("b", 20.0)], title="t", unit="u"))
    h = [float(b.get("height", "0")) for b in by_class(root, "rect", "bar")]
    assert h[1] == pytest.approx(2 * h[0], rel=0.01)


def test_ticks_are_nice_numbers() -> None:
    assert nice_ticks(0, 87.5) == [0, 25, 50, 75, 100]
    assert nice_ticks(0, 0.7) == [0, 0.2, 0.4, 0.6, 0.8]
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(-3, 1234) == [-500, 0, 500, 1000, 1500]
    assert nice_ticks(5, 5)[0] < 5 < nice_ticks(5, 5)[-1]
    root = parse(bar_chart([("a", 1234.0)], title="t", unit="u"))
    ticks = [t.text for t in by_class(root, "text", "tick")]
    assert ticks == ["0", "500", "1,000", "1,500"]


@given(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False))
@example(0.0, 5e-324)  # found by hypothesis: a subnormal span made log10 of the step fail
@example(1.0, 1.0000000000000002)  # one ulp apart
def test_nice_ticks_cover_the_range(a: float, b: float) -> None:
    ticks = nice_ticks(a, b)
    step = ticks[1] - ticks[0]
    # Values within a millionth of a step of a tick count as on it (float fuzz).
    assert ticks[0] <= min(a, b) + 1e-6 * step and ticks[-1] >= max(a, b) - 1e-6 * step
    assert 2 <= len(ticks) <= 12
    steps = {round(y - x, 9) for x, y in itertools.pairwise(ticks)}
    assert len(steps) == 1


def test_escaping() -> None:
    nasty = "R&D <script>alert(\"x\")</script> 'q' \x00\x1f"
    svg = bar_chart([(nasty, 3.0)], title=nasty, unit="<u>&", series_label=nasty)
    root = parse(svg)
    title = root.find(f"{NS}title")
    assert title is not None and title.text == "R&D <script>alert(\"x\")</script> 'q' "
    assert "<script>" not in svg


@given(st.text(max_size=40), st.text(max_size=40), st.lists(st.text(max_size=30), min_size=1, max_size=6))
def test_any_text_gives_well_formed_svg(title: str, unit: str, labels: list[str]) -> None:
    parse(bar_chart([(lb, float(i)) for i, lb in enumerate(labels)], title=title, unit=unit))
    parse(line_chart(labels, {title or "s": [1.0] * len(labels)}, title=title, unit=unit))


def test_empty_input_says_no_data() -> None:
    for svg in (
        bar_chart([], title="Empty", unit="x"),
        grouped_bar_chart([], {}, title="Empty", unit="x"),
        line_chart([], {}, title="Empty", unit="x"),
        histogram([], 5, title="Empty", unit="x"),
    ):
        root = parse(svg)
        assert by_class(root, "text", "no-data")
        assert "No data" in "".join(root.itertext())


def test_all_suppressed_bar_chart_still_renders() -> None:
    root = parse(bar_chart([("a", None), ("b", None)], title="t", unit="u"))
    assert not by_class(root, "rect", "bar")
    assert len(suppressed_marks(root)) == 2


def test_grouped_bar_chart() -> None:
    svg = grouped_bar_chart(
        ["Jan", "Feb", "Mar"],
        {"TX": [10.0, 20.0, None], "OH": [30.0, None, 25.0], "WA": [5.0, 6.0, 7.0]},
        title="Requests",
        unit="requests",
    )
    root = parse(svg)
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 7
    assert len(suppressed_marks(root)) == 2
    # Colours follow the palette, one per group, in mapping order.
    assert [b.get("fill") for b in bars[:3]] == [PALETTE[0], PALETTE[1], PALETTE[2]]
    legend_text = "".join(by_class(root, "g", "legend")[0].itertext())
    for name in ("TX", "OH", "WA", "suppressed"):
        assert name in legend_text


def test_grouped_length_mismatch() -> None:
    with pytest.raises(ValueError):
        grouped_bar_chart(["a", "b"], {"x": [1.0]}, title="t", unit="u")


def test_line_chart_gaps() -> None:
    svg = line_chart(
        ["m1", "m2", "m3", "m4", "m5"],
        {"TX": [1.0, 2.0, None, 4.0, 5.0], "OH": [3.0, 3.0, 3.0, 3.0, 3.0]},
        title="Median hours",
        unit="hours",
    )
    root = parse(svg)
    points = by_class(root, "circle", "point")
    assert len(points) == 9
    assert len(suppressed_marks(root)) == 1
    paths = [p.get("d", "") for p in root.iter(f"{NS}path")]
    # The TX line is broken in two ("M" starts a new segment); OH is one segment.
    assert sorted(p.count("M") for p in paths) == [1, 2]


def test_histogram_counts_and_suppression() -> None:
    values = [float(v) for v in range(100)] + [150.0] * 3
    root = parse(histogram(values, [0, 50, 100, 200], title="Hours", unit="hours", count_unit="requests"))
    bars = by_class(root, "rect", "bar")
    # 0–50: 50; 50–100: 50; 100–200: 3 -> suppressed, and a partner bin too (else 103 − 100 = 3).
    assert [b.get("data-value") for b in bars] == ["50.0"]
    assert len(suppressed_marks(root)) == 2
    edges = [0, 50, 100, 200]
    raw = parse(histogram(values, edges, title="Hours", unit="hours", suppress_small_counts=False))
    assert [b.get("data-value") for b in by_class(raw, "rect", "bar")] == ["50.0", "50.0", "3.0"]


def test_histogram_round_bins() -> None:
    root = parse(histogram([0.2, 10.0, 99.0] * 20, 4, title="h", unit="hours", suppress_small_counts=False))
    labels = [(e.text or "") for e in by_class(root, "text", "x-label")]
    assert labels[0].startswith("0–25")
    assert sum(float(b.get("data-value", "0")) for b in by_class(root, "rect", "bar")) == 60


def test_deterministic_and_distinct_ids() -> None:
    a = bar_chart(SERIES, title="A", unit="%")
    assert a == bar_chart(list(SERIES), title="A", unit="%")
    b = bar_chart(SERIES, title="B", unit="%")
    assert parse(a).get("aria-labelledby") != parse(b).get("aria-labelledby")


def test_non_finite_rejected() -> None:
    with pytest.raises(ValueError):
        bar_chart([("a", float("nan"))], title="t", unit="u")
