"""Missed timelines (R2), the penalty ledger, and the sweep that materializes deemed approvals (R3).

A miss is recorded exactly once per request (the request id is the key), by whichever path finds it first:
the sweep, a clinician decision made after the due time, a withdrawal after the due time, or any path that
materializes a deemed approval. Every path holds the request's row lock (PostgreSQL) or the single writer lock
(SQLite) when it calls `record_miss`, so two paths cannot both insert.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, exists, func, inspect, literal, select, update
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.config import Settings
from wiserpa.deadlines.models import DeadlineMiss, Resolution
from wiserpa.errors import FieldError, Forbidden, Invalid
from wiserpa.policy.profiles import PenaltyPolicy
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest
from wiserpa.requests.status import OPEN, Status, is_deemed
from wiserpa.runtime import Runtime
from wiserpa.store.base import (
    adopt_loaded,
    assemble,
    insert_rows,
    note_updated,
    read_connection,
    table_of,
    update_stored,
)

log = logging.getLogger(__name__)

_OPEN = [s.value for s in OPEN]


# ---------------------------------------------------------------------------------------------- misses


def _resolution(request: PaRequest, now: dt.datetime) -> tuple[str, dt.datetime | None, dt.datetime] | None:
    """(resolution, resolved_at, lateness end) for a request that missed its deadline, or None if it did not.

    A request misses when it is still undecided at its due instant (the same `>=` rule as deemed approval).
    """
    due = request.due_at
    if request.status == Status.DEEMED_AFFIRMED.value or request.decision_kind == "deemed":
        # Time decided it at the due instant: the patient waited no longer than the timeline, so 0 s late.
        return Resolution.DEEMED, due, due
    if request.decided_at is not None:
        if request.decided_at < due:
            return None
        return Resolution.CLINICIAN_DECISION, request.decided_at, request.decided_at
    if request.status == Status.WITHDRAWN.value:
        return (Resolution.WITHDRAWN, now, now) if now >= due else None
    if request.status in _OPEN:
        return (Resolution.STILL_OPEN, None, now) if now >= due else None
    return None


def _month(rt: Runtime, request: PaRequest) -> str:
    state = rt.catalog.state(request.state)
    zone = ZoneInfo(state.timezone if state else "UTC")
    return request.due_at.astimezone(zone).strftime("%Y-%m")


_PENDING = "wiserpa.deadline_misses.added"
_ABSENT = "wiserpa.deadline_misses.absent"  # ids the sweep just checked have no miss (saves a read each)


def _known(session: Session, request_id: int) -> DeadlineMiss | None:
    """The session's miss of the request when it holds one whose columns are loaded, else None (no query)."""
    # Misses added in this session are found even before a flush (the sweep runs without autoflush);
    # one that a rollback threw away is no longer in the session and is looked up again.
    added: dict[int, DeadlineMiss] = session.info.setdefault(_PENDING, {})
    miss = added.get(request_id)
    if miss is None or miss not in session:
        added.pop(request_id, None)
        miss = session.identity_map.get(_MISS_MAPPER.identity_key_from_primary_key((request_id,)))
    # An expired one (after a commit) would be read again: `_resolve_stored` reads it with its update instead.
    return miss if miss is not None and "resolution" in miss.__dict__ else None


_MISS_MAPPER = inspect(DeadlineMiss)
_MISSES = table_of(DeadlineMiss)
# Resolves an open miss and reads the whole row back, in one statement.
_RESOLVE_OPEN = (
    update(_MISSES)
    .where(_MISSES.c.request_id == bindparam("id"), _MISSES.c.resolution == Resolution.STILL_OPEN)
    .values(
        resolution=bindparam("resolution"),
        resolved_at=bindparam("resolved_at"),
        late_seconds=bindparam("late_seconds"),
    )
    .returning(*_MISSES.c)
)


def _resolve_stored(session: Session, request_id: int, **changes: Any) -> DeadlineMiss | None:
    """Resolve the request's stored open miss with one UPDATE ... RETURNING; None if it has no open miss.

    A late clinician decision resolves a miss the sweep recorded in an earlier transaction (wiser-2026's
    simulator: 606 of 617 decisions): reading the expired miss again and then updating it took two statements.
    """
    row = session.connection().execute(_RESOLVE_OPEN, {"id": request_id, **changes}).one_or_none()
    if row is None:
        return None
    miss = session.identity_map.get(_MISS_MAPPER.identity_key_from_primary_key((request_id,)))
    if miss is None:
        miss = adopt_loaded(session, DeadlineMiss, row)
    else:
        # Held but expired: the row read back is its stored state now.
        for key, value in zip(_MISSES.c.keys(), row, strict=True):
            set_committed_value(miss, key, value)
    # Changed by this transaction: a rollback (of a savepoint too) expires it, as after a flush.
    note_updated(session, miss)
    return miss


def _settle(session: Session, request: PaRequest) -> None:
    """Mark a request with a recorded miss that time cannot deem as needing nothing more from the sweep."""
    if request.deems_on_due or request.sweep_settled:
        return
    settling: list[PaRequest] | None = session.info.get(_SETTLING)
    if settling is not None:
        # Inside a sweep batch: one UPDATE for the batch (`_write_settled`) instead of one per request. Marked
        # now, and counted as changed so that a rollback before the write expires it.
        set_committed_value(request, "sweep_settled", True)
        note_updated(session, request)
        settling.append(request)
        return
    # A Core UPDATE: bookkeeping for the sweep, not a change of the request, so its version (ETag) stays.
    update_stored(session, request, sweep_settled=True)


_SETTLING = "wiserpa.deadline_misses.settling"  # requests a sweep batch settled, written at its end
_SETTLE_MANY = (
    update(table_of(PaRequest))
    .where(table_of(PaRequest).c.id.in_(bindparam("ids", expanding=True)))
    .values(sweep_settled=True)
)


_RECORDING = "wiserpa.deadline_misses.recording"  # miss rows a sweep batch recorded, inserted at its end


def _write_recorded(session: Session) -> int:
    """Insert the sweep batch's new misses with one statement; how many there were."""
    rows = list(session.info.pop(_RECORDING, {}).values())
    # One driver-level insert instead of an ORM object and its flush per miss: the objects' construction
    # and flush were about a third of a sweep's CPU time in wiser-2026's simulator (a few misses per sweep).
    insert_rows(session.connection(), table_of(DeadlineMiss), rows)
    return len(rows)


def _write_settled(session: Session) -> None:
    """Write the sweep batch's settled requests with one UPDATE."""
    settling: list[PaRequest] = session.info.pop(_SETTLING, [])
    if settling:
        session.connection().execute(_SETTLE_MANY, {"ids": [r.id for r in settling]})


def _miss_values(
    rt: Runtime,
    request: PaRequest,
    *,
    resolution: str,
    resolved_at: dt.datetime | None,
    late: int,
    detected_at: dt.datetime,
    via: str,
) -> dict[str, Any]:
    """The column values of the request's miss row."""
    delay = None
    if request.mac_received_at is not None:
        delay = max(0, int((request.received_at - request.mac_received_at).total_seconds()))
    return {
        "request_id": request.id,
        "participant": request.participant,
        "state": request.state,
        "category": request.category,
        "provider_npi": request.provider_npi,
        "urgency": request.urgency,
        "channel": request.channel,
        "month": _month(rt, request),
        "received_at": request.received_at,
        "mac_received_at": request.mac_received_at,
        "forwarding_delay_seconds": delay,
        "clock_started_at": request.clock_started_at,
        "due_at": request.due_at,
        "detected_at": detected_at,
        "detected_by": via,
        "resolution": resolution,
        "resolved_at": resolved_at,
        "late_seconds": late,
        "profile_id": request.profile_id,
    }


def record_miss(
    session: Session, rt: Runtime, request: PaRequest, *, now: dt.datetime, via: str = "sweep"
) -> DeadlineMiss | None:
    """Record (or resolve) the request's deadline miss; idempotent. Call with the request row locked."""
    found = _resolution(request, now)
    if found is None:
        return None
    resolution, resolved_at, late_end = found
    late = max(0, int((late_end - request.due_at).total_seconds()))
    recording: dict[int, dict[str, Any]] | None = session.info.get(_RECORDING)
    if recording is not None and (request.id in recording or request.id in session.info.get(_ABSENT, ())):
        # Inside a sweep batch, a request the batch read without a miss: its row is written with the batch's
        # others by one insert (`_write_recorded`), resolved here first if it is deemed meanwhile.
        values = recording.get(request.id)
        if values is None:
            recording[request.id] = _miss_values(
                rt,
                request,
                resolution=resolution,
                resolved_at=resolved_at,
                late=late,
                detected_at=now,
                via=via,
            )
        elif values["resolution"] == Resolution.STILL_OPEN:
            values.update(resolution=resolution, resolved_at=resolved_at, late_seconds=late)
        _settle(session, request)
        return assemble(DeadlineMiss, recording[request.id])
    miss = _known(session, request.id)
    if miss is None:
        miss = _resolve_stored(
            session, request.id, resolution=resolution, resolved_at=resolved_at, late_seconds=late
        )
        if miss is not None:
            _settle(session, request)
            return miss
        miss = session.get(DeadlineMiss, request.id)  # none, or resolved already
    if miss is None:
        miss = DeadlineMiss(
            **_miss_values(
                rt,
                request,
                resolution=resolution,
                resolved_at=resolved_at,
                late=late,
                detected_at=now,
                via=via,
            )
        )
        session.add(miss)
        session.info.setdefault(_PENDING, {})[request.id] = miss
        _settle(session, request)
        return miss
    _settle(session, request)
    if miss.resolution == Resolution.STILL_OPEN:
        # An open miss is resolved once; a resolved miss never changes again.
        _resolve(session, miss, resolution=resolution, resolved_at=resolved_at, late_seconds=late)
    return miss


def _resolve(session: Session, miss: DeadlineMiss, **changes: Any) -> None:
    """Write a stored miss's resolution with one Core UPDATE, or through the ORM if it is new or changed."""
    state = inspect(miss)
    if not state.persistent or state.modified:
        for key, value in changes.items():
            setattr(miss, key, value)
        return
    # A late clinician decision resolves an open miss in about half of the simulator's decisions; the ORM's
    # flush of that one dirty object was about a tenth of the decision (on_decide 1.68 -> 1.49 ms measured).
    update_stored(session, miss, **changes)


def live_late_seconds(miss: DeadlineMiss, now: dt.datetime) -> int:
    """How late the miss is: fixed once resolved, still growing while the request stays open."""
    if miss.resolution == Resolution.STILL_OPEN:
        return max(miss.late_seconds, int((now - miss.due_at).total_seconds()))
    return miss.late_seconds


def price(policy: PenaltyPolicy, late_seconds: int) -> tuple[int, float]:
    """(started days late, amount in USD): a flat amount per miss plus an amount per started day, capped."""
    days = math.ceil(late_seconds / 86_400) if late_seconds > 0 else 0
    amount = policy.per_miss_usd + policy.per_day_late_usd * days
    return days, round(min(amount, policy.max_per_miss_usd), 2)


# ---------------------------------------------------------------------------------------------- sweep


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did."""

    deemed: int
    misses_recorded: int
    batches: int = 0


def _due_condition(now: Any) -> ColumnElement[bool]:
    # An index range of ix_pa_requests_sweep: open, not settled, due by now. The cost follows what fell due: a
    # request whose miss is recorded and that cannot be deemed is settled (record_miss) and no longer read.
    return and_(
        # Plain parameters: an expanding IN (a list of values) has its SQL rewritten on every execution.
        PaRequest.status.in_([literal(status) for status in sorted(_OPEN)]),
        PaRequest.sweep_settled.is_(False),
        PaRequest.due_at <= now,
    )


# Built once (the sweep runs every few minutes in production and twice a simulated day in the simulator).
# Without the requests' lines and decisions: recording a miss needs neither, and a deemed approval only appends a
# decision, which requests.materialize_deemed writes with Core statements when the decisions are not loaded.
# The relationships' own selectin loads were a third of a sweep's CPU time in the simulator (a few requests due
# per sweep). Loading the decisions of the requests to deem, so that the ORM's flush wrote the batch, cost more
# than it saved: the flush still sent one versioned UPDATE and (on SQLite) one INSERT per request, after a
# SELECT and the unit of work's bookkeeping (asa-reform, 1,000 requests: 8.18 -> 7.67 G instructions; 10,000:
# on_sweep 0.69-0.74 -> 0.43-0.56 s CPU; bench_sweep, 3,000 due at once: SQLite 1.69-1.74 -> 1.22-1.60 s,
# PostgreSQL 3.0-4.3 s either way).
_DUE_BATCH = (
    select(PaRequest)
    .options(lazyload(PaRequest.lines), lazyload(PaRequest.decisions))
    .where(_due_condition(bindparam("now")))
    .order_by(PaRequest.due_at, PaRequest.id)
    .limit(bindparam("batch"))
    .with_for_update(skip_locked=True)
)
_MISSES_AMONG = select(DeadlineMiss.request_id).where(
    DeadlineMiss.request_id.in_(bindparam("ids", expanding=True))
)


def sweep(
    session: Session,
    rt: Runtime,
    *,
    batch: int = 500,
    after_batch: Callable[[int], None] | None = None,
) -> SweepResult:
    """Materialize deemed approvals and record misses for everything due; commits once per batch.

    Safe with several sweepers at once: PostgreSQL rows are taken `FOR UPDATE SKIP LOCKED`, SQLite has a
    single writer. A crash loses at most the uncommitted batch, which the next sweep picks up again.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    now = rt.clock.now()
    deemed = recorded = batches = 0
    while True:
        try:
            rows = session.scalars(_DUE_BATCH, {"now": now, "batch": batch}).all()
            if not rows:
                # Nothing due: end the transaction (releasing the locks) with a commit, which writes nothing
                # of ours and, unlike a rollback, neither expires the caller's loaded objects nor drops
                # work the caller had not committed yet.
                session.commit()
                break
            ids = [r.id for r in rows]
            # Ids only: a Core read on the session's connection, without the ORM's statement and result handling.
            had = set(read_connection(session).scalars(_MISSES_AMONG, {"ids": ids}))
            session.info[_ABSENT] = set(ids) - had
            session.info[_SETTLING] = []
            session.info[_RECORDING] = {}
            progress = 0
            # One flush per batch instead of several per request: the audit chain's head and this batch's
            # misses are tracked in the session, so nothing needs to be read back before the commit.
            with session.no_autoflush:
                for request in rows:
                    # Recorded first (still open), so the miss says the sweep found it; the deemed approval
                    # then resolves it through the hook in materialize_deemed. Without deeming it stays open.
                    record_miss(session, rt, request, now=now, via="sweep")
                    if requests.materialize_deemed(session, rt, request, now=now):
                        deemed += 1
                        progress += 1
            session.info.pop(_ABSENT, None)
            _write_settled(session)
            new = _write_recorded(session)
            session.flush()
            recorded += new
            progress += new
            session.commit()
        except BaseException:
            session.info.pop(_ABSENT, None)
            session.info.pop(_SETTLING, None)
            session.info.pop(_RECORDING, None)
            session.rollback()
            raise
        batches += 1
        if after_batch is not None:
            after_batch(batches)
        if progress == 0:
            # Nothing this batch could change (should not happen): stop rather than spin.
            break
        if len(rows) < batch:
            # A short batch took everything due at `now` but rows locked elsewhere (whoever holds them records
            # their miss), and each row taken is now deemed or settled: stop without the SELECT and commit that
            # would find nothing (0.4-0.6 ms, against 2.5-3 ms for a sweep with a few requests due, simulator).
            break
    return SweepResult(deemed, recorded, batches)


class SweepWorker:
    """Runs the sweep every `interval` seconds in a daemon thread until stopped."""

    def __init__(self, rt: Runtime, interval: float, *, batch: int = 500) -> None:
        self.rt = rt
        self.interval = interval
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> SweepResult:
        """One sweep in its own session: request deadlines, then pre-payment review clocks."""
        from wiserpa.claims.service import sweep_prepayment_reviews  # claims build on requests and deadlines

        with self.rt.sessions() as session:
            result = sweep(session, self.rt, batch=self.batch)
            reviews = sweep_prepayment_reviews(session, self.rt, now=self.rt.clock.now(), limit=self.batch)
            session.commit()
            if reviews:
                log.info("sweep: %d pre-payment reviews deemed payable", reviews)
            return result

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                result = self.run_once()
                if result.deemed or result.misses_recorded:
                    log.info("sweep: %d deemed, %d misses recorded", result.deemed, result.misses_recorded)
            except Exception:  # a failed sweep must not kill the worker: the next one retries
                log.exception("deadline sweep failed")

    def start(self) -> None:
        """Start the thread (no-op when the interval is 0)."""
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="wiserpa-sweep", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish and wait for the sweep in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def run_cli_sweep(
    settings: Settings, *, once: bool, interval: float | None, echo: Callable[[str], Any]
) -> None:
    """`wiserpa sweep`: one sweep, or one every interval until interrupted."""
    rt = Runtime.build(settings)
    worker = SweepWorker(rt, interval if interval is not None else settings.sweep_interval_seconds)
    try:
        while True:
            result = worker.run_once()
            echo(
                f"{rt.clock.now().isoformat()} swept: {result.deemed} deemed affirmed, "
                f"{result.misses_recorded} misses recorded ({rt.profile.id})"
            )
            if once or worker.interval <= 0:
                return
            if worker._stop.wait(worker.interval):
                return
    except KeyboardInterrupt:
        return
    finally:
        rt.engine.dispose()


# ---------------------------------------------------------------------------------------------- reads


def _scope(principal: Principal) -> ColumnElement[bool]:
    if principal.role is Role.REVIEWER:
        return DeadlineMiss.state == principal.state
    if principal.role in (Role.OVERSIGHT, Role.ADMIN):
        return and_(True)
    raise Forbidden("deadline misses and penalties are for reviewers, oversight and admins")


def _filters(
    principal: Principal,
    *,
    participant: str | None,
    state: str | None,
    month: str | None,
    resolution: str | None = None,
) -> list[ColumnElement[bool]]:
    conditions = [_scope(principal)]
    if month is not None:
        try:
            dt.date.fromisoformat(f"{month}-01")
        except ValueError:
            raise Invalid(
                "month must be YYYY-MM", [FieldError("month", "use YYYY-MM, e.g. 2026-03")]
            ) from None
        conditions.append(DeadlineMiss.month == month)
    if participant:
        conditions.append(func.lower(DeadlineMiss.participant) == participant.lower())
    if state:
        conditions.append(DeadlineMiss.state == state.upper())
    if resolution:
        if resolution not in Resolution.ALL:
            raise Invalid(
                "unknown resolution",
                [FieldError("resolution", f"one of {', '.join(Resolution.ALL)}")],
            )
        conditions.append(DeadlineMiss.resolution == resolution)
    return conditions


def miss_view(rt: Runtime, miss: DeadlineMiss, now: dt.datetime) -> dict[str, Any]:
    """JSON for one miss, with its live lateness and price."""
    late = live_late_seconds(miss, now)
    days, amount = price(rt.profile.penalties, late)
    return {
        "request_id": miss.request_id,
        "participant": miss.participant,
        "state": miss.state,
        "category": miss.category,
        "provider_npi": miss.provider_npi,
        "urgency": miss.urgency,
        "channel": miss.channel,
        "month": miss.month,
        "received_at": requests._iso(miss.received_at),
        "mac_received_at": requests._iso(miss.mac_received_at),
        "forwarding_delay_seconds": miss.forwarding_delay_seconds,
        "clock_started_at": requests._iso(miss.clock_started_at),
        "due_at": requests._iso(miss.due_at),
        "detected_at": requests._iso(miss.detected_at),
        "detected_by": miss.detected_by,
        "resolution": miss.resolution,
        "resolved_at": requests._iso(miss.resolved_at),
        "late_seconds": late,
        "days_late": days,
        "penalty_usd": amount,
        "penalty_enforced": rt.profile.penalties.enforced,
        "request_profile": miss.profile_id,
    }


def list_misses(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    participant: str | None = None,
    state: str | None = None,
    month: str | None = None,
    resolution: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[DeadlineMiss], int]:
    """Misses in the caller's scope, latest due first, and their total count.

    Includes the misses time has made that no path has recorded yet (`unrecorded_misses`), so the answer does
    not depend on whether a sweep ran.
    """
    where = and_(
        *_filters(principal, participant=participant, state=state, month=month, resolution=resolution)
    )
    extra = unrecorded_misses(
        session,
        rt,
        principal=principal,
        participant=participant,
        state=state,
        month=month,
        resolution=resolution,
    )
    ordered = (
        select(DeadlineMiss).where(where).order_by(DeadlineMiss.due_at.desc(), DeadlineMiss.request_id.desc())
    )
    total = session.scalar(select(func.count()).select_from(DeadlineMiss).where(where)) or 0
    if not extra:
        return list(session.scalars(ordered.limit(limit).offset(offset)).all()), total
    # Recorded since the read above (a sweep committing meanwhile on PostgreSQL): listed once, as recorded.
    recorded = set(session.scalars(_MISSES_AMONG, {"ids": [m.request_id for m in extra]}))
    extra = [m for m in extra if m.request_id not in recorded]
    stored = list(session.scalars(ordered.limit(offset + limit)).all())
    merged = sorted([*stored, *extra], key=lambda m: (m.due_at, m.request_id), reverse=True)
    return merged[offset : offset + limit], total + len(extra)


def unrecorded_misses(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    participant: str | None = None,
    state: str | None = None,
    month: str | None = None,
    resolution: str | None = None,
) -> list[DeadlineMiss]:
    """Misses that time has made but no path has recorded yet (no sweep since the due time), not stored.

    A miss is a function of time, like deemed approval: a request undecided at its due instant missed it
    whether or not the sweep has run. These rows say so on every read (`detected_by="time"`, detected at the
    due instant); the sweep or a decision later stores the same miss.
    """
    if resolution and resolution not in (Resolution.DEEMED, Resolution.STILL_OPEN):
        return []
    now = rt.clock.now()
    conditions = [_due_condition(now), ~exists().where(DeadlineMiss.request_id == PaRequest.id)]
    if principal.role is Role.REVIEWER:
        conditions.append(PaRequest.state == principal.state)
    elif principal.role not in (Role.OVERSIGHT, Role.ADMIN):
        raise Forbidden("deadline misses and penalties are for reviewers, oversight and admins")
    if participant:
        conditions.append(func.lower(PaRequest.participant) == participant.lower())
    if state:
        conditions.append(PaRequest.state == state.upper())
    found = []
    for request in session.scalars(_UNRECORDED.where(*conditions)):
        if is_deemed(request, now):
            miss = DeadlineMiss(
                **_miss_values(
                    rt,
                    request,
                    resolution=Resolution.DEEMED,
                    resolved_at=request.due_at,
                    late=0,
                    detected_at=request.due_at,
                    via="time",
                )
            )
        else:
            late = max(0, int((now - request.due_at).total_seconds()))
            miss = DeadlineMiss(
                **_miss_values(
                    rt,
                    request,
                    resolution=Resolution.STILL_OPEN,
                    resolved_at=None,
                    late=late,
                    detected_at=request.due_at,
                    via="time",
                )
            )
        if (resolution and miss.resolution != resolution) or (month and miss.month != month):
            continue
        found.append(miss)
    return found


_UNRECORDED = (
    select(PaRequest)
    .options(lazyload(PaRequest.lines), lazyload(PaRequest.decisions))
    .order_by(PaRequest.due_at, PaRequest.id)
)


@dataclass
class LedgerLine:
    """The penalty ledger for one participant in one month."""

    participant: str
    state: str
    month: str
    misses: int = 0
    by_resolution: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Resolution.ALL, 0))
    days_late: int = 0
    amount_usd: float = 0.0
    mac_forwarded_misses: int = 0
    forwarding_delay_seconds_total: int = 0
    forwarding_delay_seconds_max: int = 0

    def as_dict(self, policy: PenaltyPolicy, profile_id: str) -> dict[str, Any]:
        """JSON form, with how it was priced."""
        fwd = self.mac_forwarded_misses
        return {
            "participant": self.participant,
            "state": self.state,
            "month": self.month,
            "misses": self.misses,
            "by_resolution": self.by_resolution,
            "days_late": self.days_late,
            "amount_usd": round(self.amount_usd, 2),
            "enforced": policy.enforced,
            "status": "enforced" if policy.enforced else "recorded_only",
            "mac_forwarded_misses": fwd,
            "forwarding_delay_seconds_mean": round(self.forwarding_delay_seconds_total / fwd)
            if fwd
            else None,
            "forwarding_delay_seconds_max": self.forwarding_delay_seconds_max if fwd else None,
            "schedule": {
                "profile": profile_id,
                "per_miss_usd": policy.per_miss_usd,
                "per_day_late_usd": policy.per_day_late_usd,
                "max_per_miss_usd": policy.max_per_miss_usd,
            },
        }


def penalty_ledger(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    participant: str | None = None,
    state: str | None = None,
    month: str | None = None,
) -> list[dict[str, Any]]:
    """The penalty ledger per participant x month (month of the due date in the state's zone)."""
    now = rt.clock.now()
    policy = rt.profile.penalties
    where = and_(*_filters(principal, participant=participant, state=state, month=month))
    lines: dict[tuple[str, str], LedgerLine] = {}
    stored = list(session.scalars(select(DeadlineMiss).where(where).order_by(DeadlineMiss.month)))
    seen = {m.request_id for m in stored}
    extra = unrecorded_misses(
        session, rt, principal=principal, participant=participant, state=state, month=month
    )
    for miss in [*stored, *(m for m in extra if m.request_id not in seen)]:
        line = lines.setdefault(
            (miss.participant, miss.month), LedgerLine(miss.participant, miss.state, miss.month)
        )
        days, amount = price(policy, live_late_seconds(miss, now))
        line.misses += 1
        line.by_resolution[miss.resolution] += 1
        line.days_late += days
        line.amount_usd += amount
        if miss.forwarding_delay_seconds is not None:
            line.mac_forwarded_misses += 1
            line.forwarding_delay_seconds_total += miss.forwarding_delay_seconds
            line.forwarding_delay_seconds_max = max(
                line.forwarding_delay_seconds_max, miss.forwarding_delay_seconds
            )
    return [lines[k].as_dict(policy, rt.profile.id) for k in sorted(lines, key=lambda k: (k[1], k[0]))]


__all__: Sequence[str] = (
    "LedgerLine",
    "SweepResult",
    "SweepWorker",
    "list_misses",
    "live_late_seconds",
    "miss_view",
    "penalty_ledger",
    "price",
    "record_miss",
    "run_cli_sweep",
    "sweep",
    "unrecorded_misses",
)
