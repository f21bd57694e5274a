"""CMS cell-size suppression: the one step between aggregation and anything shown or exported.

CMS's cell-size policy forbids publishing any count from 1 to 10 (0 may be shown), and forbids publishing
other figures from which such a count can be worked out. This module applies it to a two-way table of
counts with row totals, column totals and a grand total:

1. **Primary suppression** hides every count (cell or total) in ``threshold_low..threshold_high``.
2. **Complementary suppression** iterates to a fixed point over every line of the table *including the
   totals row and totals column* (each line is "members sum to the line total"):

   * a line with exactly one hidden entry gets a second one: the smallest non-zero published member
     (a zero would not protect anything: ``x + 0 = S`` pins ``x`` once the zero is known), else the
     line's total, else a zero member;
   * a line whose total is published and whose hidden members sum to 1..10 gets one more hidden member,
     because that sum is itself a derivable small count.

3. **Audit**: the heuristic above is the textbook method but it is not a proof, so each hidden small
   entry is then checked by linear programming against an intruder who knows every published figure,
   that hidden counts are non-negative, and even *which* hidden cells are primary (bounds 1..10). If
   some entry's feasible range holds only one integer, one more entry is hidden and the loop restarts.
   This is stricter than CMS requires, which is the side to err on.

Cells missing from the input mapping are counts of zero (SQL ``GROUP BY`` omits empty groups).
The result holds published figures only, so a ``SuppressedTable`` can be passed to templates safely.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

__all__ = [
    "TOTAL",
    "SuppressedTable",
    "Total",
    "suppress_counts",
    "suppress_counts_total",
    "suppress_rate",
    "suppress_statistic",
    "suppress_table",
]

R = TypeVar("R", bound=Hashable)
C = TypeVar("C", bound=Hashable)
K = TypeVar("K", bound=Hashable)

DEFAULT_LOW: Final = 1
DEFAULT_HIGH: Final = 10


class Total:
    """Sentinel key for the totals row/column (``TOTAL``); prints as ``Total``."""

    _instance: Total | None = None

    def __new__(cls) -> Total:
        """Return the single instance so ``is`` and ``==`` both work."""
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        """Readable name in exports and test output."""
        return "Total"

    def __str__(self) -> str:
        """Readable name in exports."""
        return "Total"

    def __reduce__(self) -> str:
        """Pickle as the module-level singleton."""
        return "TOTAL"


TOTAL: Final = Total()

# Entry statuses inside the solver.
_PUBLISHED: Final = 0
_SUPPRESSED: Final = 1
_UNPUBLISHED: Final = 2  # a total the caller chose not to publish: hidden but needs no protection

# Integer feasibility tolerance for the LP audit (HiGHS returns vertices of an integral polytope to ~1e-9).
_EPS: Final = 1e-6


def _is_small(value: int, low: int, high: int) -> bool:
    """True when ``value`` is a count CMS forbids publishing."""
    return low <= value <= high


@dataclass(frozen=True)
class SuppressedTable(Generic[R, C]):
    """A published table: hidden cells and totals read back as ``None``; true values are not kept."""

    rows: tuple[R, ...]
    cols: tuple[C, ...]
    _published: Mapping[tuple[Any, Any], int | None] = field(repr=False)
    suppressed: frozenset[tuple[Any, Any]]
    publish_row_totals: bool = True
    publish_col_totals: bool = True
    publish_grand_total: bool = True

    def value(self, row: R, col: C) -> int | None:
        """Published count of one cell, or ``None`` when suppressed."""
        if row not in self.rows or col not in self.cols:
            raise KeyError((row, col))
        return self._published[(row, col)]

    def row_total(self, row: R) -> int | None:
        """Published total of ``row``; ``None`` when suppressed or not published."""
        if row not in self.rows:
            raise KeyError(row)
        return self._published[(row, TOTAL)]

    def col_total(self, col: C) -> int | None:
        """Published total of ``col``; ``None`` when suppressed or not published."""
        if col not in self.cols:
            raise KeyError(col)
        return self._published[(TOTAL, col)]

    def grand_total(self) -> int | None:
        """Published grand total; ``None`` when suppressed or not published."""
        return self._published[(TOTAL, TOTAL)]

    def is_suppressed(self, row: R | Total, col: C | Total) -> bool:
        """True when the entry was hidden for disclosure reasons (not merely unpublished)."""
        return (row, col) in self.suppressed

    def as_rows(self, suppressed_marker: object = None) -> list[tuple[object, ...]]:
        """Export as a header row plus one tuple per row (and a totals row); hidden values -> marker."""

        def show(key: tuple[Any, Any]) -> object:
            return suppressed_marker if key in self.suppressed else self._published[key]

        header: list[object] = ["", *self.cols]
        if self.publish_row_totals:
            header.append(TOTAL)
        out: list[tuple[object, ...]] = [tuple(header)]
        for r in self.rows:
            line = [r, *(show((r, c)) for c in self.cols)]
            if self.publish_row_totals:
                line.append(show((r, TOTAL)))
            out.append(tuple(line))
        if self.publish_col_totals or self.publish_grand_total:
            line = [TOTAL, *(show((TOTAL, c)) for c in self.cols)]
            if self.publish_row_totals:
                line.append(show((TOTAL, TOTAL)))
            out.append(tuple(line))
        return out


@dataclass
class _Line:
    """One additive constraint of the augmented table: sum(members) == total."""

    members: list[tuple[Any, Any]]
    total: tuple[Any, Any]


class _Solver:
    """Mutable working state of one ``suppress_table`` call."""

    def __init__(
        self,
        rows: Sequence[Any],
        cols: Sequence[Any],
        values: dict[tuple[Any, Any], int],
        status: dict[tuple[Any, Any], int],
        low: int,
        high: int,
    ) -> None:
        self.rows = list(rows)
        self.cols = list(cols)
        self.values = values
        self.status = status
        self.low = low
        self.high = high
        # Position gives a deterministic tie-break that follows the caller's ordering.
        self.position = {k: i for i, k in enumerate(values)}
        all_rows = [*self.rows, TOTAL]
        all_cols = [*self.cols, TOTAL]
        self.lines: list[_Line] = [_Line([(r, c) for c in self.cols], (r, TOTAL)) for r in all_rows]
        self.lines += [_Line([(r, c) for r in self.rows], (TOTAL, c)) for c in all_cols]
        self.lines_of: dict[tuple[Any, Any], list[_Line]] = {k: [] for k in values}
        for line in self.lines:
            for k in [*line.members, line.total]:
                self.lines_of[k].append(line)

    def hidden(self, key: tuple[Any, Any]) -> bool:
        return self.status[key] != _PUBLISHED

    def suppress(self, key: tuple[Any, Any]) -> None:
        self.status[key] = _SUPPRESSED

    def _crossing_has_hidden(self, key: tuple[Any, Any], line: _Line) -> bool:
        """Whether another line through ``key`` already has a hidden entry (so hiding ``key`` helps twice)."""
        for other in self.lines_of[key]:
            if other is line:
                continue
            if any(self.hidden(k) for k in [*other.members, other.total] if k != key):
                return True
        return False

    def _pick(self, line: _Line) -> tuple[Any, Any] | None:
        """Complementary choice for ``line``: smallest non-zero member, else total, else a zero member."""
        published = [k for k in line.members if not self.hidden(k)]
        nonzero = [k for k in published if self.values[k] > 0]
        if nonzero:
            return min(
                nonzero,
                key=lambda k: (self.values[k], not self._crossing_has_hidden(k, line), self.position[k]),
            )
        if not self.hidden(line.total):
            return line.total
        if published:
            return min(published, key=lambda k: self.position[k])
        return None

    def _line_needs_more(self, line: _Line) -> bool:
        entries = [*line.members, line.total]
        hidden = [k for k in entries if self.hidden(k)]
        if len(hidden) == 1 and self.status[hidden[0]] == _SUPPRESSED:
            return True
        if self.status[line.total] == _PUBLISHED:
            hidden_members = [k for k in line.members if self.hidden(k)]
            if any(self.status[k] == _SUPPRESSED for k in hidden_members):
                hidden_sum = sum(self.values[k] for k in hidden_members)
                if _is_small(hidden_sum, self.low, self.high):
                    return True
        return False

    def complementary(self) -> None:
        """Apply the line rules until nothing changes."""
        changed = True
        while changed:
            changed = False
            for line in self.lines:
                if self._line_needs_more(line):
                    pick = self._pick(line)
                    if pick is not None:
                        self.suppress(pick)
                        changed = True

    def _scope(self, key: tuple[Any, Any]) -> list[tuple[Any, Any]]:
        """Base cells whose sum is the entry ``key``."""
        r, c = key
        rows = self.rows if r is TOTAL else [r]
        cols = self.cols if c is TOTAL else [c]
        return [(rr, cc) for rr in rows for cc in cols]

    def find_pinned(self) -> tuple[Any, Any] | None:
        """First hidden small entry whose value an intruder could pin down, else ``None``."""
        from scipy.optimize import linprog  # local: only needed when something is hidden

        hidden_cells = [k for k in self.values if k[0] is not TOTAL and k[1] is not TOTAL and self.hidden(k)]
        sensitive = [
            k
            for k in self.values
            if self.status[k] == _SUPPRESSED and _is_small(self.values[k], self.low, self.high)
        ]
        if not sensitive:
            return None
        index = {k: i for i, k in enumerate(hidden_cells)}
        n = len(hidden_cells)
        a_eq: list[list[float]] = []
        b_eq: list[float] = []
        a_ub: list[list[float]] = []
        b_ub: list[float] = []
        totals = [k for k in self.values if k[0] is TOTAL or k[1] is TOTAL]
        for t in totals:
            scope = self._scope(t)
            row = [0.0] * n
            known = 0
            for k in scope:
                if k in index:
                    row[index[k]] = 1.0
                else:
                    known += self.values[k]
            if self.status[t] == _PUBLISHED:
                a_eq.append(row)
                b_eq.append(float(self.values[t] - known))
            elif self.status[t] == _SUPPRESSED and _is_small(self.values[t], self.low, self.high):
                # The intruder may assume a suppressed total is itself a small count.
                a_ub.append(row)
                b_ub.append(float(self.high - known))
                a_ub.append([-v for v in row])
                b_ub.append(float(known - self.low))
        bounds: list[tuple[float, float | None]] = [
            (float(self.low), float(self.high))
            if _is_small(self.values[k], self.low, self.high)
            else (0.0, None)
            for k in hidden_cells
        ]
        for key in sensitive:
            objective = [0.0] * n
            for k in self._scope(key):
                if k in index:
                    objective[index[k]] = 1.0
            if not any(objective):
                return key  # every cell under this total is published: it is plainly derivable
            lo_res = linprog(
                objective,
                A_ub=a_ub or None,
                b_ub=b_ub or None,
                A_eq=a_eq or None,
                b_eq=b_eq or None,
                bounds=bounds,
                method="highs",
            )
            hi_res = linprog(
                [-v for v in objective],
                A_ub=a_ub or None,
                b_ub=b_ub or None,
                A_eq=a_eq or None,
                b_eq=b_eq or None,
                bounds=bounds,
                method="highs",
            )
            if lo_res.status != 0 and lo_res.status != 3:
                return key  # solver trouble: be conservative and protect further
            if hi_res.status == 3:
                continue  # unbounded above: not pinned
            if hi_res.status != 0:
                return key
            lo = float(lo_res.fun) if lo_res.status == 0 else -math.inf
            hi = -float(hi_res.fun)
            if math.floor(hi + _EPS) <= math.ceil(lo - _EPS):
                return key
        return None

    def protect(self, key: tuple[Any, Any]) -> None:
        """Hide one more entry near a pinned ``key``: its lines first, then anywhere in the table."""
        near = [k for line in self.lines_of[key] for k in [*line.members, line.total]]
        tiers: list[Iterable[tuple[Any, Any]]] = [
            (k for k in near if not self.hidden(k) and self.values[k] > 0),
            (k for k in self.values if not self.hidden(k) and self.values[k] > 0),
            (k for k in self.values if not self.hidden(k)),
        ]
        for tier in tiers:
            candidates = list(dict.fromkeys(tier))
            if candidates:
                # Prefer cells over totals: totals are the most useful figures to keep published.
                pick = min(
                    candidates,
                    key=lambda k: (k[0] is TOTAL or k[1] is TOTAL, self.values[k], self.position[k]),
                )
                self.suppress(pick)
                return
        raise AssertionError("a pinned entry with nothing left to hide")  # unreachable: all hidden = safe


def suppress_table(
    cells: Mapping[tuple[R, C], int],
    *,
    rows: Sequence[R] | None = None,
    cols: Sequence[C] | None = None,
    threshold_low: int = DEFAULT_LOW,
    threshold_high: int = DEFAULT_HIGH,
    publish_row_totals: bool = True,
    publish_col_totals: bool = True,
    publish_grand_total: bool = True,
) -> SuppressedTable[R, C]:
    """Apply primary and complementary CMS cell-size suppression to a two-way table of counts."""
    if threshold_low < 1 or threshold_high <= threshold_low:
        # A one-value band would itself reveal every primary cell (the rule is public).
        raise ValueError("thresholds must satisfy 1 <= threshold_low < threshold_high")
    row_keys: list[R] = list(dict.fromkeys(rows if rows is not None else (k[0] for k in cells)))
    col_keys: list[C] = list(dict.fromkeys(cols if cols is not None else (k[1] for k in cells)))
    for (r, c), v in cells.items():
        if r not in row_keys or c not in col_keys:
            raise ValueError(f"cell {(r, c)!r} is outside the given rows/cols")
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"cell {(r, c)!r} must be a non-negative int, got {v!r}")
    if any(k is TOTAL for k in [*row_keys, *col_keys]):
        raise ValueError("TOTAL is reserved for totals")

    values: dict[tuple[Any, Any], int] = {}
    for r in row_keys:
        for c in col_keys:
            values[(r, c)] = cells.get((r, c), 0)
        values[(r, TOTAL)] = sum(values[(r, c)] for c in col_keys)
    for c in col_keys:
        values[(TOTAL, c)] = sum(values[(r, c)] for r in row_keys)
    values[(TOTAL, TOTAL)] = sum(values[(r, TOTAL)] for r in row_keys)

    status: dict[tuple[Any, Any], int] = {}
    for key, v in values.items():
        r, c = key
        published = (
            (publish_grand_total if c is TOTAL else publish_col_totals)
            if r is TOTAL
            else (publish_row_totals if c is TOTAL else True)
        )
        if not published:
            status[key] = _UNPUBLISHED
        elif _is_small(v, threshold_low, threshold_high):
            status[key] = _SUPPRESSED
        else:
            status[key] = _PUBLISHED

    solver = _Solver(row_keys, col_keys, values, status, threshold_low, threshold_high)
    while True:
        solver.complementary()
        pinned = solver.find_pinned()
        if pinned is None:
            break
        solver.protect(pinned)

    published_values = {k: (v if status[k] == _PUBLISHED else None) for k, v in values.items()}
    return SuppressedTable(
        rows=tuple(row_keys),
        cols=tuple(col_keys),
        _published=published_values,
        suppressed=frozenset(k for k, s in status.items() if s == _SUPPRESSED),
        publish_row_totals=publish_row_totals,
        publish_col_totals=publish_col_totals,
        publish_grand_total=publish_grand_total,
    )


_SERIES_COL: Final = "count"


def _series_table(values: Mapping[K, int], low: int, high: int) -> SuppressedTable[K, str]:
    """A one-way series as a one-column table whose column total is the published total."""
    return suppress_table(
        {(k, _SERIES_COL): v for k, v in values.items()},
        rows=list(values),
        cols=[_SERIES_COL],
        threshold_low=low,
        threshold_high=high,
        # One column: row totals would repeat the cells, and the column total *is* the grand total.
        publish_row_totals=False,
        publish_col_totals=True,
        publish_grand_total=False,
    )


def suppress_counts(
    values: Mapping[K, int],
    *,
    threshold_low: int = DEFAULT_LOW,
    threshold_high: int = DEFAULT_HIGH,
) -> dict[K, int | None]:
    """Suppress a one-way series of counts whose total is published; hidden counts become ``None``."""
    table = _series_table(values, threshold_low, threshold_high)
    return {k: table.value(k, _SERIES_COL) for k in values}


def suppress_counts_total(
    values: Mapping[K, int],
    *,
    threshold_low: int = DEFAULT_LOW,
    threshold_high: int = DEFAULT_HIGH,
) -> int | None:
    """The published total that goes with ``suppress_counts`` (``None`` when it had to be hidden)."""
    return _series_table(values, threshold_low, threshold_high).col_total(_SERIES_COL)


def suppress_statistic(
    count: int | None,
    value: float | None,
    *,
    threshold_low: int = DEFAULT_LOW,
    threshold_high: int = DEFAULT_HIGH,
) -> float | None:
    """Hide a percentage/mean/median computed over ``count`` items when that count is hidden or 1..10."""
    if count is None or value is None:
        return None
    if count == 0:
        return None  # a statistic over nothing is undefined, not zero
    if _is_small(count, threshold_low, threshold_high):
        return None
    return value


def suppress_rate(
    numerator_cell_suppressed: bool,
    denominator: int | None,
    value: float | None,
    *,
    threshold_low: int = DEFAULT_LOW,
    threshold_high: int = DEFAULT_HIGH,
) -> float | None:
    """Hide a rate whose numerator cell is suppressed or whose denominator is hidden, 0 or 1..10."""
    if numerator_cell_suppressed:
        return None  # rate × published denominator would give the hidden numerator back
    return suppress_statistic(denominator, value, threshold_low=threshold_low, threshold_high=threshold_high)
