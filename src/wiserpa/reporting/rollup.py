"""The report's request figures from pre-aggregated blocks, brought up to date inside every report.

Requests are split into blocks of ``CHUNK`` consecutive ids. For each block, ``report_chunks`` keeps the
fine rows (``metrics._requests``) and the duration histogram of its *settled* requests — every status but
received and pended — together with the number of requests and of decisions the block had when it was
summed. A settled request's figures do not depend on the clock (only open requests are deemed, late or not
yet due as time passes), and every change of a request's outcome appends a decision row (decisions are
never rewritten or deleted), so a block whose two counts are unchanged still sums to exactly what it did.

A report, in one read snapshot (REPEATABLE READ on PostgreSQL, one read transaction on SQLite):

1. counts requests and decisions per block (two index-only GROUP BYs);
2. reuses every stored block whose counts and parameters match, and sums the others from their rows
   (a primary-key range each: typically the newest block or two, where submissions and decisions land);
3. adds the open requests, read live under the effective-status rule at the report's ``now``, and
   "approved after appeal", read live because it depends on other rows (resubmissions, claim appeals);
4. reads the other sources (claims, support, experience, peer-to-peer) live, as ``metrics.collect`` does.

Every figure therefore reflects the data as of the report's own clock; nothing stale is shown. The blocks
summed in step 2 are written back afterwards, in a short transaction of their own, each with the counts
of the snapshot it was summed in (so a block stored late is simply summed again next time), and a failure
to write them only costs speed. ``metrics.collect`` remains the pure live path; the two give the same
report (tests/reporting/test_rollup.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from wiserpa.policy.profiles import PenaltyPolicy
from wiserpa.reporting import metrics as m
from wiserpa.reporting.models import ReportChunk
from wiserpa.requests.models import Decision, PaRequest
from wiserpa.requests.status import OPEN
from wiserpa.store.base import table_of

__all__ = ["CHUNK", "Collected", "collect", "store"]

log = logging.getLogger(__name__)

# 16,384 ids: the newest block, summed again on most reports, takes tens of milliseconds; a million
# requests make ~60 blocks, a few hundred kilobytes of stored rows in all.
CHUNK = 16_384
FORMAT = 2  # bump when the payload or what it holds changes: stored blocks are then summed again
_OPEN = [s.value for s in OPEN]


@dataclass
class Collected:
    """The fine data of one report, the blocks summed for it (to store) and where the time went."""

    data: m.FineData
    fresh: list[dict[str, Any]] = field(default_factory=list)
    reused: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # phase -> milliseconds


def params_key(penalties: PenaltyPolicy) -> str:
    """What a block's sums depend on besides its rows: the penalty schedule, the block size, the format."""
    raw = json.dumps(
        [FORMAT, CHUNK, penalties.per_miss_usd, penalties.per_day_late_usd, penalties.max_per_miss_usd]
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _fingerprints(conn: Connection) -> dict[int, tuple[int, int]]:
    """(requests, decisions) per block, as of this snapshot."""
    counts: dict[int, list[int]] = {}
    block = (PaRequest.id // CHUNK).label("block")
    for row in conn.execute(select(block, func.count()).group_by(block)):
        counts.setdefault(int(row[0]), [0, 0])[0] = int(row[1])
    block = (Decision.request_id // CHUNK).label("block")
    for row in conn.execute(select(block, func.count()).group_by(block)):
        counts.setdefault(int(row[0]), [0, 0])[1] = int(row[1])
    return {k: (v[0], v[1]) for k, v in counts.items()}


def _settled_in(chunk: int) -> list[ColumnElement[bool]]:
    lo = chunk * CHUNK
    return [PaRequest.id >= lo, PaRequest.id < lo + CHUNK, PaRequest.status.not_in(_OPEN)]


def _sum_block(conn: Connection, chunk: int, now: dt.datetime, penalties: PenaltyPolicy) -> dict[str, Any]:
    """The payload of one block: its settled requests' fine rows and duration histogram."""
    where = _settled_in(chunk)
    rows = m.request_rows(conn, now, penalties, where=where, appeals=False)
    hist = m.duration_histogram(conn, now=now, where=where)
    return {
        "requests": [[*k, *(v[f] for f in m.REQUEST_FIELDS)] for k, v in rows.items()],
        # Seconds and counts as two flat lists: a third of the decoding time of [seconds, count] pairs.
        "durations": [[*k, list(c), list(c.values())] for k, c in hist.items()],
    }


def _add_rows(into: dict[Any, dict[str, float]], rows: dict[Any, dict[str, float]]) -> None:
    for key, row in rows.items():
        acc = into.get(key)
        if acc is None:
            into[key] = dict(row)
        else:
            for name, v in row.items():
                acc[name] += v


def _add_payload(data: m.FineData, payload: dict[str, Any]) -> None:
    requests = data.requests
    width = len(m.REQUEST_FIELDS)
    for item in payload["requests"]:
        key = tuple(item[:5])
        values = item[5:]
        acc = requests.get(key)
        if acc is None:
            requests[key] = dict(zip(m.REQUEST_FIELDS, values, strict=True))
        else:
            for i in range(width):
                acc[m.REQUEST_FIELDS[i]] += values[i]
    m.merge_histograms(
        data.durations, {tuple(k[:3]): dict(zip(k[3], k[4], strict=True)) for k in payload["durations"]}
    )


def collect(conn: Connection, *, now: dt.datetime, penalties: PenaltyPolicy) -> Collected:
    """The same ``FineData`` as ``metrics.collect`` (monthly), from stored blocks plus live reads."""
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now_t = time.perf_counter()
        timings[name] = round((now_t - t) * 1000, 1)
        t = now_t

    key = params_key(penalties)
    current = _fingerprints(conn)
    lap("block_counts")
    stored = {
        r.chunk: r
        for r in conn.execute(
            select(
                ReportChunk.chunk,
                ReportChunk.requests,
                ReportChunk.decisions,
                ReportChunk.params,
                ReportChunk.payload,
            )
        )
    }
    lap("read_blocks")
    out = Collected(data=m.FineData(now=now))
    data = out.data
    payloads: list[dict[str, Any]] = []
    changed: list[tuple[int, int, int]] = []
    for chunk, (n_req, n_dec) in sorted(current.items()):
        row = stored.get(chunk)
        if row is not None and (row.requests, row.decisions, row.params) == (n_req, n_dec, key):
            payloads.append(json.loads(row.payload))
            out.reused += 1
        else:
            changed.append((chunk, n_req, n_dec))
    lap("decode_blocks")
    for chunk, n_req, n_dec in changed:
        payload = _sum_block(conn, chunk, now, penalties)
        payloads.append(payload)
        out.fresh.append(
            {
                "chunk": chunk,
                "requests": n_req,
                "decisions": n_dec,
                "params": key,
                "built_at": now,
                "payload": json.dumps(payload, separators=(",", ":")),
            }
        )
    lap("sum_changed_blocks")
    for payload in payloads:
        _add_payload(data, payload)
    lap("merge_blocks")
    # Open requests: deemed, late or not yet due depends on now, so always read live (status index).
    open_ = [PaRequest.status.in_(_OPEN)]
    _add_rows(data.requests, m.request_rows(conn, now, penalties, where=open_, appeals=False))
    m.merge_histograms(data.durations, m.duration_histogram(conn, now=now, where=open_))
    lap("open_requests")
    zero = dict.fromkeys(m.REQUEST_FIELDS, 0.0)
    for k, n in m.approved_after_appeal(conn, now).items():
        data.requests.setdefault(k, dict(zero))["approved_after_appeal"] += n
    lap("approved_after_appeal")
    m.collect_others(conn, data)
    lap("other_sources")
    out.timings = timings
    return out


def store(engine: Engine, fresh: list[dict[str, Any]]) -> None:
    """Write back the blocks a report summed (upsert), never waiting for a lock; a failure is only logged.

    Reports run inside requests that may already hold SQLite's single write lock (a view's session), so
    waiting here could wait for ourselves: on SQLite the write is attempted without a busy wait and
    skipped if another writer is active; on PostgreSQL it waits at most briefly for a concurrent report
    writing the same blocks. A skipped block is just summed again by the next report.
    """
    if not fresh:
        return
    table = table_of(ReportChunk)
    sqlite = engine.dialect.name == "sqlite"
    ins = sqlite_insert(table) if sqlite else pg_insert(table)
    stmt = ins.on_conflict_do_update(
        index_elements=[table.c.chunk],
        set_={c: ins.excluded[c] for c in ("requests", "decisions", "params", "built_at", "payload")},
    )
    try:
        with engine.connect() as conn:
            if sqlite:
                # DEFERRED: not through the process write lock (db.py), which this thread may hold.
                conn.execution_options(sqlite_begin="DEFERRED")
                busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                conn.exec_driver_sql("PRAGMA busy_timeout=0")
                try:
                    conn.execute(stmt, fresh)
                    conn.commit()
                finally:
                    conn.rollback()
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy or 0)}")
                    conn.commit()
            else:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
                conn.execute(stmt, fresh)
                conn.commit()
    except SQLAlchemyError as exc:
        log.info("report blocks not stored (%s); the next report sums them again", type(exc).__name__)
