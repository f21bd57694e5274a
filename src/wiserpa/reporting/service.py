"""The public report: SQL aggregates → facts → CMS cell-size suppression → published figures.

Every count the public sees is a *fact* keyed by (measure, participant, period). Facts are tied together by
known sums — a family's categories add up to its volume (the outcomes of a month's requests add up to the
month's requests), participants add up to "All participants", months to quarters and quarters to years,
and two cross-family identities (approved = standard approved + expedited approved, and the same for
denials). Suppression runs once over all of them, after aggregation and before anything is shown:

1. ``suppress_table`` (the one suppression function) on every natural two-way slice: for each family,
   months × categories per participant and year, and participants × categories per period. A fact hidden
   in any slice is hidden everywhere.
2. A global audit by linear programming over *all* the sums above: for every hidden fact whose true value
   is 1..10, the smallest and largest value an intruder could deduce from everything published (hidden
   counts ≥ 0, and pessimistically the primary ones known to lie in 1..10). If only one integer fits,
   one more neighbouring fact is hidden and the audit repeats.

Rates are computed only from *published* counts (a rate never adds information a reader could not work out
from the table itself); means, medians and p90s are hidden when their population is hidden or has 1..10
members; dollar figures are hidden with the count they are summed over. The result is a ``PublicReport``
that holds published values only, so every page, API response, chart and download is built from it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from wiserpa.reporting import metrics as m
from wiserpa.reporting import rollup as blocks
from wiserpa.reporting.cms0057 import PaCounts, cms0057_metrics
from wiserpa.reporting.compensation import (
    CompensationParams,
    ParticipantPeriod,
    PayBreakdown,
    current_formula,
    reform_formula,
)
from wiserpa.reporting.suppression import suppress_statistic, suppress_table
from wiserpa.runtime import Runtime
from wiserpa.store.base import Base

__all__ = [
    "ALL",
    "FAMILIES",
    "Family",
    "PublicReport",
    "build_facts",
    "clear_report_cache",
    "compensation_params",
    "equations",
    "oversight_report",
    "public_report",
    "publish",
]

ALL = "All participants"
SCHEMA_VERSION = 2  # 2: timeliness.withdrawn; a late withdrawal is a late request (docs/reporting.md)
_LOW, _HIGH = 1, 10


@dataclass(frozen=True)
class Family:
    """A population split into categories that add up to it (no categories: the volume alone)."""

    name: str
    volume: str
    categories: tuple[str, ...]
    label: str
    monthly: bool = False  # published per month (and year), else per year only


FAMILIES: tuple[Family, ...] = (
    Family("channel", "requests", tuple(f"channel.{c}" for c in m.CHANNELS), "Requests by channel"),
    Family(
        "outcome", "requests", tuple(f"outcome.{o}" for o in m.OUTCOMES), "Requests by outcome", monthly=True
    ),
    Family(
        "urgency", "requests", tuple(f"urgency.{u}" for u in m.URGENCIES), "Requests by urgency", monthly=True
    ),
    Family(
        "timeliness",
        "requests",
        tuple(f"timeliness.{t}" for t in m.TIMELINESS),
        "Requests by timeliness",
        monthly=True,
    ),
    Family(
        "standard",
        "urgency.standard",
        ("standard.approved", "standard.denied", "standard.other"),
        "Standard requests by outcome (CMS-0057-F)",
    ),
    Family(
        "expedited",
        "urgency.expedited",
        ("expedited.approved", "expedited.denied", "expedited.other"),
        "Expedited requests by outcome (CMS-0057-F)",
    ),
    Family(
        "appeal",
        "urgency.standard",
        ("standard.approved_after_appeal", "standard.not_approved_after_appeal"),
        "Standard requests approved after appeal",
    ),
    Family(
        "resubmission",
        "resubmissions",
        tuple(f"resubmission.{o}" for o in m.RESUB_OUTCOMES),
        "Resubmissions by outcome",
    ),
    Family("peer_to_peer", "peer_to_peer", (), "Requests with a peer-to-peer discussion"),
    Family(
        "claim_denial",
        "claim_denials",
        tuple(f"claim_denial.{a}" for a in m.APPEAL_STATES),
        "Denied claim lines by appeal status",
    ),
    Family(
        "support",
        "support_cycles",
        tuple(f"support.{s}" for s in m.SUPPORT_STATES),
        "Support response clocks by SLA result",
    ),
    Family("experience", "experience_reports", (), "Provider experience reports"),
)
# Sums that cross families: (plus, minus) meaning sum(plus) == sum(minus) in every (participant, period).
CROSS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        ("outcome.affirmed", "outcome.exempt", "outcome.gold_card", "outcome.deemed"),
        ("standard.approved", "expedited.approved"),
    ),
    (("outcome.non_affirmed",), ("standard.denied", "expedited.denied")),
)
MEASURES: tuple[str, ...] = tuple(dict.fromkeys(x for f in FAMILIES for x in (f.volume, *f.categories)))
# Measures published per month; the others per year only. Fewer published cuts of rare events means fewer
# small cells to protect (and fewer ways to difference them), which is what keeps the audit fast.
MONTHLY: frozenset[str] = frozenset(x for f in FAMILIES if f.monthly for x in (f.volume, *f.categories))

Key = tuple[str, str, str]  # (measure, participant, period)


# ---------------------------------------------------------------------------------------------- periods


def _periods(months: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    quarters = list(dict.fromkeys(m.quarter_of(x) for x in months))
    years = list(dict.fromkeys(x[:4] for x in months))
    return list(months), quarters, years


def grain_of(period: str) -> str:
    """'month', 'quarter' or 'year' of a period label."""
    if "-Q" in period:
        return "quarter"
    return "year" if len(period) == 4 else "month"


# ---------------------------------------------------------------------------------------------- facts


@dataclass
class Facts:
    """True (unsuppressed) counts and the side figures (durations, dollars) they come with."""

    participants: list[str]
    months: list[str]
    quarters: list[str]
    years: list[str]
    counts: dict[Key, int]
    # (name, participant, period[, urgency]) -> float: dur_n.<u>, dur_sum.<u>, penalty_usd, averted_usd ...
    sums: dict[tuple[str, str, str], float]

    @property
    def periods(self) -> list[str]:
        """Months, then years."""
        return [*self.months, *self.years]

    def periods_of(self, measure: str) -> list[str]:
        """The periods a measure is published for."""
        return self.periods if measure in MONTHLY else list(self.years)


def _add(acc: dict[Any, float], key: Any, v: float) -> None:
    acc[key] = acc.get(key, 0.0) + v


def build_facts(data: m.FineData, participants: Iterable[str] | None = None) -> Facts:
    """Turn fine SQL rows into facts for every participant (and All) × month, quarter and year."""
    cell: dict[tuple[str, str, str], float] = {}  # (measure, participant, month)
    sums: dict[tuple[str, str, str], float] = {}
    for (p, _s, _c, month, u), row in data.requests.items():
        n = row["n"]
        _add(cell, ("requests", p, month), n)
        for name in (
            *(f"channel.{c}" for c in m.CHANNELS),
            *(f"outcome.{o}" for o in m.OUTCOMES),
            *(f"timeliness.{t}" for t in m.TIMELINESS),
            "resubmissions",
            *(f"resubmission.{o}" for o in m.RESUB_OUTCOMES),
        ):
            _add(cell, (name, p, month), row[name])
        urgency = u if u in m.URGENCIES else "standard"
        _add(cell, (f"urgency.{urgency}", p, month), n)
        approved = sum(row[f"outcome.{o}"] for o in ("affirmed", "exempt", "gold_card", "deemed"))
        denied = row["outcome.non_affirmed"]
        _add(cell, (f"{urgency}.approved", p, month), approved)
        _add(cell, (f"{urgency}.denied", p, month), denied)
        _add(cell, (f"{urgency}.other", p, month), n - approved - denied)
        if urgency == "standard":
            _add(cell, ("standard.approved_after_appeal", p, month), row["approved_after_appeal"])
            _add(cell, ("standard.not_approved_after_appeal", p, month), n - row["approved_after_appeal"])
        _add(sums, (f"dur_n.{urgency}", p, month), row["dur_n"])
        _add(sums, (f"dur_sum.{urgency}", p, month), row["dur_sum_hours"])
        _add(sums, ("penalty_usd", p, month), row["penalty_usd"])
        _add(sums, ("decided", p, month), row["dur_n"])
    for (p, _s, _c, month), n in data.peer_to_peer.items():
        _add(cell, ("peer_to_peer", p, month), n)
    for (p, _s, _c, month), row in data.claims.items():
        for name in m.CLAIM_FIELDS:
            if name.endswith("_usd"):
                _add(sums, (name, p, month), row[name])
            else:
                _add(cell, (name, p, month), row[name])
    for (p, _s, month), row in data.support.items():
        for name in m.SUPPORT_FIELDS:
            _add(cell, (name, p, month), row[name])
    for (p, _s, _c, month), n in data.experience.items():
        _add(cell, ("experience_reports", p, month), n)

    months = data.months()
    months, _quarters, years = _periods(months)
    names = sorted(set(participants or ()) | {k[1] for k in cell})
    counts: dict[Key, int] = {}
    for measure in MEASURES:
        monthly = measure in MONTHLY
        for p in names:
            for y in years:
                counts[(measure, p, y)] = 0
            for month in months:
                v = round(cell.get((measure, p, month), 0.0))
                if monthly:
                    counts[(measure, p, month)] = v
                counts[(measure, p, month[:4])] += v
        for period in [*months, *years] if monthly else years:
            counts[(measure, ALL, period)] = sum(counts[(measure, p, period)] for p in names)
    side: dict[tuple[str, str, str], float] = {}
    for (name, p, month), amount in sums.items():
        for period in (month, month[:4]):
            _add(side, (name, p, period), amount)
            _add(side, (name, ALL, period), amount)
    return Facts(names, months, [], years, counts, side)


# ---------------------------------------------------------------------------------------------- equations


def equations(facts: Facts) -> list[tuple[tuple[Key, ...], tuple[Key, ...]]]:
    """Every linear relation between published facts a reader knows: sum(plus) == sum(minus)."""
    eqs: list[tuple[tuple[Key, ...], tuple[Key, ...]]] = []
    everyone = [*facts.participants, ALL]
    for fam in FAMILIES:
        if not fam.categories:
            continue
        for p in everyone:
            for period in facts.periods_of(fam.volume) if fam.monthly else facts.years:
                eqs.append((tuple((c, p, period) for c in fam.categories), ((fam.volume, p, period),)))
    for plus, minus in CROSS:
        for p in everyone:
            for period in facts.years:
                eqs.append((tuple((c, p, period) for c in plus), tuple((c, p, period) for c in minus)))
    for measure in MEASURES:
        for period in facts.periods_of(measure):
            eqs.append((tuple((measure, p, period) for p in facts.participants), ((measure, ALL, period),)))
        if measure in MONTHLY:
            for p in everyone:
                for y in facts.years:
                    eqs.append(
                        (tuple((measure, p, x) for x in facts.months if x[:4] == y), ((measure, p, y),))
                    )
    return eqs


# ---------------------------------------------------------------------------------------------- suppression


def _small(v: int) -> bool:
    return _LOW <= v <= _HIGH


def _slices(facts: Facts) -> set[Key]:
    """Step 1: suppress_table on every natural two-way slice; returns the union of hidden facts."""
    hidden: set[Key] = set()
    c = facts.counts

    def run(
        cells: dict[tuple[str, str], int],
        rows: list[str],
        cols: list[str],
        key_cell: Any,
        key_row: Any,
        key_col: Any,
        key_grand: Any,
        with_row_totals: bool,
    ) -> None:
        if not rows or not cols:
            return
        t = suppress_table(
            cells,
            rows=rows,
            cols=cols,
            publish_row_totals=with_row_totals,
            publish_grand_total=with_row_totals,
        )
        for r in rows:
            for col in cols:
                if t.value(r, col) is None:
                    hidden.add(key_cell(r, col))
            if with_row_totals and t.row_total(r) is None:
                hidden.add(key_row(r))
        for col in cols:
            if t.col_total(col) is None:
                hidden.add(key_col(col))
        if with_row_totals and t.grand_total() is None:
            hidden.add(key_grand())

    for fam in FAMILIES:
        cats = list(fam.categories) or [fam.volume]
        has_total = bool(fam.categories)
        # Participants × categories for each period (column totals = All participants).
        for period in facts.periods if fam.monthly else facts.years:
            run(
                {(p, k): c[(k, p, period)] for p in facts.participants for k in cats},
                list(facts.participants),
                cats,
                lambda r, k, period=period: (k, r, period),
                lambda r, period=period, vol=fam.volume: (vol, r, period),
                lambda k, period=period: (k, ALL, period),
                lambda period=period, vol=fam.volume: (vol, ALL, period),
                has_total,
            )
    hidden |= {k for k, v in c.items() if _small(v)}
    return hidden


class _Audit:
    """Step 2: the LP audit over every relation between facts (what one table cannot see)."""

    def __init__(self, facts: Facts, hidden: set[Key]) -> None:
        self.values = facts.counts
        self.hidden = hidden
        self.eqs = equations(facts)
        self.eqs_of: dict[Key, list[int]] = {}
        for i, (plus, minus) in enumerate(self.eqs):
            for k in (*plus, *minus):
                self.eqs_of.setdefault(k, []).append(i)

    def _system(self) -> tuple[Any, Any, dict[Key, int], list[Key]]:
        """Equality system over the hidden facts: A x = b, with published facts moved to the right."""
        import numpy as np
        from scipy.sparse import csr_matrix

        variables = sorted(self.hidden)
        index = {k: i for i, k in enumerate(variables)}
        rows: list[int] = []
        cols: list[int] = []
        data: list[float] = []
        rhs: list[float] = []
        r = 0
        for plus, minus in self.eqs:
            b = 0.0
            touched = False
            for sign, keys in ((1.0, plus), (-1.0, minus)):
                for k in keys:
                    i = index.get(k)
                    if i is None:
                        b -= sign * self.values[k]
                    else:
                        rows.append(r)
                        cols.append(i)
                        data.append(sign)
                        touched = True
            if touched:
                rhs.append(b)
                r += 1
        a = csr_matrix((data, (rows, cols)), shape=(r, len(variables)))
        return a, np.array(rhs), index, variables

    def pinned(self, key: Key, system: tuple[Any, Any, dict[Key, int], list[Key]]) -> bool:
        """Whether everything published (and the known bounds) leaves ``key`` a single integer."""
        import numpy as np
        from scipy.optimize import linprog

        a, b, index, variables = system
        if a.shape[0] == 0:
            return False
        bounds = [(float(_LOW), float(_HIGH)) if _small(self.values[k]) else (0.0, None) for k in variables]
        obj = np.zeros(len(variables))
        obj[index[key]] = 1.0
        lo = linprog(obj, A_eq=a, b_eq=b, bounds=bounds, method="highs")
        hi = linprog(-obj, A_eq=a, b_eq=b, bounds=bounds, method="highs")
        if lo.status != 0 or hi.status not in (0, 3):
            return True  # solver trouble: protect further, the safe side
        if hi.status == 3:
            return False
        return bool(math.floor(-hi.fun + 1e-6) <= math.ceil(lo.fun - 1e-6))

    def protect(self, key: Key) -> bool:
        """Hide the published fact nearest to ``key`` (via shared sums; smallest first); False if none."""
        seen = {key}
        frontier = [key]
        while frontier:
            near = list(
                dict.fromkeys(
                    k
                    for f in frontier
                    for i in self.eqs_of.get(f, [])
                    for k in (*self.eqs[i][0], *self.eqs[i][1])
                    if k not in seen
                )
            )
            candidates = [k for k in near if k not in self.hidden]
            if candidates:
                positive = [k for k in candidates if self.values[k] > 0] or candidates
                # Smallest first; prefer single participants and months over the totals people read most.
                pick = min(
                    positive, key=lambda k: (self.values[k], k[1] == ALL, grain_of(k[2]) != "month", k)
                )
                self.hidden.add(pick)
                return True
            seen.update(near)
            frontier = near
        return False

    def _certified(self, system: tuple[Any, Any, dict[Key, int], list[Key]], keys: list[Key]) -> set[Key]:
        """Facts already shown safe by a few vertices of the feasible set (two integers apart = not pinned).

        The feasible values of one fact form an interval (the set is convex), so two feasible points whose
        values for it are at least two integers apart prove it cannot be pinned; this spares most exact
        checks, which need two LPs each.
        """
        import numpy as np
        from scipy.optimize import linprog

        a, b, index, variables = system
        if a.shape[0] == 0 or not keys:
            return set(keys)
        bounds = [(float(_LOW), float(_HIGH)) if _small(self.values[k]) else (0.0, None) for k in variables]
        cols = [index[k] for k in keys]
        rng = np.random.default_rng(len(variables))
        lo = np.full(len(cols), np.inf)
        hi = np.full(len(cols), -np.inf)
        objectives: list[Any] = [1.0, -1.0, *(rng.uniform(-1.0, 1.0, len(cols)) for _ in range(8))]
        for weights in objectives:
            obj = np.zeros(len(variables))
            obj[np.array(cols)] = weights
            res = linprog(obj, A_eq=a, b_eq=b, bounds=bounds, method="highs")
            if res.status != 0:
                continue
            vals = res.x[cols]
            lo = np.minimum(lo, vals)
            hi = np.maximum(hi, vals)
        return {
            k
            for k, lo_k, hi_k in zip(keys, lo, hi, strict=True)
            if np.isfinite(lo_k) and math.floor(hi_k + 1e-6) > math.ceil(lo_k - 1e-6)
        }

    def run(self) -> set[Key]:
        """One pass over the hidden small facts: protect each until it cannot be pinned.

        Hiding more only removes constraints, so a fact found safe stays safe: one pass is enough.
        """
        system = self._system()
        pending = sorted(k for k in self.hidden if _small(self.values[k]))
        safe = self._certified(system, pending)
        pending = [k for k in pending if k not in safe]
        while pending:
            key = pending[0]
            if not self.pinned(key, system):
                pending.pop(0)
                continue
            if not self.protect(key):
                raise RuntimeError(f"cannot protect {key!r}")  # unreachable: all hidden is safe
            system = self._system()
        return self.hidden


def publish(facts: Facts) -> dict[Key, int | None]:
    """Suppress: the published value of every fact (None = hidden)."""
    hidden = _Audit(facts, _slices(facts)).run()
    return {k: (None if k in hidden else v) for k, v in facts.counts.items()}


# ---------------------------------------------------------------------------------------------- the report


def _pct(n: int | None, d: int | None) -> float | None:
    """A percentage from two *published* counts; None when either is hidden or the base is 0."""
    if n is None or d is None or d == 0:
        return None
    return round(100.0 * n / d, 2)


def _r(v: float | None, digits: int = 2) -> float | None:
    return None if v is None else round(v, digits)


@dataclass
class PublicReport:
    """Published figures only: safe to render, chart and export as they are."""

    as_of: dt.datetime
    profile_id: str
    profile_version: str
    participants: list[str]
    states: dict[str, str]
    months: list[str]
    quarters: list[str]
    years: list[str]
    values: dict[Key, int | None]
    stats: dict[tuple[str, str, str], float | None]
    cms0057: dict[tuple[str, str], list[dict[str, Any]]]
    compensation: dict[tuple[str, str], dict[str, Any]]
    sources: dict[str, bool]
    penalties_enforced: bool
    computed_in_ms: float = 0.0
    cached: bool = False
    # Build phases in ms and the numbers of blocks reused and summed (diagnostics, never published).
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def periods(self, grain: str) -> list[str]:
        """The periods of one grain."""
        return {"month": self.months, "quarter": self.quarters, "year": self.years}[grain]

    def row(self, participant: str, period: str) -> dict[str, Any]:
        """One export row: every count and statistic of one participant (or All) in one period."""
        out: dict[str, Any] = {
            "participant": participant,
            "state": self.states.get(participant, "ALL" if participant == ALL else ""),
            "period": period,
            "grain": grain_of(period),
        }
        for measure in MEASURES:
            out[measure] = self.values.get((measure, participant, period))
        for name in STAT_NAMES:
            out[name] = self.stats.get((name, participant, period))
        return out

    def rows(self, grain: str | None = None) -> list[dict[str, Any]]:
        """Export rows, participants then All, for one grain or all of them."""
        grains = [grain] if grain else ["month", "year"]
        return [
            self.row(p, period)
            for g in grains
            for period in self.periods(g)
            for p in [*self.participants, ALL]
        ]


STAT_NAMES: tuple[str, ...] = (
    "pct_decided_within_timeline",
    "pct_affirmed",
    "pct_non_affirmed",
    "pct_deemed",
    *(f"{k}_{u}" for u in m.URGENCIES for k in ("mean_hours", "median_hours", "p90_hours")),
    "penalty_usd",
    "pct_claim_denials_appealed",
    "pct_claim_denials_overturned",
    "averted_usd",
    "overturned_usd",
    "pct_support_sla_met",
)


def _stats(
    facts: Facts,
    pub: dict[Key, int | None],
    quant: dict[tuple[str, ...], dict[tuple[str, ...], tuple[float | None, ...]]],
) -> dict[Any, float | None]:
    out: dict[tuple[str, str, str], float | None] = {}
    side = facts.sums
    for p in [*facts.participants, ALL]:
        for period in facts.periods:

            def v(measure: str, p: str = p, period: str = period) -> int | None:
                return pub.get((measure, p, period))

            on_time, late = v("timeliness.on_time"), v("timeliness.late")
            out[("pct_decided_within_timeline", p, period)] = _pct(
                on_time, None if on_time is None or late is None else on_time + late
            )
            out[("pct_affirmed", p, period)] = _pct(v("outcome.affirmed"), v("requests"))
            out[("pct_non_affirmed", p, period)] = _pct(v("outcome.non_affirmed"), v("requests"))
            out[("pct_deemed", p, period)] = _pct(v("outcome.deemed"), v("requests"))
            grain = grain_of(period)
            for u in m.URGENCIES:
                n = int(side.get((f"dur_n.{u}", p, period), 0))
                population_hidden = v(f"urgency.{u}") is None
                count = None if population_hidden else n
                mean = side.get((f"dur_sum.{u}", p, period), 0.0) / n if n else None
                qgrain = (grain, "urgency") if p == ALL else ("participant", grain, "urgency")
                qkey = (period, u) if p == ALL else (p, period, u)
                med, p90 = quant.get(qgrain, {}).get(qkey, (None, None))
                out[(f"mean_hours_{u}", p, period)] = _r(suppress_statistic(count, mean))
                out[(f"median_hours_{u}", p, period)] = _r(suppress_statistic(count, med))
                out[(f"p90_hours_{u}", p, period)] = _r(suppress_statistic(count, p90))
            out[("penalty_usd", p, period)] = (
                None if late is None else round(side.get(("penalty_usd", p, period), 0.0), 2)
            )
            denials = v("claim_denials")
            pending, upheld, overturned = (
                v("claim_denial.appeal_pending"),
                v("claim_denial.upheld"),
                v("claim_denial.overturned"),
            )
            appealed = (
                None
                if None in (pending, upheld, overturned)
                else (pending or 0) + (upheld or 0) + (overturned or 0)
            )
            out[("pct_claim_denials_appealed", p, period)] = _pct(appealed, denials)
            out[("pct_claim_denials_overturned", p, period)] = _pct(overturned, denials)
            out[("averted_usd", p, period)] = (
                None if denials is None else round(side.get(("averted_usd", p, period), 0.0), 2)
            )
            out[("overturned_usd", p, period)] = (
                None if overturned is None else round(side.get(("overturned_usd", p, period), 0.0), 2)
            )
            met, missed = v("support.met"), v("support.missed")
            out[("pct_support_sla_met", p, period)] = _pct(
                met, None if met is None or missed is None else met + missed
            )
    return out


def _cms_template() -> list[tuple[str, str, str]]:
    """The rule's metric list (key, label, unit) in its order, from the one definition in cms0057.py."""
    zero = PaCounts(0, 0, 0, 0, 0, 0, 0, 0, 0)
    return [(x.key, x.label, x.unit) for x in cms0057_metrics(zero)]


def _cms(
    pub: dict[Key, int | None], stats: dict[Any, float | None], p: str, period: str
) -> list[dict[str, Any]]:
    """CMS-0057-F figures for one participant and period, from published counts and suppressed statistics."""

    def v(measure: str) -> int | None:
        return pub.get((measure, p, period))

    std, exp = v("urgency.standard"), v("urgency.expedited")
    # WISeR has no extended review timeframe: no request is ever extended, so the numerator is 0.
    numerators: dict[str, tuple[int | None, int | None]] = {
        "standard_approved_pct": (v("standard.approved"), std),
        "standard_denied_pct": (v("standard.denied"), std),
        "standard_approved_after_appeal_pct": (v("standard.approved_after_appeal"), std),
        "extended_approved_pct": (0, std),
        "expedited_approved_pct": (v("expedited.approved"), exp),
        "expedited_denied_pct": (v("expedited.denied"), exp),
    }
    out = []
    for key, label, unit in _cms_template():
        if key in numerators:
            n, d = numerators[key]
            value = _pct(n, d)
        else:
            kind, stat = key.split("_", 1)  # standard_mean_hours -> ("standard", "mean_hours")
            n, d = None, std if kind == "standard" else exp
            value = stats.get((f"{stat}_{kind}", p, period))
        out.append(
            {"key": key, "label": label, "unit": unit, "value": value, "numerator": n, "denominator": d}
        )
    return out


def compensation_params(rt: Runtime) -> tuple[CompensationParams, list[str]]:
    """The profile's compensation parameters as formula parameters, with notes on any fallback."""
    c = rt.profile.compensation
    notes = []
    fee = c.reform_fee_per_review_usd
    if fee <= 0:
        fee = CompensationParams().reform_fee_per_review_usd
        notes.append(
            f"Profile {rt.profile.id} sets no reform fee; the documented default ${fee:g} per review is "
            "used so both formulas can be compared."
        )
    params = CompensationParams(
        share_of_savings=c.current_share_of_savings,
        quality_adjustment_max=min(c.quality_adjustment_max, 0.99),
        reform_fee_per_review_usd=fee,
        timeliness_weight=c.timeliness_weight,
        accuracy_weight=c.accuracy_weight,
    )
    return params, notes


# Published sums that each equal the number of decided requests (affirmed, non-affirmed, exempt, gold card
# or deemed): (added, subtracted).
_DECIDED_ROUTES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (tuple(f"outcome.{o}" for o in ("affirmed", "non_affirmed", "exempt", "gold_card", "deemed")), ()),
    (("requests",), ("outcome.pending", "outcome.withdrawn")),
    (("standard.approved", "standard.denied", "expedited.approved", "expedited.denied"), ()),
)


def _published_decided(values: dict[Key, int | None], p: str, period: str) -> int | None:
    """The number of decided requests if a reader can already work it out from published counts, else None.

    The pay table shows it as "reviews"; the raw count may be a hidden 1..10 (3 decided among 15 late
    requests, say, under a profile without deemed approval), so it is shown only when it adds nothing.
    """
    for plus, minus in _DECIDED_ROUTES:
        got = [values.get((k, p, period)) for k in (*plus, *minus)]
        if all(x is not None for x in got):
            return sum(int(x or 0) for x in got[: len(plus)]) - sum(int(x or 0) for x in got[len(plus) :])
    return None


def _pay(
    facts: Facts, values: dict[Key, int | None], p: str, period: str, params: CompensationParams
) -> dict[str, Any]:
    """Both formulas for one participant and period; ``values`` are true or published counts."""

    def v(measure: str) -> int | None:
        return values.get((measure, p, period))

    decided = int(facts.sums.get(("decided", p, period), 0))
    needed = {
        "reviews": v("requests") if decided else 0,
        "on_time": v("timeliness.on_time"),
        "late": v("timeliness.late"),
        "non_affirmed": v("outcome.non_affirmed"),
        "claim_denials": v("claim_denials"),
        "overturned": v("claim_denial.overturned"),
        "decided": _published_decided(values, p, period),
    }
    if any(x is None for x in needed.values()):
        return {"participant": p, "period": period, "suppressed": True, "current": None, "reform": None}
    reviews = decided
    non_affirmed = min(reviews, int(needed["claim_denials"] or needed["non_affirmed"] or 0))
    overturned = min(non_affirmed, int(needed["overturned"] or 0))
    averted = facts.sums.get(("averted_usd", p, period), 0.0)
    overturned_usd = min(averted, facts.sums.get(("overturned_usd", p, period), 0.0))
    period_in = ParticipantPeriod(
        participant=p,
        reviews=reviews,
        decided_on_time=min(reviews, int(needed["on_time"] or 0)),
        non_affirmed_lines=non_affirmed,
        averted_allowed_usd=averted,
        overturned_denials=overturned,
        overturned_allowed_usd=overturned_usd,
        audited=0,
        audit_agreements=0,
        quality_score=0.5,
    )
    cur: PayBreakdown = current_formula(period_in, params)
    ref: PayBreakdown = reform_formula(period_in, params)
    return {
        "participant": p,
        "period": period,
        "suppressed": False,
        "inputs": {
            "reviews": reviews,
            "decided_on_time": period_in.decided_on_time,
            "non_affirmed_lines": non_affirmed,
            "averted_allowed_usd": round(averted, 2),
            "overturned_denials": overturned,
            "overturned_allowed_usd": round(overturned_usd, 2),
            "audited": 0,
            "audit_agreements": 0,
            "quality_score": 0.5,
        },
        "current": {
            "total_usd": round(cur.total_usd, 2),
            "components": cur.components,
            "explanation": cur.explanation,
        },
        "reform": {
            "total_usd": round(ref.total_usd, 2),
            "components": ref.components,
            "explanation": ref.explanation,
        },
    }


def _assemble(rt: Runtime, data: m.FineData, *, suppress: bool) -> PublicReport:
    participants = sorted({s.participant for s in rt.catalog.states.values()})
    states = {s.participant: s.code for s in rt.catalog.states.values()}
    facts = build_facts(data, participants)
    values: dict[Key, int | None] = publish(facts) if suppress else dict(facts.counts)
    grains: list[tuple[str, ...]] = [("participant", g, "urgency") for g in ("month", "year")]
    grains += [(g, "urgency") for g in ("month", "year")]
    quant = m.quantiles_from_histogram(data.durations, m.HIST_DIMS, grains)
    stats = _stats(facts, values, quant)
    if not suppress:
        # Oversight: statistics over any population, however small.
        for key in list(stats):
            name, p, period = key
            if stats[key] is None and name.startswith(("mean_", "median_", "p90_")):
                u = name.rsplit("_", 1)[1]
                n = facts.sums.get((f"dur_n.{u}", p, period), 0)
                if n:
                    stat = name.rsplit("_", 1)[0]
                    if stat == "mean_hours":
                        stats[key] = _r(facts.sums[(f"dur_sum.{u}", p, period)] / n)
                    else:
                        g = grain_of(period)
                        qg = (g, "urgency") if p == ALL else ("participant", g, "urgency")
                        qk = (period, u) if p == ALL else (p, period, u)
                        pair = quant.get(qg, {}).get(qk, (None, None))
                        stats[key] = _r(pair[0] if stat == "median_hours" else pair[1])
    cms = {(p, y): _cms(values, stats, p, y) for p in [*facts.participants, ALL] for y in facts.years}
    params, notes = compensation_params(rt)
    comp = {(p, y): _pay(facts, values, p, y, params) for p in facts.participants for y in facts.years}
    if not data.sources.get("claim_lines"):
        notes.append("Claims are not recorded in this installation: averted and overturned dollars are 0.")
    return PublicReport(
        as_of=data.now,
        profile_id=rt.profile.id,
        profile_version=rt.profile.version,
        participants=facts.participants,
        states=states,
        months=facts.months,
        quarters=facts.quarters,
        years=facts.years,
        values=values,
        stats=stats,
        cms0057=cms,
        compensation=comp,
        sources=data.sources,
        penalties_enforced=rt.profile.penalties.enforced,
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------- cache


@contextmanager
def _read(rt: Runtime) -> Iterator[Connection]:
    """A read-only connection: on SQLite a deferred transaction, so reports never take the writer lock;
    on PostgreSQL REPEATABLE READ, so every query of one report sees the same snapshot."""
    with rt.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        else:
            conn.execution_options(sqlite_begin="DEFERRED")
        yield conn


def _collect(rt: Runtime, now: dt.datetime, *, rollup: bool) -> tuple[m.FineData, dict[str, float]]:
    """The fine data as of ``now``: from the up-to-date blocks (``reporting.rollup``) or all rows live."""
    if not rollup:
        started = time.perf_counter()
        with _read(rt) as conn:
            data = m.collect(conn, now=now, penalties=rt.profile.penalties)
        return data, {"live_queries": round((time.perf_counter() - started) * 1000, 1)}
    with _read(rt) as conn:
        got = blocks.collect(conn, now=now, penalties=rt.profile.penalties)
    started = time.perf_counter()
    blocks.store(rt.engine, got.fresh)
    timings = {
        **got.timings,
        "store_blocks": round((time.perf_counter() - started) * 1000, 1),
        "blocks_reused": got.reused,
        "blocks_summed": len(got.fresh),
    }
    return got.data, timings


_CACHE: OrderedDict[tuple[Any, ...], PublicReport] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def clear_report_cache() -> None:
    """Forget every cached report (after the database was restored or emptied behind the app's back)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _fingerprint(rt: Runtime) -> tuple[Any, ...]:
    """Cheap data version: row counts and the newest id of every source table.

    Every change of a request's outcome appends a decision, so the decisions' count and newest id move
    with it; the requests' newest id is a primary-key lookup (their latest ``updated_at`` was a full scan).
    Changes made in place (a support answer, a claim appeal's outcome, a peer-to-peer's outcome) show within
    the minute the key also holds.
    """
    from wiserpa.requests.models import PaRequest

    parts: list[Any] = []
    with _read(rt) as conn:
        parts.append(tuple(conn.execute(select(func.count(), func.max(PaRequest.id))).one()))
        for name in ("decisions", "claim_lines", "support_cycles", "experience_reports", "peer_to_peer"):
            if name in Base.metadata.tables:
                t = Base.metadata.tables[name]
                parts.append(tuple(conn.execute(select(func.count(), func.max(t.c.id))).one()))
    return tuple(parts)


def _cached(rt: Runtime, kind: str, build: Any) -> PublicReport:
    now = rt.clock.now().replace(second=0, microsecond=0)
    key = (
        kind,
        str(rt.engine.url),
        rt.profile.id,
        rt.profile.version,
        now,
        hashlib.sha256(repr(_fingerprint(rt)).encode()).hexdigest(),
    )
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            hit.cached = True
            return hit
    report: PublicReport = build()
    with _CACHE_LOCK:
        _CACHE[key] = report
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return report


def _build(rt: Runtime, *, suppress: bool, rollup: bool) -> PublicReport:
    started = time.perf_counter()  # measuring only: the figures use the injected clock
    now = rt.clock.now()
    data, timings = _collect(rt, now, rollup=rollup)
    t = time.perf_counter()
    report = _assemble(rt, data, suppress=suppress)
    timings["assemble"] = round((time.perf_counter() - t) * 1000, 1)
    report.computed_in_ms = round((time.perf_counter() - started) * 1000, 1)
    report.timings = timings
    return report


def public_report(rt: Runtime, *, use_cache: bool = True, rollup: bool = True) -> PublicReport:
    """The suppressed public report as of ``rt.clock.now()`` (cached per profile, minute and data version).

    ``rollup=False`` reads every request row instead of the stored blocks (same figures, slower).
    """

    def build() -> PublicReport:
        return _build(rt, suppress=True, rollup=rollup)

    return _cached(rt, "public", build) if use_cache else build()


def oversight_report(rt: Runtime) -> PublicReport:
    """The same figures without suppression, for signed-in oversight staff only."""
    return _cached(rt, "oversight", lambda: _build(rt, suppress=False, rollup=True))


def oversight_cuts(rt: Runtime, *, period: str = "month") -> list[dict[str, Any]]:
    """Unsuppressed rows per state × category × period (month or week) for oversight pages."""
    now = rt.clock.now()
    with _read(rt) as conn:
        data = m.collect(conn, now=now, penalties=rt.profile.penalties, period=period)
    grouped = m.rollup(data.requests, lambda k: (k[1], k[0], k[2], k[3]))
    rows = []
    for (state, participant, category, when), r in sorted(grouped.items()):
        decided = r["timeliness.on_time"] + r["timeliness.late"]
        rows.append(
            {
                "state": state,
                "participant": participant,
                "category": category,
                "period": when,
                "requests": int(r["n"]),
                **{o: int(r[f"outcome.{o}"]) for o in m.OUTCOMES},
                "late": int(r["timeliness.late"]),
                "pct_on_time": round(100 * r["timeliness.on_time"] / decided, 1) if decided else None,
                "mean_hours": round(r["dur_sum_hours"] / r["dur_n"], 1) if r["dur_n"] else None,
                "penalty_usd": round(r["penalty_usd"], 2),
            }
        )
    return rows


def clear_cache() -> None:
    """Forget cached reports (tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()
