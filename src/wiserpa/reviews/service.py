"""The clinician worklist and clinician decisions. Only a clinician may non-affirm, citing unmet criteria."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, Literal, TypeVar, overload

from sqlalchemy import Integer, Select, and_, bindparam, exists, func, inspect, literal, or_, select
from sqlalchemy.orm import Session, lazyload

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import Conflict, FieldError, Forbidden, Invalid
from wiserpa.requests import events
from wiserpa.requests import service as requests
from wiserpa.requests.models import Decision, PaRequest
from wiserpa.requests.status import OPEN, Status, check_transition
from wiserpa.runtime import Runtime
from wiserpa.store.base import adopt_loaded, read_connection, run_on_driver, table_of

REVIEW_ROLES = (Role.REVIEWER,)


def _require_reviewer(principal: Principal) -> None:
    if principal.role not in REVIEW_ROLES:
        raise Forbidden("only a participant's reviewer may do this")


@dataclass(frozen=True, slots=True)
class WorklistEntry:
    """A worklist item as the light form (`details=False`) gives it: the request's id only."""

    id: int


ItemT = TypeVar("ItemT", PaRequest, WorklistEntry)


@dataclass(frozen=True)
class WorklistPage(Generic[ItemT]):
    """Pended requests, soonest due first."""

    items: Sequence[ItemT]
    total: int | None  # None when the caller asked not to count (`count=False`)
    limit: int
    offset: int


@lru_cache(maxsize=256)
def _worklist_statements(
    principal: Principal, by_category: bool
) -> tuple[Select[tuple[int]], Select[tuple[PaRequest]], Select[tuple[int]]]:
    """The worklist's count, page and id-page statements for one caller, built once: the time, the category,
    the limit and the offset are bound parameters."""
    conditions = [
        requests.scope_filter(principal),
        # Plain parameters, not the expanding IN that a list of values makes: SQLAlchemy rewrites that one's SQL
        # on every execution (a light worklist read of 20 ids: 634k -> 548k instructions, callgrind).
        PaRequest.status.in_([literal(s.value) for s in sorted(OPEN)]),
        # Past due under a deemed-approval profile means already affirmed: not work any more. The due time
        # comes first: it is in the (state, status, due_at) index, so SQLite reads the row itself only for the
        # requests already past due (the count otherwise reads every open request's row).
        or_(
            PaRequest.due_at > bindparam("now", type_=PaRequest.due_at.type),
            PaRequest.deems_on_due.is_(False),
        ),
    ]
    if by_category:
        conditions.append(PaRequest.category == bindparam("category"))
    where = and_(*conditions)
    count = select(func.count()).select_from(PaRequest).where(where)

    def paged(columns: Select[Any]) -> Select[Any]:
        return (
            columns.where(where)
            .order_by(PaRequest.due_at, PaRequest.id)
            .limit(bindparam("limit", type_=Integer))
            .offset(bindparam("offset", type_=Integer))
        )

    return count, paged(select(PaRequest)), paged(select(table_of(PaRequest).c.id))


@overload
def worklist(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    limit: int = 50,
    offset: int = 0,
    category: str | None = None,
    details: Literal[True] = True,
    count: bool = True,
) -> WorklistPage[PaRequest]: ...


@overload
def worklist(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    limit: int = 50,
    offset: int = 0,
    category: str | None = None,
    details: Literal[False],
    count: bool = True,
) -> WorklistPage[WorklistEntry]: ...


def worklist(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    limit: int = 50,
    offset: int = 0,
    category: str | None = None,
    details: bool = True,
    count: bool = True,
) -> WorklistPage[PaRequest] | WorklistPage[WorklistEntry]:
    """Open requests in the reviewer's state that time has not already decided, ordered by due time.

    `details=False` gives each item's id only (`WorklistEntry`), for callers that only pick items by id (the
    simulator's reviewer pool); the pages and the API render the requests and keep the default. `count=False`
    skips counting the whole worklist (the count reads every open request of the state) for callers that only
    take the first page; `total` is then None.
    """
    if principal.role not in (Role.REVIEWER, Role.OVERSIGHT, Role.ADMIN):
        raise Forbidden("the worklist is for reviewers")
    now = rt.clock.now()
    count_all, page, id_page = _worklist_statements(principal, bool(category))
    params = {"now": now, "category": category, "limit": limit, "offset": offset}
    # The count and the light page are Core reads on the session's connection (flushed first, as the ORM's
    # execution would): building an ORM object per item, even with only its id loaded, was most of the light
    # read (40 items, count=False, read + audit + commit: 0.92 ms of CPU as ORM objects, 0.49 ms as ids; SQLite).
    # On SQLite they go straight to the driver (store.base.run_on_driver): the simulator's reviewers read the
    # light worklist every business hour, and SQLAlchemy's execution around these small reads cost more than
    # SQLite's own work (a simulated year of 1,000 requests: asa-reform 7.55 -> 7.46 G instructions).
    connection = read_connection(session)
    total = (run_on_driver(connection, count_all, params).rows[0][0] or 0) if count else None
    result: WorklistPage[PaRequest] | WorklistPage[WorklistEntry]
    if details:
        rows = session.scalars(page, params).all()
        ids = [r.id for r in rows]
        result = WorklistPage(rows, total, limit, offset)
    else:
        ids = [i for (i,) in run_on_driver(connection, id_page, params).rows]
        result = WorklistPage([WorklistEntry(i) for i in ids], total, limit, offset)
    audit.record(
        session,
        actor=principal.actor,
        action="worklist.read",
        object_type="request",
        object_id=None,
        outcome="ok",
        at=now,
        details={"ids": ids},
    )
    return result


@dataclass(frozen=True)
class DecisionResult:
    """What a clinician decision did: changed the outcome, or was recorded as late and ignored."""

    request: PaRequest
    applied: bool
    message: str


def decide(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    outcome: str,
    reasons: Sequence[str] = (),
    note: str | None = None,
    expected_version: int | frozenset[int] | None = None,
) -> DecisionResult:
    """A reviewer affirms or non-affirms a pended request (caller commits)."""
    if outcome not in ("affirm", "non_affirm"):
        raise Invalid(
            "decision must be affirm or non_affirm", [FieldError("decision", "use affirm or non_affirm")]
        )
    if principal.role is not Role.REVIEWER:
        # Checked before the lookup: the role decides, whatever the request.
        raise Forbidden("only a participant's reviewer may decide requests")
    # Each criterion is cited once, in the order given: a repeated id would list the same gap twice in the
    # decision record, the audit entry and the notice the provider reads.
    reasons = list(dict.fromkeys(reasons))
    request = _lock_request(session, request_id)
    if request is None or not requests.can_see(principal, request):
        # Refused: the shared lookup audits it and answers 404 (it returns only if the row appeared meanwhile).
        request = requests.load_visible(
            session, rt, principal, request_id, action="request.decide", for_update=True
        )
    requests.check_version(request, expected_version)
    now = rt.clock.now()
    if outcome == "non_affirm":
        _check_non_affirmation(principal, request, reasons, note)
    reason_rows = _reason_rows(request, reasons)
    if requests.materialize_deemed(session, rt, request, now=now) or request.status == Status.DEEMED_AFFIRMED:
        # Deemed just now or by an earlier sweep: either way time decided first.
        # Time decided first: record the clinician's decision as late, never as the outcome (R3).
        late = f"late_{outcome}"
        if read_connection(session).scalar(_HAS_DECISION, {"id": request.id, "kind": late}):
            # Recorded once per kind (uq_decisions_once): saying it again changes nothing, so say so (409).
            raise Conflict(
                f"request {request.id} was deemed affirmed at its due time and a late {outcome} is already "
                "recorded"
            )
        requests.add_decision(
            session,
            request,
            _decision_row(
                principal,
                request,
                kind=late,
                status=request.status,
                effective=False,
                now=now,
                reasons=reason_rows,
                note=note,
            ),
        )
        audit.record(
            session,
            actor=principal.actor,
            action="request.decide",
            object_type="request",
            object_id=request.id,
            outcome="late_ignored",
            at=now,
        )
        return DecisionResult(
            request,
            False,
            "the request was deemed affirmed at its due time; "
            "this decision was recorded as late and does not change the outcome",
        )
    if request.status not in OPEN:
        raise Conflict(f"request {request.id} is already {request.status}")
    new_status = Status.AFFIRMED.value if outcome == "affirm" else Status.NON_AFFIRMED.value
    check_transition(request.status, new_status)
    changes: dict[str, Any] = {
        "status": new_status,
        "decision_kind": "clinician",
        "decided_at": now,
        "updated_at": now,
    }
    if new_status == Status.AFFIRMED.value:
        changes["valid_until"] = requests.validity_end(rt, request, now)
    requests.store_changes(session, request, changes)
    requests.add_decision(
        session,
        request,
        _decision_row(
            principal,
            request,
            kind=f"clinician_{outcome}",
            status=new_status,
            effective=True,
            now=now,
            reasons=reason_rows,
            note=note,
        ),
    )
    audit.record(
        session,
        actor=principal.actor,
        action="request.decide",
        object_type="request",
        object_id=request.id,
        outcome=new_status,
        at=now,
        details={"reasons": list(reasons), "late": now > request.due_at},
    )
    events.outcome_changed(session, rt, request, now=now, via="clinician_decision")
    return DecisionResult(request, True, f"request {request.id} is {new_status}")


# Built once. The request row locked for the decision (FOR UPDATE on PostgreSQL; SQLite's writer lock is
# already held): every column through Core, or through the ORM leaving lines and decisions to load on access.
_LOCK_ROW = select(table_of(PaRequest)).where(table_of(PaRequest).c.id == bindparam("id")).with_for_update()
_LOCK_REQUEST = (
    select(PaRequest)
    .where(PaRequest.id == bindparam("id"))
    .with_for_update()
    .options(lazyload(PaRequest.lines), lazyload(PaRequest.decisions))
)

_HAS_DECISION = select(
    exists().where(Decision.request_id == bindparam("id"), Decision.kind == bindparam("kind"))
)


# Whether the row is there, locked (FOR UPDATE on PostgreSQL), for a request the session already holds.
_LOCK_ID = (
    select(table_of(PaRequest).c.id).where(table_of(PaRequest).c.id == bindparam("id")).with_for_update()
)
_MAPPER = inspect(PaRequest)
_COLUMN_KEYS = frozenset(_MAPPER.column_attrs.keys())


def _lock_request(session: Session, request_id: int) -> PaRequest | None:
    """The request locked for a decision, without its lines and decisions (decide reads neither; a caller that
    renders them loads them on access), or None if there is no such row."""
    connection = read_connection(session)  # flushes first, as the ORM's statement would
    held = session.identity_map.get(_MAPPER.identity_key_from_primary_key((request_id,)))
    if held is None:
        # A Core read made an ORM object: 61 us against 87 us for the ORM statement on SQLite, 197 against 236
        # on PostgreSQL (CPU, the row of a pended request).
        # On SQLite straight on the driver (store.base.run_on_driver): read and adopted, 580k -> 418k
        # instructions (callgrind).
        row = run_on_driver(connection, _LOCK_ROW, {"id": request_id}).first()
        return None if row is None else adopt_loaded(session, PaRequest, row)
    if held.__dict__.keys() >= _COLUMN_KEYS:
        # The session's own object, every column loaded (maybe read before another transaction changed the row:
        # a stale copy fails the version check as it always did). The ORM's statement would hand it back as it
        # is, so only the lock is asked of the database: 686k -> 71k instructions (callgrind, SQLite; the
        # simulator's sweep leaves the requests it deems so, and a late decision on them came this way).
        return held if run_on_driver(connection, _LOCK_ID, {"id": request_id}).rows else None
    # Some columns expired or deferred: the ORM's statement loads them from the locked row.
    return session.scalars(_LOCK_REQUEST, {"id": request_id}).one_or_none()


def _check_non_affirmation(
    principal: Principal, request: PaRequest, reasons: Sequence[str], note: str | None
) -> None:
    if not principal.is_clinician or not principal.npi:
        raise Forbidden("only a licensed clinician (with an NPI on file) may non-affirm")
    if not reasons:
        raise Invalid(
            "a non-affirmation must cite at least one unmet criterion",
            [FieldError("reasons", "name at least one criterion id that is not met")],
        )
    gaps = {r["criterion_id"] for r in request.criteria_results if r.get("result") != "met"}
    unknown = [r for r in reasons if r not in gaps]
    if unknown:
        raise Invalid(
            "reasons must be criteria this request does not meet",
            [
                FieldError(
                    "reasons",
                    f"{', '.join(unknown)} not among the unmet or undocumented criteria "
                    f"({', '.join(sorted(gaps)) or 'none'})",
                )
            ],
        )


def _reason_rows(request: PaRequest, reasons: Sequence[str]) -> list[dict[str, Any]]:
    by_id = {r["criterion_id"]: r for r in request.criteria_results}
    rows = []
    for rid in reasons:
        r = by_id.get(rid)
        if r is None:
            continue
        rows.append(
            {
                "criterion_id": rid,
                "citation": r.get("citation"),
                "statement": r.get("statement"),
                "result": r.get("result"),
                "satisfies_hint": r.get("satisfies_hint"),
            }
        )
    return rows


def _decision_row(
    principal: Principal,
    request: PaRequest,
    *,
    kind: str,
    status: str,
    effective: bool,
    now: dt.datetime,
    reasons: list[dict[str, Any]],
    note: str | None,
) -> dict[str, Any]:
    # Column values of the new decisions row; `dedupe` is "" for a repeatable event, as the column default.
    return {
        "kind": kind,
        "dedupe": "",
        "resulting_status": status,
        "effective": effective,
        "decided_at": now,
        "actor_user_id": principal.user_id,
        "reviewer_name": principal.name,
        "reviewer_npi": principal.npi,
        "reviewer_specialty": principal.specialty,
        "reviewer_credentials": principal.credentials,
        "reasons": reasons,
        "note": note,
        "profile_id": request.profile_id,
        "profile_version": request.profile_version,
        "criteria_results": request.criteria_results,
        "facts_used": dict(request.clinical_facts),
    }
