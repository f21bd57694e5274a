"""Report metrics as SQL aggregates: one GROUP BY per source table at the finest grain, rolled up in Python.

The finest grain is participant × state × service category × month (× urgency for requests), a few thousand
rows at most whatever the number of requests, so every coarser cut (participant × month, quarter, year,
category × state ...) is an exact sum of fine rows. Only two things are not additive:

* **percentiles** of hours to decision: the database returns a histogram of durations rounded to the
  second (``GROUP BY participant, month, urgency, seconds`` with ``COUNT(*)``), on SQLite (which has no
  percentile aggregate) and PostgreSQL alike, and the interpolation is done on those weighted values —
  ``percentile_cont``'s definition (linear between the ranks). Histograms add up, so ``rollup.py`` can
  keep them pre-aggregated like the counters;
* nothing else: means come from sums and counts.

Every figure is computed under the profile in force at ``now``: a past-due undecided request under a
deemed-approval profile counts as deemed (``effective_status_sql(now)``) whether or not a sweep ran.
Tables that do not exist in ``Base.metadata`` (a domain not installed yet) contribute zeros.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Integer,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from wiserpa.policy.profiles import PenaltyPolicy
from wiserpa.requests.models import Decision, PaRequest
from wiserpa.requests.status import OPEN, Status, effective_status_sql
from wiserpa.store.base import Base

__all__ = [
    "CHANNELS",
    "HIST_DIMS",
    "OUTCOMES",
    "TIMELINESS",
    "URGENCIES",
    "FineData",
    "Histogram",
    "approved_after_appeal",
    "collect",
    "collect_others",
    "duration_histogram",
    "duration_quantiles",
    "merge_histograms",
    "month_of",
    "period_of",
    "quantiles_from_histogram",
    "quarter_of",
    "request_rows",
    "weighted_quantile",
]

OUTCOMES = ("affirmed", "non_affirmed", "exempt", "gold_card", "deemed", "withdrawn", "pending")
CHANNELS = ("portal", "mac_forwarded", "fhir")
URGENCIES = ("standard", "expedited")
# A partition of the requests: "withdrawn" is a withdrawal that missed no deadline (one withdrawn at or after
# its due time while undecided, or after a late decision, is late: a deadline miss, as in the penalty ledger).
TIMELINESS = ("on_time", "late", "not_yet_due", "withdrawn")
RESUB_OUTCOMES = ("affirmed", "non_affirmed", "other")
APPEAL_STATES = ("not_appealed", "appeal_pending", "upheld", "overturned")
SUPPORT_STATES = ("met", "missed", "open", "closed_unanswered")

_STATUS_TO_OUTCOME = {
    Status.AFFIRMED.value: "affirmed",
    Status.NON_AFFIRMED.value: "non_affirmed",
    Status.EXEMPT_AFFIRMED.value: "exempt",
    Status.GOLD_CARD_AFFIRMED.value: "gold_card",
    Status.DEEMED_AFFIRMED.value: "deemed",
    Status.WITHDRAWN.value: "withdrawn",
    Status.RECEIVED.value: "pending",
    Status.PENDED.value: "pending",
}
_DECIDED_BY_SOMEONE = [
    Status.AFFIRMED.value,
    Status.NON_AFFIRMED.value,
    Status.EXEMPT_AFFIRMED.value,
    Status.GOLD_CARD_AFFIRMED.value,
]
_APPROVED = [
    *(s for s in _DECIDED_BY_SOMEONE if s != Status.NON_AFFIRMED.value),
    Status.DEEMED_AFFIRMED.value,
]
_OPEN = [s.value for s in OPEN]

# Counters of one fine request row, in SELECT order.
REQUEST_FIELDS: tuple[str, ...] = (
    "n",
    *(f"channel.{c}" for c in CHANNELS),
    *(f"outcome.{o}" for o in OUTCOMES),
    *(f"timeliness.{t}" for t in TIMELINESS),
    "resubmissions",
    *(f"resubmission.{o}" for o in RESUB_OUTCOMES),
    "approved_after_appeal",
    "dur_n",
    "dur_sum_hours",
    "penalty_usd",
    "late_seconds",
)
CLAIM_FIELDS = (
    "claim_denials",
    *(f"claim_denial.{a}" for a in APPEAL_STATES),
    "averted_usd",
    "overturned_usd",
)
SUPPORT_FIELDS = ("support_cycles", *(f"support.{s}" for s in SUPPORT_STATES))


# ---------------------------------------------------------------------------------------------- periods


def month_of(value: dt.date | dt.datetime | str) -> str:
    """'YYYY-MM' of a date, instant (UTC) or ISO string."""
    if isinstance(value, str):
        return value[:7]
    return f"{value.year:04d}-{value.month:02d}"


def quarter_of(month: str) -> str:
    """'YYYY-Qn' of a 'YYYY-MM' month."""
    return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"


def period_of(month: str, grain: str) -> str:
    """The month, quarter or year a 'YYYY-MM' month belongs to."""
    if grain == "month":
        return month
    if grain == "quarter":
        return quarter_of(month)
    if grain == "year":
        return month[:4]
    raise ValueError(f"unknown period grain {grain!r}")


# ---------------------------------------------------------------------------------------------- SQL helpers


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _month_sql(conn: Connection, col: Any, period: str = "month") -> ColumnElement[str]:
    """'YYYY-MM' (or, for period="week", the ISO week's Monday 'YYYY-MM-DD') of an instant or date."""
    if period == "week":
        if _is_pg(conn):
            return func.to_char(
                func.date_trunc(literal_column("'week'"), col), literal_column("'YYYY-MM-DD'")
            )
        return func.date(col, "weekday 0", "-6 days")
    if _is_pg(conn):
        # Literal format strings: GROUPING SETS and GROUP BY must see the same text as the SELECT list.
        return func.to_char(col, literal_column("'YYYY-MM'"))
    return func.substr(col, 1, 7)  # SQLite stores instants and dates as ISO text


def _seconds_between(conn: Connection, later: Any, earlier: Any) -> ColumnElement[Any]:
    """later − earlier in seconds (float)."""
    if _is_pg(conn):
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _one(cond: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _table_present(name: str) -> bool:
    return name in Base.metadata.tables


# ---------------------------------------------------------------------------------------------- fine data

# {dimension values: {whole seconds to decision: count}}
Histogram = dict[tuple[str, ...], dict[int, int]]


@dataclass
class FineData:
    """Everything the reports need, at the finest grain; dict keys are tuples of dimension values."""

    now: dt.datetime
    # (participant, state, category, month, urgency) -> field -> number
    requests: dict[tuple[str, str, str, str, str], dict[str, float]] = field(default_factory=dict)
    # (participant, state, category, month) -> field -> number
    claims: dict[tuple[str, str, str, str], dict[str, float]] = field(default_factory=dict)
    # (participant, state, month) -> field -> number
    support: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)
    # (participant, state, category, month) -> count
    experience: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    # (participant, state, category, month) -> distinct requests with a peer-to-peer event
    peer_to_peer: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    # (participant, month, urgency) -> {whole seconds to decision: count} (monthly collections only)
    durations: Histogram = field(default_factory=dict)
    sources: dict[str, bool] = field(default_factory=dict)  # which optional tables were read

    def months(self) -> list[str]:
        """Every month from the first to the last with any data (gaps included, as zeros)."""
        seen = {k[3] for k in self.requests} | {k[3] for k in self.claims} | {k[2] for k in self.support}
        seen |= {k[3] for k in self.experience} | {k[3] for k in self.peer_to_peer}
        if not seen:
            return []
        lo, hi = min(seen), max(seen)
        out = []
        y, m = int(lo[:4]), int(lo[5:7])
        while f"{y:04d}-{m:02d}" <= hi:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def _penalty_sql(
    conn: Connection,
    now: dt.datetime,
    policy: PenaltyPolicy,
    late: ColumnElement[bool],
    decided_time: ColumnElement[Any],
    eff: ColumnElement[str],
) -> tuple[ColumnElement[float], ColumnElement[float]]:
    """(late seconds, USD) of one late request, by the profile's schedule (as deadlines.service.price)."""
    now_lit = literal(now, PaRequest.due_at.type)
    end = case((eff.in_(_OPEN), now_lit), else_=decided_time)
    # A deemed request is decided at its due instant: 0 s late (deadlines.service does the same).
    seconds = case(
        (eff == Status.DEEMED_AFFIRMED.value, 0.0), else_=_seconds_between(conn, end, PaRequest.due_at)
    )
    secs_int = cast(func.floor(seconds), Integer) if _is_pg(conn) else cast(seconds, Integer)
    # Started days: ceil(seconds / 86400) for seconds > 0, in integer arithmetic that both dialects share.
    days = case((secs_int > 0, (secs_int + 86399) // 86400), else_=0)
    raw = policy.per_miss_usd + policy.per_day_late_usd * days
    price = case((raw > policy.max_per_miss_usd, policy.max_per_miss_usd), else_=raw)
    return (case((late, seconds), else_=0.0), case((late, price), else_=0.0))


def request_rows(
    conn: Connection,
    now: dt.datetime,
    penalties: PenaltyPolicy,
    period: str = "month",
    *,
    where: Sequence[ColumnElement[bool]] = (),
    appeals: bool = True,
) -> dict[Any, dict[str, float]]:
    """Fine request rows over the requests matching ``where``; ``appeals=False`` leaves
    "approved after appeal" at 0 (the rollup adds it live: it depends on other rows)."""
    eff = effective_status_sql(now)
    now_lit = literal(now, PaRequest.due_at.type)
    deemed = eff == Status.DEEMED_AFFIRMED.value
    decided_time = case((deemed, PaRequest.due_at), else_=PaRequest.decided_at)
    decided_by_someone = eff.in_(_DECIDED_BY_SOMEONE)
    on_time = and_(decided_by_someone, PaRequest.decided_at < PaRequest.due_at)
    # A withdrawn request missed its deadline when it was decided late, or withdrawn undecided at or after
    # its due time (deadlines.service._resolution); the withdrawal is the request's last change (updated_at).
    withdrawn = eff == Status.WITHDRAWN.value
    withdrawn_when = func.coalesce(PaRequest.decided_at, PaRequest.updated_at)
    withdrawn_late = and_(withdrawn, withdrawn_when >= PaRequest.due_at)
    withdrawn_in_time = and_(withdrawn, withdrawn_when < PaRequest.due_at)
    late = or_(
        and_(decided_by_someone, PaRequest.decided_at >= PaRequest.due_at),
        deemed,
        and_(eff.in_(_OPEN), PaRequest.due_at <= now_lit),
        withdrawn_late,
    )
    not_yet_due = and_(eff.in_(_OPEN), PaRequest.due_at > now_lit)
    has_decision = or_(decided_by_someone, deemed)
    hours = _seconds_between(conn, decided_time, PaRequest.received_at) / 3600.0
    is_resub = PaRequest.predecessor_id.is_not(None)

    approved_after_appeal = and_(eff == Status.NON_AFFIRMED.value, PaRequest.id.in_(_appealed_ids(now)))
    if not appeals:
        approved_after_appeal = literal(False)
    # When lateness ends: the decision (deemed: the due instant), else the withdrawal.
    ended = case((deemed, PaRequest.due_at), else_=withdrawn_when)
    late_seconds, price = _penalty_sql(conn, now, penalties, late, ended, eff)
    month = _month_sql(conn, PaRequest.received_at, period)

    def flag(cond: ColumnElement[bool]) -> ColumnElement[int]:
        return case((cond, 1), else_=0)

    # Every per-row expression is computed once in a subquery; OFFSET 0 keeps SQLite from flattening it
    # (which would evaluate the deemed-status CASE again for every counter) and is a no-op on PostgreSQL.
    inner = (
        select(
            PaRequest.participant.label("participant"),
            PaRequest.state.label("state"),
            PaRequest.category.label("category"),
            month.label("month"),
            PaRequest.urgency.label("urgency"),
            PaRequest.channel.label("channel"),
            eff.label("eff"),
            flag(on_time).label("on_time"),
            flag(late).label("late"),
            flag(not_yet_due).label("not_yet_due"),
            flag(withdrawn_in_time).label("withdrawn_in_time"),
            flag(is_resub).label("resub"),
            flag(approved_after_appeal).label("aaa"),
            flag(has_decision).label("decided"),
            case((has_decision, hours), else_=0.0).label("hours"),
            price.label("price"),
            late_seconds.label("late_seconds"),
        )
        .where(*where)
        .offset(0)
        .subquery("r")
    )
    r = inner.c
    cols: list[ColumnElement[Any]] = [
        func.count(),
        *(_one(r.channel == c) for c in CHANNELS),
        *(_one(r.eff.in_([s for s, o in _STATUS_TO_OUTCOME.items() if o == out])) for out in OUTCOMES),
        func.sum(r.on_time),
        func.sum(r.late),
        func.sum(r.not_yet_due),
        func.sum(r.withdrawn_in_time),
        func.sum(r.resub),
        _one(and_(r.resub == 1, r.eff.in_(_APPROVED))),
        _one(and_(r.resub == 1, r.eff == Status.NON_AFFIRMED.value)),
        _one(and_(r.resub == 1, ~r.eff.in_([*_APPROVED, Status.NON_AFFIRMED.value]))),
        func.sum(r.aaa),
        func.sum(r.decided),
        func.coalesce(func.sum(r.hours), 0.0),
        func.coalesce(func.sum(r.price), 0.0),
        func.coalesce(func.sum(r.late_seconds), 0.0),
    ]
    dims = [r.participant, r.state, r.category, r.month, r.urgency]
    stmt = select(*dims, *cols).group_by(*dims)
    out: dict[Any, dict[str, float]] = {}
    for row in conn.execute(stmt):
        key = tuple(str(v) for v in row[:5])
        out[key] = {name: float(v or 0) for name, v in zip(REQUEST_FIELDS, row[5:], strict=True)}
    return out


def _appealed_ids(now: dt.datetime) -> Select[Any] | CompoundSelect[Any]:
    """Ids of requests later approved another way ("approved after appeal", CMS-0057-F, once non-affirmed).

    By an affirmed resubmission (WISeR's route back) or by an overturned appeal of the claim line it
    denied. Used as an uncorrelated ``id IN (...)``: evaluated once, then primary-key lookups (a correlated
    EXISTS on the mostly-NULL predecessor_id index made SQLite scan the table once per row).
    ``predecessor_id > 0`` rather than ``IS NOT NULL``: ids are positive, and SQLite's planner, whose
    statistics can see the column as one value (NULL), uses the index for a range but not for NOT NULL.
    """
    succ = PaRequest.__table__.alias("succ")
    # The resubmission's *effective* status (effective_status_sql's rule on the alias): one deemed by time
    # approves its predecessor whether or not the sweep has stored it.
    deemed_now = and_(
        succ.c.deems_on_due.is_(True),
        succ.c.status.in_(_OPEN),
        succ.c.due_at <= literal(now, succ.c.due_at.type),
    )
    resubmitted = select(succ.c.predecessor_id).where(
        succ.c.predecessor_id > 0, or_(succ.c.status.in_(_APPROVED), deemed_now)
    )
    if not _table_present("claim_lines"):
        return resubmitted
    lines = Base.metadata.tables["claim_lines"]
    return resubmitted.union(select(lines.c.request_id).where(lines.c.appeal_status == "overturned"))


def approved_after_appeal(conn: Connection, now: dt.datetime, period: str = "month") -> dict[Any, int]:
    """Non-affirmed requests later approved, by (participant, state, category, month, urgency)."""
    month = _month_sql(conn, PaRequest.received_at, period)
    dims = [PaRequest.participant, PaRequest.state, PaRequest.category, month, PaRequest.urgency]
    stmt = (
        select(*dims, func.count())
        .where(PaRequest.id.in_(_appealed_ids(now)), PaRequest.status == Status.NON_AFFIRMED.value)
        .group_by(*dims)
    )
    return {tuple(str(v) for v in row[:5]): int(row[5]) for row in conn.execute(stmt)}


def _claims(conn: Connection) -> dict[Any, dict[str, float]]:
    lines = Base.metadata.tables["claim_lines"]
    claims = Base.metadata.tables["claims"]
    status = lines.c.appeal_status
    cents = func.coalesce(lines.c.allowed_cents, 0)
    month = _month_sql(conn, lines.c.decided_at)
    category = func.coalesce(lines.c.category, "other")
    participant = func.coalesce(lines.c.participant, claims.c.participant)
    dims = [participant, claims.c.state, category, month]
    stmt = (
        select(
            *dims,
            func.count(),
            _one(status.is_(None)),
            _one(status == "pending"),
            _one(status == "upheld"),
            _one(status == "overturned"),
            func.coalesce(func.sum(cents), 0),
            func.coalesce(func.sum(case((status == "overturned", cents), else_=0)), 0),
        )
        .select_from(lines.join(claims, claims.c.id == lines.c.claim_id))
        .where(lines.c.outcome == "denied")
        .group_by(*dims)
    )
    out: dict[Any, dict[str, float]] = {}
    for row in conn.execute(stmt):
        vals = [float(v or 0) for v in row[4:]]
        vals[-2] /= 100.0
        vals[-1] /= 100.0
        out[tuple(str(v) for v in row[:4])] = dict(zip(CLAIM_FIELDS, vals, strict=True))
    return out


def _support(conn: Connection, now: dt.datetime) -> dict[Any, dict[str, float]]:
    cycles = Base.metadata.tables["support_cycles"]
    now_lit = literal(now, cycles.c.due_at.type)
    responded, closed, due = cycles.c.responded_at, cycles.c.closed_at, cycles.c.due_at
    # The window ends at the due instant, as in support.service.breached_sql (and as a request is deemed
    # at now >= due_at): an answer or a closure at that very instant is a miss.
    met = and_(responded.is_not(None), responded < due)
    missed = or_(
        and_(responded.is_not(None), responded >= due),
        and_(responded.is_(None), closed.is_(None), due <= now_lit),
        and_(responded.is_(None), closed.is_not(None), closed >= due),
    )
    open_ = and_(responded.is_(None), closed.is_(None), due > now_lit)
    closed_unanswered = and_(responded.is_(None), closed.is_not(None), closed < due)
    month = _month_sql(conn, cycles.c.started_at)
    dims = [cycles.c.participant, cycles.c.state, month]
    stmt = select(
        *dims, func.count(), _one(met), _one(missed), _one(open_), _one(closed_unanswered)
    ).group_by(*dims)
    return {
        tuple(str(v) for v in row[:3]): dict(
            zip(SUPPORT_FIELDS, (float(v or 0) for v in row[3:]), strict=True)
        )
        for row in conn.execute(stmt)
    }


def _experience(conn: Connection) -> dict[Any, int]:
    reports = Base.metadata.tables["experience_reports"]
    month = _month_sql(conn, reports.c.event_on)
    dims = [reports.c.participant, reports.c.state, reports.c.category, month]
    stmt = select(*dims, func.count()).group_by(*dims)
    return {tuple(str(v) for v in row[:4]): int(row[4]) for row in conn.execute(stmt)}


def _peer_to_peer(conn: Connection) -> dict[Any, int]:
    # Requests with at least one peer-to-peer conversation (reviews' peer_to_peer table), by the request's
    # month; without that table, Decision rows whose kind starts with "peer_to_peer".
    month = _month_sql(conn, PaRequest.received_at)
    dims = [PaRequest.participant, PaRequest.state, PaRequest.category, month]
    if _table_present("peer_to_peer"):
        p2p = Base.metadata.tables["peer_to_peer"]
        source = p2p.join(PaRequest.__table__, PaRequest.id == p2p.c.request_id)
        stmt = select(*dims, func.count(func.distinct(p2p.c.request_id))).select_from(source).group_by(*dims)
    else:
        source = Decision.__table__.join(PaRequest.__table__, PaRequest.id == Decision.request_id)
        stmt = (
            select(*dims, func.count(func.distinct(Decision.request_id)))
            .select_from(source)
            .where(Decision.kind.like("peer_to_peer%"))
            .group_by(*dims)
        )
    return {tuple(str(v) for v in row[:4]): int(row[4]) for row in conn.execute(stmt)}


def collect(
    conn: Connection, *, now: dt.datetime, penalties: PenaltyPolicy, period: str = "month"
) -> FineData:
    """Run the aggregate queries (one per source table) and return the fine-grain data.

    ``period="week"`` keys the request rows by ISO week (Monday) instead of month (oversight cuts); the
    other sources stay monthly.
    """
    data = FineData(now=now)
    data.requests = request_rows(conn, now, penalties, period)
    if period == "month":
        data.durations = duration_histogram(conn, now=now)
    collect_others(conn, data)
    return data


def collect_others(conn: Connection, data: FineData) -> None:
    """Fill in everything but the request rows and durations: peer-to-peer and the optional tables."""
    now = data.now
    data.peer_to_peer = _peer_to_peer(conn)
    data.sources = {"requests": True, "peer_to_peer": True}
    for name, loader in (
        ("claim_lines", lambda: _claims(conn)),
        ("support_cycles", lambda: _support(conn, now)),
        ("experience_reports", lambda: _experience(conn)),
    ):
        present = _table_present(name)
        data.sources[name] = present
        if present:
            result = loader()
            if name == "claim_lines":
                data.claims = result  # type: ignore[assignment]
            elif name == "support_cycles":
                data.support = result  # type: ignore[assignment]
            else:
                data.experience = result  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------- quantiles


def weighted_quantile(values: Sequence[tuple[float, int]], q: float) -> float | None:
    """``percentile_cont(q)`` of a multiset given as sorted (value, count) pairs: linear between ranks."""
    total = sum(c for _, c in values)
    if total == 0:
        return None
    pos = q * (total - 1)
    lo_rank = int(pos)
    hi_rank = min(lo_rank + 1, total - 1)
    frac = pos - lo_rank
    lo_v = hi_v = None
    seen = 0
    for v, c in values:
        if lo_v is None and lo_rank < seen + c:
            lo_v = v
        if hi_rank < seen + c:
            hi_v = v
            break
        seen += c
    assert lo_v is not None and hi_v is not None
    return lo_v + (hi_v - lo_v) * frac


# Grouping dimensions a quantile query may ask for.
QUANTILE_DIMS = ("participant", "state", "category", "month", "quarter", "year", "urgency")


def _dim_sql(conn: Connection, name: str) -> ColumnElement[Any]:
    """A plain dimension, or the month (quarters and years are derived from months in Python)."""
    if name == "month":
        return _month_sql(conn, PaRequest.received_at)
    return PaRequest.__table__.c[name]


HIST_DIMS = ("participant", "month", "urgency")  # the grain FineData.durations is kept at


def duration_histogram(
    conn: Connection,
    *,
    now: dt.datetime,
    dims: Sequence[str] = HIST_DIMS,
    where: Sequence[ColumnElement[bool]] = (),
) -> Histogram:
    """Decided requests counted by ``dims`` and whole seconds to decision: {dim values: {seconds: count}}.

    A deemed request is decided at its due instant (whether or not a sweep stored it).
    """
    eff = effective_status_sql(now)
    deemed = eff == Status.DEEMED_AFFIRMED.value
    decided_time = case((deemed, PaRequest.due_at), else_=PaRequest.decided_at)
    has_decision = or_(eff.in_(_DECIDED_BY_SOMEONE), deemed)
    seconds = _seconds_between(conn, decided_time, PaRequest.received_at)
    secs = cast(func.round(seconds), Integer)
    cols = [_dim_sql(conn, d) for d in dims]
    stmt = select(*cols, secs, func.count()).where(has_decision, *where).group_by(*cols, secs)
    out: Histogram = {}
    for row in conn.execute(stmt):
        counts = out.setdefault(tuple(str(v) for v in row[: len(cols)]), {})
        s = int(row[-2])
        counts[s] = counts.get(s, 0) + int(row[-1])
    return out


def merge_histograms(into: Histogram, other: Histogram) -> None:
    """Add ``other``'s counts to ``into``."""
    for key, counts in other.items():
        acc = into.setdefault(key, {})
        for s, c in counts.items():
            acc[s] = acc.get(s, 0) + c


def quantiles_from_histogram(
    hist: Histogram,
    dims: Sequence[str],
    grains: Iterable[Sequence[str]],
    qs: Sequence[float] = (0.5, 0.9),
) -> dict[tuple[str, ...], dict[tuple[str, ...], tuple[float | None, ...]]]:
    """Hours-to-decision quantiles for each grain from a histogram kept at ``dims`` (quarter and year are
    derived from the month): the ``percentile_cont`` definition, linear between ranks, on whole seconds."""
    wanted: list[tuple[str, ...]] = [tuple(g) for g in grains]
    index = {d: i for i, d in enumerate(dims)}
    for g in wanted:
        missing = {"month" if d in ("quarter", "year") else d for d in g} - set(dims)
        if missing:
            raise ValueError(f"histogram at {tuple(dims)} cannot give {sorted(missing)}")

    def value(key: tuple[str, ...], d: str) -> str:
        if d == "quarter":
            return quarter_of(key[index["month"]])
        if d == "year":
            return key[index["month"]][:4]
        return key[index[d]]

    out: dict[tuple[str, ...], dict[tuple[str, ...], tuple[float | None, ...]]] = {}
    for g in wanted:
        grouped: Histogram = defaultdict(dict)
        for key, counts in hist.items():
            acc = grouped[tuple(value(key, d) for d in g)]
            for s, c in counts.items():
                acc[s] = acc.get(s, 0) + c
        out[g] = {}
        for gk, counts in grouped.items():
            pairs = [(s / 3600.0, c) for s, c in sorted(counts.items())]
            out[g][gk] = tuple(weighted_quantile(pairs, q) for q in qs)
    return out


def duration_quantiles(
    conn: Connection,
    *,
    now: dt.datetime,
    grains: Iterable[Sequence[str]],
    qs: Sequence[float] = (0.5, 0.9),
) -> dict[tuple[str, ...], dict[tuple[str, ...], tuple[float | None, ...]]]:
    """Hours to decision quantiles for each grain: {grain: {group values: (q1, q2, ...)}}.

    One histogram query at the union of the grains' dimensions (whole seconds; quarter and year derived
    from the month), then exact ``percentile_cont`` interpolation on the weighted values — the same on
    SQLite (which has no percentile aggregate) and PostgreSQL, and the same as the rollup's path.
    """
    wanted: list[tuple[str, ...]] = [tuple(g) for g in grains]
    for g in wanted:
        unknown = set(g) - set(QUANTILE_DIMS)
        if unknown:
            raise ValueError(f"unknown quantile dimension(s): {sorted(unknown)}")
    if not wanted:
        return {}
    base_dims = sorted(
        {"month" if d in ("quarter", "year") else d for g in wanted for d in g}, key=QUANTILE_DIMS.index
    )
    hist = duration_histogram(conn, now=now, dims=base_dims)
    return quantiles_from_histogram(hist, base_dims, wanted, qs)


def rollup(rows: Mapping[Any, Mapping[str, float]], key_fn: Any) -> dict[Any, dict[str, float]]:
    """Sum fine rows into coarser groups; ``key_fn(fine_key)`` gives the group (or None to skip)."""
    out: dict[Any, dict[str, float]] = {}
    for k, row in rows.items():
        g = key_fn(k)
        if g is None:
            continue
        acc = out.setdefault(g, {})
        for name, v in row.items():
            acc[name] = acc.get(name, 0.0) + v
    return out
