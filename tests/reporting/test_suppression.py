"""CMS cell-size suppression: published values never show 1..10 and hidden small cells cannot be derived."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from wiserpa.reporting.suppression import (
    TOTAL,
    SuppressedTable,
    suppress_counts,
    suppress_counts_total,
    suppress_rate,
    suppress_statistic,
    suppress_table,
)

Cells = dict[tuple[int, int], int]


# --------------------------------------------------------------------------------------------------
# Independent checker: written from the definition, sharing no code with the implementation.
# --------------------------------------------------------------------------------------------------


def published_entries(t: SuppressedTable[Any, Any]) -> list[int]:
    """Every number a reader can see: cells and totals."""
    out = [t.value(r, c) for r in t.rows for c in t.cols]
    out += [t.row_total(r) for r in t.rows] + [t.col_total(c) for c in t.cols] + [t.grand_total()]
    return [v for v in out if v is not None]


def feasible_ranges(cells: Cells, t: SuppressedTable[Any, Any]) -> dict[tuple[int, int], tuple[float, float]]:
    """Intruder's [min, max] for every hidden cell, by LP over all published facts.

    Hidden cells with a true value of 1..10 are bounded to [1, 10] (the intruder is even told which hidden
    cells are primary), other hidden cells to [0, inf).
    """
    rows, cols = t.rows, t.cols
    hidden = [(r, c) for r in rows for c in cols if t.value(r, c) is None]
    idx = {k: i for i, k in enumerate(hidden)}
    a_eq: list[list[float]] = []
    b_eq: list[float] = []

    def add(scope: list[tuple[int, int]], total: int | None) -> None:
        if total is None:
            return
        row = [0.0] * len(hidden)
        known = 0
        for k in scope:
            if k in idx:
                row[idx[k]] = 1.0
            else:
                v = t.value(*k)
                assert v is not None
                known += v
        a_eq.append(row)
        b_eq.append(total - known)

    for r in rows:
        add([(r, c) for c in cols], t.row_total(r))
    for c in cols:
        add([(r, c) for r in rows], t.col_total(c))
    add([(r, c) for r in rows for c in cols], t.grand_total())
    bounds = [(1, 10) if 1 <= cells.get(k, 0) <= 10 else (0, None) for k in hidden]
    out: dict[tuple[int, int], tuple[float, float]] = {}
    for k in hidden:
        obj = np.zeros(len(hidden))
        obj[idx[k]] = 1.0
        kw: dict[str, Any] = {"bounds": bounds, "method": "highs"}
        if a_eq:
            kw.update(A_eq=np.array(a_eq), b_eq=np.array(b_eq))
        lo = linprog(obj, **kw)
        hi = linprog(-obj, **kw)
        assert lo.status == 0, "true table must be feasible"
        out[k] = (lo.fun, float("inf") if hi.status == 3 else -hi.fun)
    return out


def assert_safe(cells: Cells, t: SuppressedTable[Any, Any]) -> None:
    """(a) nothing published in 1..10; (b) no hidden primary cell pinned; (c) no hidden line sum in 1..10."""
    # (a)
    for v in published_entries(t):
        assert not 1 <= v <= 10, v
    # (b): exact interval reasoning for single-hidden lines is a special case of the LP.
    for k, (lo, hi) in feasible_ranges(cells, t).items():
        true = cells.get(k, 0)
        assert lo - 1e-6 <= true <= hi + 1e-6
        if 1 <= true <= 10:
            assert hi - lo > 1e-6, f"hidden cell {k}={true} pinned to [{lo}, {hi}]"
    # (c): hidden part of any line with a published total never adds up to 1..10.
    for r in t.rows:
        tot = t.row_total(r)
        if tot is not None:
            hidden_sum = tot - sum(pv for c in t.cols if (pv := t.value(r, c)) is not None)
            assert not 1 <= hidden_sum <= 10
    for c in t.cols:
        tot = t.col_total(c)
        if tot is not None:
            hidden_sum = tot - sum(pv for r in t.rows if (pv := t.value(r, c)) is not None)
            assert not 1 <= hidden_sum <= 10
    g = t.grand_total()
    if g is not None:
        for line in ([t.row_total(r) for r in t.rows], [t.col_total(c) for c in t.cols]):
            if line:
                assert not 1 <= g - sum(v for v in line if v is not None) <= 10


def assert_consistent(cells: Cells, t: SuppressedTable[Any, Any]) -> None:
    """Published values equal the true ones."""
    for r in t.rows:
        for c in t.cols:
            v = t.value(r, c)
            assert v is None or v == cells.get((r, c), 0)
            assert (v is None) == ((r, c) in t.suppressed)
        rt = t.row_total(r)
        assert rt is None or rt == sum(cells.get((r, c), 0) for c in t.cols)
    g = t.grand_total()
    assert g is None or g == sum(cells.values())


# --------------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------------

count = st.one_of(st.integers(0, 12), st.integers(0, 60), st.just(0))


@st.composite
def tables(draw: st.DrawFn, max_side: int = 8) -> Cells:
    n_rows = draw(st.integers(1, max_side))
    n_cols = draw(st.integers(1, max_side))
    return {(r, c): draw(count) for r in range(n_rows) for c in range(n_cols)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_random_tables_are_safe(cells: Cells) -> None:
    t = suppress_table(cells)
    assert_consistent(cells, t)
    assert_safe(cells, t)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_side=5), st.booleans(), st.booleans(), st.booleans())
def test_random_tables_safe_with_some_totals_unpublished(cells: Cells, pr: bool, pc: bool, pg: bool) -> None:
    t = suppress_table(cells, publish_row_totals=pr, publish_col_totals=pc, publish_grand_total=pg)
    assert_consistent(cells, t)
    assert_safe(cells, t)
    if not pr:
        assert all(t.row_total(r) is None for r in t.rows)


@settings(max_examples=25, deadline=None)
@given(tables())
def test_deterministic(cells: Cells) -> None:
    assert suppress_table(cells).as_rows() == suppress_table(dict(cells)).as_rows()


@settings(max_examples=80, deadline=None)
@given(st.lists(count, min_size=0, max_size=12))
def test_series_never_reveals_small_counts(values: list[int]) -> None:
    series = dict(enumerate(values))
    out = suppress_counts(series)
    total = suppress_counts_total(series)
    shown = [v for v in out.values() if v is not None]
    assert all(not 1 <= v <= 10 for v in shown)
    hidden = [k for k, v in out.items() if v is None]
    assert len(hidden) != 1 or total is None
    if total is not None and hidden:
        assert not 1 <= total - sum(shown) <= 10


# --------------------------------------------------------------------------------------------------
# Hand-made classics
# --------------------------------------------------------------------------------------------------


def grid(rows: list[list[int]]) -> Cells:
    return {(i, j): v for i, row in enumerate(rows) for j, v in enumerate(row)}


def test_single_small_cell_gets_a_partner_in_row_and_column() -> None:
    cells = grid([[3, 50, 40], [60, 70, 80], [90, 25, 30]])
    t = suppress_table(cells)
    assert t.value(0, 0) is None
    # Row 0 partner is the smallest non-zero (40), column 0 partner the smallest (60); then the rectangle
    # closes so that every line has two hidden cells.
    hidden = {k for k in t.suppressed if TOTAL not in k}
    assert (0, 0) in hidden and len(hidden) >= 4
    for r in range(3):
        assert sum(1 for c in range(3) if (r, c) in hidden) in (0, 2, 3)
    assert t.grand_total() == sum(cells.values())
    assert_safe(cells, t)


def test_zero_is_never_the_partner_when_nonzero_exists() -> None:
    # 0 + 5 = 5 would publish the 5 once the reader guesses the zero; the partner must be the 30.
    cells = grid([[5, 0, 30], [40, 50, 60]])
    t = suppress_table(cells)
    assert t.value(0, 1) == 0
    assert t.value(0, 2) is None
    assert_safe(cells, t)


def test_two_small_cells_that_sum_to_small_value_need_a_third() -> None:
    # Row 0 hides 1 and 2: total − published = 3 would be a derivable small count.
    cells = grid([[1, 2, 30, 40], [20, 30, 40, 50], [25, 35, 45, 55]])
    t = suppress_table(cells)
    row0_hidden = [c for c in range(4) if t.value(0, c) is None]
    assert len(row0_hidden) >= 3
    assert_safe(cells, t)


def test_small_total_is_suppressed_and_its_line_protected() -> None:
    cells = grid([[4, 3], [40, 50]])
    t = suppress_table(cells)
    assert t.row_total(0) is None
    assert_safe(cells, t)


def test_only_zero_candidates_hides_the_total() -> None:
    cells = grid([[7, 0, 0], [30, 40, 50]])
    t = suppress_table(cells)
    assert t.value(0, 0) is None
    assert t.row_total(0) is None  # it is 7 anyway
    assert t.value(0, 1) == 0 and t.value(0, 2) == 0
    assert_safe(cells, t)


def test_single_column_line_hides_total() -> None:
    # A line whose only cell is small: the row total equals it, so the total must go too.
    cells = grid([[5], [40], [50]])
    t = suppress_table(cells)
    assert t.value(0, 0) is None and t.row_total(0) is None
    assert_safe(cells, t)


def test_corner_pattern_pinned_by_bounds_is_protected() -> None:
    # Hiding only the four cells would let an intruder who knows 1 and 10 are primary solve
    # a = 1 (d = 9 + a <= 10). The audit must hide more.
    cells = grid([[1, 20], [20, 10]])
    t = suppress_table(cells)
    assert_safe(cells, t)
    assert len(t.suppressed) > 4


def test_no_small_values_publishes_everything() -> None:
    cells = grid([[0, 11, 25], [40, 0, 60]])
    t = suppress_table(cells)
    assert t.suppressed == frozenset()
    assert t.as_rows() == [
        ("", 0, 1, 2, TOTAL),
        (0, 0, 11, 25, 36),
        (1, 40, 0, 60, 100),
        (TOTAL, 40, 11, 85, 136),
    ]


def test_missing_cells_are_zero_and_row_order_is_kept() -> None:
    t = suppress_table({("OH", "2026-01"): 30, ("TX", "2026-02"): 40}, rows=["TX", "OH", "WA"])
    assert t.rows == ("TX", "OH", "WA")
    assert t.value("WA", "2026-01") == 0
    assert t.row_total("WA") == 0


def test_as_rows_marker_and_unpublished_totals() -> None:
    cells = grid([[5, 30], [40, 50]])
    t = suppress_table(cells, publish_row_totals=False)
    rows = t.as_rows("*")
    assert rows[0] == ("", 0, 1)
    assert rows[1][1] == "*"
    assert all(len(r) == 3 for r in rows)


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        suppress_table({(0, 0): -1})
    with pytest.raises(ValueError):
        suppress_table({(0, 0): 2.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        suppress_table({(0, 0): 1}, threshold_low=5, threshold_high=5)
    with pytest.raises(ValueError):
        suppress_table({(0, 0): 1}, rows=[1])


def test_empty_table() -> None:
    t: SuppressedTable[Any, Any] = suppress_table({})
    assert t.rows == () and t.grand_total() == 0


def test_larger_sparse_table_is_safe() -> None:
    # Participant × month shape, as the dashboard will use it.
    cells = {(p, m): (p * 7 + m * 3) % 23 for p, m in itertools.product(range(6), range(12))}
    t = suppress_table(cells)
    assert_safe(cells, t)


# --------------------------------------------------------------------------------------------------
# Statistics derived from counts
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count_", "value", "expected"),
    [(None, 3.0, None), (5, 3.0, None), (10, 3.0, None), (11, 3.0, 3.0), (0, 3.0, None), (50, None, None)],
)
def test_suppress_statistic(count_: int | None, value: float | None, expected: float | None) -> None:
    assert suppress_statistic(count_, value) == expected


def test_suppress_rate() -> None:
    assert suppress_rate(True, 100, 0.5) is None
    assert suppress_rate(False, 7, 0.5) is None
    assert suppress_rate(False, None, 0.5) is None
    assert suppress_rate(False, 100, 0.5) == 0.5
