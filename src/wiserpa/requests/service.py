"""Submitting, reading, withdrawing and resubmitting prior-authorization requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import repeat
from typing import Any
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import and_, bindparam, func, inspect, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, defer, lazyload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.collections import collection_adapter
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import ColumnElement

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.scope import LoaderOptions, in_scope, load_in_scope, scope_condition
from wiserpa.auth.service import Principal
from wiserpa.errors import ApiError, Conflict, FieldError, Forbidden, Invalid, field_path
from wiserpa.goldcard.service import gold_carded
from wiserpa.policy.clock import due_time, received_instant
from wiserpa.policy.criteria import HistoryItem, coerce_facts, validate_facts
from wiserpa.policy.decide import DecisionInput, PipelineResult, decide
from wiserpa.policy.profiles import calendar_for, clock_start, timeline_for
from wiserpa.policy.utn import make_utn, utn_part_for_place_of_service
from wiserpa.requests import events
from wiserpa.requests.models import Decision, PaRequest, RequestLine
from wiserpa.requests.schemas import Channel, SubmitRequestIn
from wiserpa.requests.status import (
    AFFIRMED_STATES,
    OPEN,
    Status,
    check_transition,
    deemed_by_time,
    effective_status,
    effective_status_sql,
    is_deemed,
)
from wiserpa.runtime import Runtime
from wiserpa.store.base import (
    adopt_loaded,
    allocate_ids,
    assemble,
    in_session,
    insert_adopted,
    insert_rows,
    note_updated,
    read_connection,
    run_on_driver,
    table_of,
)

# Where each catalog refusal points in the submitted body, so the 4xx names the field at fault.
_REASON_FIELD = {
    "not_model_state": "state",
    "before_model_services": "date_of_service",
    "after_model_end": "date_of_service",
    "not_yet_effective": "date_of_service",
    "before_model_requests": "date_of_service",
    "excluded_emergency": "emergency",
    "excluded_ed_revenue_code": "revenue_code",
    "excluded_inpatient": "place_of_service",
    "excluded_place_of_service": "place_of_service",
    "excluded_coverage_medicare_advantage": "coverage",
    "excluded_coverage_va": "coverage",
    "excluded_coverage_ihs": "coverage",
}

DECISION_KIND_BY_OUTCOME = {
    Status.AFFIRMED.value: "criteria",
    Status.EXEMPT_AFFIRMED.value: "exempt",
    Status.GOLD_CARD_AFFIRMED.value: "gold_card",
}


# ---------------------------------------------------------------------------------------------- scope


def scope_filter(principal: Principal) -> ColumnElement[bool]:
    """SQL condition selecting the requests this principal may see."""
    return scope_condition(principal, PaRequest)


def can_see(principal: Principal, request: PaRequest) -> bool:
    """Object-level check mirroring `scope_filter`."""
    return in_scope(principal, request)


# Loader options for readers that need a request's own columns but not its children or documents (facts,
# criteria results, attachments, the body as received): those load on first access. Claim matching and the
# reviewer pool's light worklist use them.
WITHOUT_DOCUMENTS = (
    lazyload(PaRequest.lines),
    lazyload(PaRequest.decisions),
    defer(PaRequest.diagnosis_codes),
    defer(PaRequest.clinical_facts),
    defer(PaRequest.criteria_results),
    defer(PaRequest.attachments),
    defer(PaRequest.raw_submission),
    defer(PaRequest.notes),
)


def load_visible(
    session: Session,
    rt: Runtime,
    principal: Principal,
    request_id: int,
    *,
    action: str,
    for_update: bool = False,
    with_children: bool = True,
) -> PaRequest:
    """Fetch a request the principal may see, or raise NotFound (another organization's id is a 404).

    `with_children=False` leaves its lines and decisions to load on first access, for callers that need
    only the request's own columns.
    """
    return load_in_scope(
        session,
        rt,
        principal,
        PaRequest,
        request_id,
        object_type="request",
        action=action,
        for_update=for_update,
        options=() if with_children else _WITHOUT_CHILDREN,
    )


# Built once with their cache keys (auth.scope.LoaderOptions), rather than per call.
_WITHOUT_CHILDREN = LoaderOptions(lazyload(PaRequest.lines), lazyload(PaRequest.decisions))


# ---------------------------------------------------------------------------------------------- submit


@dataclass(frozen=True)
class Validated:
    """A submission that passed every check, with what the checks derived."""

    data: SubmitRequestIn
    category: str
    policy_id: str | None
    primary_code: str
    line_roles: list[tuple[int, str]]  # (index into data.lines, role)
    facts: dict[str, Any]


def _repeats(data: SubmitRequestIn) -> list[FieldError]:
    """A line or a diagnosis code given twice: units count a service's repeats, and a code is listed once.

    Lines that differ in modifiers are different services (a left and a right side, LT and RT).
    """
    errors = []
    first_line: dict[tuple[str, frozenset[str]], int] = {}
    for i, line in enumerate(data.lines):
        key = (line.code, frozenset(line.modifiers))
        if key in first_line:
            errors.append(
                FieldError(
                    f"lines[{i}]",
                    f"repeats lines[{first_line[key]}] (same code and modifiers); count repeats in its units",
                )
            )
        else:
            first_line[key] = i
    first_code: dict[str, int] = {}
    for i, code in enumerate(data.diagnosis_codes):
        if code in first_code:
            errors.append(FieldError(f"diagnosis_codes[{i}]", f"repeats diagnosis_codes[{first_code[code]}]"))
        else:
            first_code[code] = i
    return errors


def validate_submission(rt: Runtime, data: SubmitRequestIn, *, now: dt.datetime) -> Validated:
    """Check a submission against the catalog and the governing policy; raise Invalid naming every field."""
    catalog = rt.catalog
    state = catalog.state(data.state)
    if state is None:
        raise Invalid(
            "state is not a WISeR model state",
            [FieldError("state", f"{data.state} is not in the model ({', '.join(sorted(catalog.states))})")],
        )
    errors = _repeats(data)
    if data.emergency:
        errors.append(
            FieldError("emergency", "emergency services are excluded from WISeR prior authorization")
        )
    local_today = now.astimezone(ZoneInfo(state.timezone)).date()
    codes = [line.code for line in data.lines]
    categories: set[str] = set()
    roles: list[tuple[int, str]] = []
    companions = {
        code
        for info in filter(None, map(catalog.code_info, codes))
        for cond in info.conditions
        if cond.kind == "requires_codes"
        for code in cond.codes
    }
    for i, line in enumerate(data.lines):
        answer = catalog.requires_pa(
            code=line.code,
            state=data.state,
            date_of_service=data.date_of_service,
            place_of_service=data.place_of_service,
            request_date=local_today,
            coverage=data.coverage,
            emergency=data.emergency,
            revenue_code=data.revenue_code,
            modifiers=tuple(line.modifiers),
            diagnosis_codes=tuple(data.diagnosis_codes),
            other_codes=tuple(c for c in codes if c != line.code),
        )
        if answer.required and answer.category:
            info = catalog.code_info(line.code)
            categories.add(answer.category)
            roles.append((i, "add_on" if info is not None and info.add_on else "primary"))
        elif answer.reason_code == "associated_service":
            roles.append((i, "associated"))
        elif line.code in companions:
            # Billed with a WISeR code that is in scope only together with it (e.g. 64590 with 64561).
            roles.append((i, "companion"))
        else:
            field_name = _REASON_FIELD.get(answer.reason_code)
            if field_name is None and answer.reason_code == "excluded_modifier_et":
                field_name = f"lines[{i}].modifiers"
            errors.append(FieldError(field_name or f"lines[{i}].code", answer.reason))
    if not errors:
        if len(categories) > 1:
            errors.append(
                FieldError(
                    "lines",
                    "one request covers one service: these codes belong to "
                    f"{', '.join(sorted(categories))}; submit one request per service",
                )
            )
        elif not any(role == "primary" for _, role in roles):
            errors.append(
                FieldError(
                    "lines",
                    "a request needs at least one primary WISeR code "
                    "(add-on and associated codes go with their primary)",
                )
            )
    if data.mac_received_at is not None:
        if data.channel is not Channel.MAC_FORWARDED:
            errors.append(
                FieldError("mac_received_at", "only MAC-forwarded requests carry a MAC receipt time")
            )
        elif data.mac_received_at.tzinfo is None:
            errors.append(FieldError("mac_received_at", "give a time zone (e.g. 2026-03-02T10:00:00Z)"))
        else:
            try:
                mac_day = data.mac_received_at.astimezone(ZoneInfo(state.timezone)).date()
            except OverflowError:  # 0001-01-01T00:00+14:00 and the like have no instant in range
                mac_day = dt.date.min if data.mac_received_at.year == dt.MINYEAR else dt.date.max
            if mac_day < catalog.model_start:
                errors.append(
                    FieldError(
                        "mac_received_at",
                        f"cannot be before the WISeR model started ({catalog.model_start.isoformat()})",
                    )
                )
            elif data.mac_received_at > now:
                errors.append(FieldError("mac_received_at", "cannot be in the future"))
    if errors:
        raise Invalid("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    category = categories.pop()
    policy_id = catalog.governing_policy(category, data.state)
    facts: dict[str, Any] = dict(data.clinical_facts)
    policy = rt.criteria.for_policy(policy_id) if policy_id else None
    if policy is not None:
        fact_errors = validate_facts(policy, facts)
        if fact_errors:
            fields = [FieldError(path, msg) for path, msg in fact_errors]
            raise Invalid("; ".join(f"{f.field}: {f.message}" for f in fields), fields)
        facts = coerce_facts(policy, facts)
    elif facts:
        raise Invalid(
            "no coverage policy governs this service here, so no clinical facts are asked",
            [FieldError("clinical_facts", f"{category} in {data.state} has no NCD/LCD criteria")],
        )
    primary = next(data.lines[i].code for i, role in roles if role == "primary")
    return Validated(data, category, policy_id, primary, roles, facts)


# Every request of some beneficiaries (a beneficiary has few). Which count as history (their category, and
# whether they are affirmed at the reader's instant) is decided in Python: with the category and status in the
# WHERE clause, SQLite answered batches of many beneficiaries with a MULTI-INDEX OR over the status index,
# reading every affirmed request of the state (1.2 ms a batch at 20,000 requests, and growing).
_REQUESTS = table_of(PaRequest)
_HISTORY_COLUMNS = (
    _REQUESTS.c.id,
    _REQUESTS.c.beneficiary_mbi,
    _REQUESTS.c.category,
    _REQUESTS.c.date_of_service,
    _REQUESTS.c.policy_id,
    _REQUESTS.c.clinical_facts,
    _REQUESTS.c.status,
    _REQUESTS.c.deems_on_due,
    _REQUESTS.c.due_at,
)


@dataclass(frozen=True)
class _HistoryRead:
    """The history read of a given number of beneficiaries as the driver takes it, with the result processing
    of the columns that a kept row converts."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the statement's order when positional
    positional: bool
    convert: tuple[Callable[[Any], Any], ...]  # date of service, facts, deems on due, due time


# Per dialect (an engine's JSON decoder lives on its dialect), then per number of beneficiaries. The read runs
# straight on the driver: through SQLAlchemy, a batch's read cost 200 us of CPU of which the driver's own work
# was 45 (12 beneficiaries, SQLite), the rest its statement handling (an expanding IN is rendered anew on each
# execution) and the conversion of every row read, where only the rows kept need one. The conversions are the
# columns' own result processors, so a row holds what the Core statement gave.
_HISTORY_READS: WeakKeyDictionary[Dialect, dict[int, _HistoryRead]] = WeakKeyDictionary()
_CONVERTED = (
    _REQUESTS.c.date_of_service,
    _REQUESTS.c.clinical_facts,
    _REQUESTS.c.deems_on_due,
    _REQUESTS.c.due_at,
)


def _history_read(dialect: Dialect, count: int) -> _HistoryRead:
    by_count = _HISTORY_READS.setdefault(dialect, {})
    found = by_count.get(count)
    if found is None:
        names = _mbi_names(count)
        statement = select(*_HISTORY_COLUMNS).where(
            _REQUESTS.c.beneficiary_mbi.in_([bindparam(name) for name in names])
        )
        compiled = statement.compile(dialect=dialect)
        order = tuple(compiled.positiontup or ()) if compiled.positional else names
        assert sorted(order) == sorted(names)  # one parameter per beneficiary
        processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in _CONVERTED]
        found = by_count[count] = _HistoryRead(
            compiled.string, order, compiled.positional, tuple(p or _as_read for p in processors)
        )
    return found


@cache
def _mbi_names(count: int) -> tuple[str, ...]:
    return tuple(f"mbi_{i}" for i in range(count))


def _as_read(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _HistoryRow:
    """A request as frequency limits may count it, with what its effective status depends on."""

    id: int
    date_of_service: dt.date
    category: str
    policy_id: str
    facts: dict[str, Any]
    status: str
    deems_on_due: bool
    due_at: dt.datetime

    def as_of(self, now: dt.datetime) -> HistoryItem | None:
        """The history item at `now`, or None if the request is not affirmed then."""
        status = (
            Status.DEEMED_AFFIRMED.value
            if deemed_by_time(self.status, self.deems_on_due, self.due_at, now)
            else self.status
        )
        if status not in _AFFIRMED:
            return None
        return HistoryItem(self.date_of_service, self.category, self.policy_id, self.facts, status)


_AFFIRMED = frozenset(s.value for s in AFFIRMED_STATES)
_OPEN = frozenset(s.value for s in OPEN)


def _history_rows(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[_HistoryRow]]:
    """(beneficiary, category) -> the requests that may count as history, in one read for every key."""
    found: dict[tuple[str, str], list[_HistoryRow]] = {key: [] for key in keys}
    connection = read_connection(session)
    mbis = sorted({m for m, _ in keys})
    read = _history_read(connection.dialect, len(mbis))
    values = dict(zip(_mbi_names(len(mbis)), mbis, strict=True))
    params = [values[name] for name in read.names] if read.positional else values
    driver = connection.connection.driver_connection
    assert driver is not None  # a connection inside a transaction is always open
    date_of, facts_of, flag_of, instant_of = read.convert
    for rid, mbi, category, dos, policy, facts, status, deems, due in driver.execute(
        read.sql, params
    ).fetchall():
        deems = flag_of(deems)
        if (mbi, category) in found and (status in _AFFIRMED or (deems and status in _OPEN)):
            found[mbi, category].append(
                _HistoryRow(
                    rid, date_of(dos), category, policy or "", facts_of(facts), status, deems, instant_of(due)
                )
            )
    return found


def beneficiary_history(
    session: Session, *, mbi: str, category: str, now: dt.datetime, exclude_id: int | None = None
) -> list[HistoryItem]:
    """Earlier affirmed services of this beneficiary in this category (for frequency limits).

    Uses the effective status, so a request that time has deemed affirmed counts even before the sweep.
    """
    rows = _history_rows(session, {(mbi, category)})[mbi, category]
    return [item for row in rows if row.id != exclude_id and (item := row.as_of(now)) is not None]


# Values JSON stores as they are. Facts are mostly these, and skipping the call per value halves `_json_ready`.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v if type(v) in _JSON_SCALARS else _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) in _JSON_SCALARS else _json_ready(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Submission:
    """One request to submit: who sends it, the validated body with the JSON it came as, and when.

    `received_at` is None for "now" (every interactive caller); a bulk caller such as the simulator passes each
    item's own receipt time, which may not be later than the clock.
    """

    principal: Principal
    data: SubmitRequestIn
    raw: dict[str, Any]
    received_at: dt.datetime | None = None
    predecessor: PaRequest | None = None


@dataclass
class _Accepted:
    """A submission that passed every check that needs no database read, with its clock."""

    item: Submission
    valid: Validated
    at: dt.datetime
    clock_started_at: dt.datetime
    due_at: dt.datetime


def submit(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    data: SubmitRequestIn,
    raw: dict[str, Any],
    predecessor: PaRequest | None = None,
) -> PaRequest:
    """Validate, decide and store a request in the caller's transaction (the caller commits)."""
    result = submit_many(session, rt, [Submission(principal, data, raw, predecessor=predecessor)])[0]
    if isinstance(result, ApiError):
        raise result
    return result


def submit_many(session: Session, rt: Runtime, items: Sequence[Submission]) -> list[PaRequest | ApiError]:
    """Validate, decide and store submissions with one statement per table (the caller commits).

    Each item succeeds or fails alone: a refused one (4xx) is returned in its place and writes nothing. Items
    are decided in order, each at its own receipt time and seeing the ones before it (an earlier affirmed
    request of the same beneficiary in the batch counts toward frequency limits), so a batch stores what
    submitting the items one by one would.
    """
    now = rt.clock.now()
    refused: dict[int, ApiError] = {}
    accepted: list[tuple[int, _Accepted]] = []
    for index, item in enumerate(items):
        try:
            accepted.append((index, _accept(rt, item, now)))
        except ApiError as exc:
            refused[index] = exc
    stored: dict[int, PaRequest] = {}
    if accepted:
        _store(session, rt, accepted, stored)
    return [stored[i] if i in stored else refused[i] for i in range(len(items))]


def _store(
    session: Session, rt: Runtime, accepted: list[tuple[int, _Accepted]], stored: dict[int, PaRequest]
) -> None:
    """Decide and insert accepted submissions in order, filling `stored` (item index -> new request)."""
    profile = rt.profile
    # Read what the decisions need before adding anything, so the reads do not trigger flushes.
    history = _history_rows(session, {(a.item.data.beneficiary.mbi, a.valid.category) for _, a in accepted})
    gold = (
        gold_carded(session, [(a.item.data.provider.npi, a.valid.category, a.at) for _, a in accepted])
        if profile.gold_card.enabled
        else [False] * len(accepted)
    )
    ids = allocate_request_ids(session, len(accepted))
    line_ids, decision_ids = _child_ids(session, accepted)
    new: list[PaRequest] = []
    entries: list[audit.Entry] = []
    for (index, a), request_id, gold_carded_now in zip(accepted, ids, gold, strict=True):
        data, v, at = a.item.data, a.valid, a.at
        key = (data.beneficiary.mbi, v.category)
        request = _new_request(
            rt,
            a,
            request_id,
            line_ids,
            decision_ids,
            history=[h for row in history[key] if (h := row.as_of(at)) is not None],
            gold_carded=gold_carded_now,
        )
        # Later items of this batch see this one, as they would had it been stored before them.
        history[key].append(
            _HistoryRow(
                request.id, request.date_of_service, request.category, request.policy_id or "",
                request.clinical_facts, request.status, request.deems_on_due, request.due_at,
            )
        )  # fmt: skip
        new.append(request)
        stored[index] = request
        entries.append(
            audit.Entry(
                a.item.principal.actor, "request.submit", "request", request.id, request.status, at,
                {"utn": request.utn, "predecessor_id": request.predecessor_id},
            )
        )  # fmt: skip
    insert_adopted(session, new, "lines", "decisions")
    audit.append(session, entries)


def _accept(rt: Runtime, item: Submission, now: dt.datetime) -> _Accepted:
    """The checks that need no database: who may submit, when, and the body against catalog and policy."""
    principal, data = item.principal, item.data
    if principal.role is not Role.PROVIDER or principal.organization_id is None:
        raise Forbidden("only a provider organization's key may submit requests")
    at = received_instant(item.received_at, now)
    v = validate_submission(rt, data, now=at)
    state = rt.catalog.state(data.state)
    assert state is not None  # checked by validate_submission
    profile = rt.profile
    start = clock_start(profile, data.channel.value, at, data.mac_received_at)
    timeline = timeline_for(profile, data.urgency.value, data.channel.value)
    due = due_time(start, timeline, calendar_for(profile, state.timezone))
    return _Accepted(item, v, at, start, due)


def _new_request(
    rt: Runtime,
    a: _Accepted,
    request_id: int,
    line_ids: Iterator[int | None],
    decision_ids: Iterator[int | None],
    *,
    history: list[HistoryItem],
    gold_carded: bool,
) -> PaRequest:
    """Decide an accepted submission and build its request, lines and first decision (not yet stored)."""
    data, v, at, predecessor = a.item.data, a.valid, a.at, a.item.predecessor
    state = rt.catalog.state(data.state)
    assert state is not None  # checked by validate_submission
    profile = rt.profile
    utn = make_utn(
        prefix2=state.utn_prefix, part=utn_part_for_place_of_service(data.place_of_service), serial=request_id
    )
    result = decide(
        DecisionInput(
            request_key=utn,
            state=data.state,
            category=v.category,
            policy_id=v.policy_id,
            date_of_service=data.date_of_service,
            diagnosis_codes=tuple(data.diagnosis_codes),
            facts=v.facts,
            time_sensitive_attestation=data.time_sensitive_attestation,
        ),
        criteria=rt.criteria,
        profile=profile,
        history=history,
        gold_carded=gold_carded,
    )
    facts = _json_ready(v.facts)
    values: dict[str, Any] = {
        "id": request_id,
        "version": 1,
        "utn": utn,
        "state": data.state,
        "participant": state.participant,
        "jurisdiction": state.jurisdiction,
        "organization_id": a.item.principal.organization_id,
        "submitted_by_user_id": a.item.principal.user_id,
        "provider_npi": data.provider.npi,
        "beneficiary_mbi": data.beneficiary.mbi,
        "category": v.category,
        "policy_id": v.policy_id,
        "primary_code": v.primary_code,
        "place_of_service": data.place_of_service,
        "date_of_service": data.date_of_service,
        "urgency": data.urgency.value,
        "channel": data.channel.value,
        "received_at": at,
        "mac_received_at": data.mac_received_at,
        "clock_started_at": a.clock_started_at,
        "due_at": a.due_at,
        "deems_on_due": profile.deemed_approval.enabled,
        "status": Status.RECEIVED.value,
        "profile_id": profile.id,
        "profile_version": profile.version,
        "predecessor_id": predecessor.id if predecessor else None,
        "time_sensitive_attestation": data.time_sensitive_attestation,
        "diagnosis_codes": list(data.diagnosis_codes),
        "clinical_facts": facts,
        "criteria_results": [],
        "attachments": [att.model_dump(mode="json") for att in data.attachments],
        "raw_submission": a.item.raw,
        "notes": data.notes,
        "updated_at": at,
    }
    decision = _apply_pipeline(values, result, next(decision_ids), now=at, rt=rt)
    return assemble(PaRequest, values, lines=_lines(rt, data, v, line_ids), decisions=[decision])


# Built once, and run on the session's connection: Session.execute would add only its own overhead.
def allocate_request_ids(session: Session, count: int) -> list[int]:
    """Reserve `count` request ids (UTN serials) in one statement, before inserting."""
    return allocate_ids(session.connection(), table_of(PaRequest), count)


def _child_ids(
    session: Session, accepted: list[tuple[int, _Accepted]]
) -> tuple[Iterator[int | None], Iterator[int | None]]:
    """Ids for the new requests' lines and first decisions, reserved before they are built.

    The insert would reserve them anyway (one statement a table), but then set each on its object through the
    ORM's attribute events; and for a batch of one it inserted each row with a Core statement that reports its
    id, where a reservation and a driver insert cost less (a batch of one: 1.27 -> 1.13 ms of CPU a submission
    on SQLite; resubmissions often come one at a time). On PostgreSQL a single request's rows still report
    theirs: there a reservation is a round trip that the insert's RETURNING saves.
    """
    connection = session.connection()
    if len(accepted) == 1 and connection.dialect.name != "sqlite":
        return repeat(None), repeat(None)
    lines = sum(len(a.valid.line_roles) for _, a in accepted)
    return (
        iter(allocate_ids(connection, table_of(RequestLine), lines)),
        iter(allocate_ids(connection, table_of(Decision), len(accepted))),
    )


def _lines(rt: Runtime, data: SubmitRequestIn, v: Validated, ids: Iterator[int | None]) -> list[RequestLine]:
    """The lines the provider asked for; the catalog's associated services are derived when shown."""
    associated = {a.code: a for a in rt.catalog.associated_codes(v.category)}
    lines = []
    for seq, (i, role) in enumerate(v.line_roles):
        line = data.lines[i]
        kind = associated[line.code].kind if role == "associated" and line.code in associated else None
        lines.append(
            assemble(
                RequestLine,
                {
                    "id": next(ids),
                    "seq": seq,
                    "code": line.code,
                    "modifiers": list(line.modifiers),
                    "units": line.units,
                    "role": role,
                    "kind": kind,
                    "requested": True,
                },
            )
        )
    return lines


def line_views(rt: Runtime, request: PaRequest, status: str) -> list[dict[str, Any]]:
    """Every line of a request, with the catalog's associated services (anesthesia, imaging, facility) added.

    Associated services ride with the procedure, so they share its outcome, deemed approval included (R3).
    They are derived from the versioned catalog rather than stored, since they follow from the category.
    """
    views = [
        {
            "code": ln.code,
            "role": ln.role,
            "kind": ln.kind,
            "modifiers": ln.modifiers,
            "units": ln.units,
            "requested": ln.requested,
            "status": status,
        }
        for ln in request.lines
    ]
    present = {ln.code for ln in request.lines}
    for assoc in rt.catalog.associated_codes(request.category):
        if assoc.code not in present:
            views.append(
                {
                    "code": assoc.code,
                    "role": "associated",
                    "kind": assoc.kind,
                    "modifiers": [],
                    "units": 1,
                    "requested": False,
                    "status": status,
                    "confirmed": assoc.confirmed,
                }
            )
    return views


def _apply_pipeline(
    values: dict[str, Any], result: PipelineResult, decision_id: int | None, *, now: dt.datetime, rt: Runtime
) -> Decision:
    """Put the automated pipeline's outcome into a new request's column values; returns its first decision."""
    results = [r.to_dict() for r in result.criteria_results]
    values["criteria_results"] = results
    new_status = Status.PENDED.value if result.outcome == "pended" else result.outcome
    check_transition(values["status"], new_status)
    values["status"] = new_status
    values["exemption"] = result.exemption
    values["audit_sampled"] = result.audit_sampled
    if new_status in AFFIRMED_STATES:
        values["decision_kind"] = DECISION_KIND_BY_OUTCOME[new_status]
        values["decided_at"] = now
        values["valid_until"] = validity_end_in(rt, values["state"], now)
    kind = {"pended": "pend", "affirmed": "auto_affirm"}.get(result.outcome, result.outcome)
    return assemble(
        Decision,
        {
            "id": decision_id,
            "kind": kind,
            "resulting_status": new_status,
            "effective": True,
            "decided_at": now,
            "reasons": [],
            "note": result.reason,
            "profile_id": rt.profile.id,
            "profile_version": rt.profile.version,
            "criteria_results": results,
            "facts_used": dict(values["clinical_facts"]),
        },
    )


def validity_end(rt: Runtime, request: PaRequest, decided_at: dt.datetime) -> dt.date:
    """Last date of service an affirmation covers: the decision date (state time) plus the validity period."""
    return validity_end_in(rt, request.state, decided_at)


def validity_end_in(rt: Runtime, state_code: str, decided_at: dt.datetime) -> dt.date:
    """`validity_end` for a request known only by its state (claim matching reads plain rows)."""
    state = rt.catalog.state(state_code)
    zone = ZoneInfo(state.timezone if state else "UTC")
    return decided_at.astimezone(zone).date() + dt.timedelta(
        days=rt.profile.timelines.affirmation_validity_days
    )


# ---------------------------------------------------------------------------------------------- reads


def get(session: Session, rt: Runtime, *, principal: Principal, request_id: int) -> PaRequest:
    """Read one request (audited) or raise NotFound."""
    request = load_visible(session, rt, principal, request_id, action="request.read")
    audit.record(
        session,
        actor=principal.actor,
        action="request.read",
        object_type="request",
        object_id=request.id,
        outcome="ok",
        at=rt.clock.now(),
    )
    return request


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    items: Sequence[PaRequest]
    total: int
    limit: int
    offset: int


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The first instant of `day` in `zone`, in UTC."""
    return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)


def received_between(rt: Runtime, first: dt.date | None, last: dt.date | None) -> ColumnElement[bool]:
    """Received on a day from `first` to `last` inclusive, each day taken in the request's state's zone."""

    def bounds(zone: ZoneInfo) -> list[ColumnElement[bool]]:
        out = []
        if first:
            out.append(PaRequest.received_at >= _local_midnight(first, zone))
        if last:
            out.append(PaRequest.received_at < _local_midnight(last + dt.timedelta(days=1), zone))
        return out

    states = rt.catalog.states
    per_state = [
        and_(PaRequest.state == code, *bounds(ZoneInfo(info.timezone)))
        for code, info in sorted(states.items())
    ]
    # A state outside the catalog (none is accepted on submission) falls back to UTC days.
    per_state.append(and_(PaRequest.state.not_in(sorted(states)), *bounds(ZoneInfo("UTC"))))
    return or_(*per_state)


def list_requests(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    status: str | None = None,
    state: str | None = None,
    category: str | None = None,
    mbi: str | None = None,
    received_from: dt.date | None = None,
    received_to: dt.date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Requests in the caller's scope, newest first, filtered by effective status and more (audited)."""
    now = rt.clock.now()
    conditions: list[ColumnElement[bool]] = [scope_filter(principal)]
    if status:
        conditions.append(effective_status_sql(now) == status)
    if state:
        conditions.append(PaRequest.state == state.upper())
    if category:
        conditions.append(PaRequest.category == category)
    if mbi:
        conditions.append(PaRequest.beneficiary_mbi == mbi.upper())
    if received_from or received_to:
        conditions.append(received_between(rt, received_from, received_to))
    where = and_(*conditions)
    total = session.scalar(select(func.count()).select_from(PaRequest).where(where)) or 0
    items = session.scalars(
        select(PaRequest)
        .where(where)
        .order_by(PaRequest.received_at.desc(), PaRequest.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    audit.record(
        session,
        actor=principal.actor,
        action="request.list",
        object_type="request",
        object_id=None,
        outcome="ok",
        at=now,
        details={"ids": [r.id for r in items]},
    )
    return Page(items, total, limit, offset)


# ---------------------------------------------------------------------------------------------- changes


def withdraw(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    reason: str | None,
    expected_version: int | frozenset[int] | None = None,
) -> PaRequest:
    """The submitting organization withdraws (cancels) its request."""
    request = load_visible(session, rt, principal, request_id, action="request.withdraw", for_update=True)
    if principal.role is not Role.PROVIDER:
        raise Forbidden("only the submitting organization may withdraw a request")
    check_version(request, expected_version)
    now = rt.clock.now()
    materialize_deemed(session, rt, request, now=now)
    try:
        check_transition(request.status, Status.WITHDRAWN.value)
    except Exception as exc:
        raise Conflict(str(exc)) from exc
    request.status = Status.WITHDRAWN.value
    request.updated_at = now
    events.outcome_changed(session, rt, request, now=now, via="withdrawal", notify=False)
    request.decisions.append(
        Decision(
            kind="withdrawn",
            resulting_status=request.status,
            effective=True,
            decided_at=now,
            actor_user_id=principal.user_id,
            reasons=[],
            note=reason,
            profile_id=rt.profile.id,
            profile_version=rt.profile.version,
            criteria_results=[],
            facts_used={},
        )
    )
    audit.record(
        session,
        actor=principal.actor,
        action="request.withdraw",
        object_type="request",
        object_id=request.id,
        outcome="withdrawn",
        at=now,
    )
    return request


@dataclass(frozen=True)
class Resubmission:
    """A request to submit again, with the changes (usually added clinical facts), and when (None: now)."""

    principal: Principal
    request_id: int
    changes: dict[str, Any]
    received_at: dt.datetime | None = None


def resubmit(
    session: Session, rt: Runtime, *, principal: Principal, request_id: int, changes: dict[str, Any]
) -> PaRequest:
    """Submit again after a non-affirmation (or withdrawal), with added facts; links to the original."""
    result = resubmit_many(session, rt, [Resubmission(principal, request_id, changes)])[0]
    if isinstance(result, ApiError):
        raise result
    return result


def resubmit_many(session: Session, rt: Runtime, items: Sequence[Resubmission]) -> list[PaRequest | ApiError]:
    """Resubmit several requests as one `submit_many` batch; each succeeds or fails (4xx in its place) alone."""
    now = rt.clock.now()
    prepared: list[Submission | ApiError] = []
    taken: set[int] = set()
    for item in items:
        try:
            if item.request_id in taken:
                raise Conflict(f"request {item.request_id} is resubmitted earlier in this batch")
            prepared.append(_resubmission(session, rt, item, now))
            taken.add(item.request_id)
        except ApiError as exc:
            prepared.append(exc)
    stored = iter(submit_many(session, rt, [p for p in prepared if isinstance(p, Submission)]))
    return [next(stored) if isinstance(p, Submission) else p for p in prepared]


# Built once: the request that resubmitted a given one, if any (only the latest of a chain may be resubmitted).
_SUCCESSOR = select(_REQUESTS.c.id).where(_REQUESTS.c.predecessor_id == bindparam("id")).limit(1)


def _resubmission(session: Session, rt: Runtime, item: Resubmission, now: dt.datetime) -> Submission:
    """The submission that resubmits one request: its original body merged with the changes."""
    principal = item.principal
    original = _original(session, rt, principal, item.request_id)
    if principal.role is not Role.PROVIDER:
        raise Forbidden("only the submitting organization may resubmit")
    at = received_instant(item.received_at, now)
    status = effective_status(original, at)
    if status not in (Status.NON_AFFIRMED.value, Status.WITHDRAWN.value):
        raise Conflict(f"only a non-affirmed or withdrawn request can be resubmitted; this one is {status}")
    changes = dict(item.changes)
    merged = dict(original.raw_submission)
    facts = dict(merged.get("clinical_facts") or {})
    facts.update(changes.pop("clinical_facts", {}) or {})
    merged.update(changes)
    merged["clinical_facts"] = facts
    successor = read_connection(session).execute(_SUCCESSOR, {"id": original.id}).scalar()
    if successor is not None:
        raise Conflict(
            f"request {original.id} was already resubmitted as request {successor}; "
            "resubmit that one if it is non-affirmed or withdrawn"
        )
    try:
        data = SubmitRequestIn.model_validate(merged)
    except ValidationError as exc:
        fields = [
            FieldError(field_path(err["loc"]), str(err["msg"]).removeprefix("Value error, "))
            for err in exc.errors()
        ]
        raise Invalid("; ".join(f"{f.field}: {f.message}" for f in fields), fields) from exc
    return Submission(principal, data, merged, received_at=item.received_at, predecessor=original)


# Built once: every column of a request, for `_original`.
_REQUEST_ROW = select(_REQUESTS).where(_REQUESTS.c.id == bindparam("id"))


def _original(session: Session, rt: Runtime, principal: Principal, request_id: int) -> PaRequest:
    """The request to resubmit, as `load_visible` without children gives it: lines and decisions load on access.

    A Core read made an ORM object (as reviews' `_lock_request` does): the ORM statement, its loader options'
    cache keys and its result handling cost more than the read (390 -> 155 us of CPU on SQLite, loaded machine).
    """
    if not in_session(session, PaRequest, request_id):
        row = read_connection(session).execute(_REQUEST_ROW, {"id": request_id}).one_or_none()
        if row is not None and in_scope(principal, row):
            return adopt_loaded(session, PaRequest, row)
    # The session's own object, or a refusal to audit: load_visible hands back the one, records the other.
    return load_visible(session, rt, principal, request_id, action="request.resubmit", with_children=False)


def check_version(request: PaRequest, expected: int | frozenset[int] | None) -> None:
    """Optimistic concurrency: refuse a change made against another version than the one (or ones, from an
    If-Match list) the caller read; None checks nothing."""
    if expected is None:
        return
    wanted = expected if isinstance(expected, frozenset) else frozenset([expected])
    if request.version not in wanted:
        sent = ", ".join(str(v) for v in sorted(wanted)) or "no version of it"
        raise Conflict(
            f"request {request.id} changed (version {request.version}, you sent {sent}); reload it"
        )


def materialize_deemed(session: Session, rt: Runtime, request: PaRequest, *, now: dt.datetime) -> bool:
    """Store a deemed approval that time has already made true; idempotent. True if it changed the row."""
    if not is_deemed(request, now):
        return False
    status = Status.DEEMED_AFFIRMED.value
    changes = {
        "status": status,
        "decision_kind": "deemed",
        "decided_at": request.due_at,
        "valid_until": validity_end(rt, request, request.due_at),
        "updated_at": now,
    }
    if "decisions" in request.__dict__:
        # Loaded (the caller read them): through the ORM, so the flush writes the request and appends the
        # decision to the collection in order.
        for key, value in changes.items():
            setattr(request, key, value)
    else:
        # The sweep's requests (it no longer loads their decisions) and a decision on a past-due request: one
        # versioned UPDATE and one insert. Loading a sweep batch's decisions for one ORM flush cost more than it
        # saved, since the flush still sent a versioned UPDATE per request (asa-reform, 1,000 requests: 8.18 ->
        # 7.67 G instructions; bench/bench_sweep.py, 3,000 due, SQLite 1.69-1.74 -> 1.22-1.60 s, PostgreSQL
        # 3.0-4.3 s either way).
        store_changes(session, request, changes)
    add_decision(
        session,
        request,
        {
            "kind": "deemed",
            "dedupe": "deemed",
            "resulting_status": status,
            "effective": True,
            "decided_at": request.due_at,
            "reasons": [],
            "note": "no decision by the due time: deemed affirmed, with its associated services",
            "profile_id": request.profile_id,
            "profile_version": request.profile_version,
            "criteria_results": request.criteria_results,
            "facts_used": {},
        },
    )
    audit.record(
        session,
        actor=audit.SYSTEM,
        action="request.deemed",
        object_type="request",
        object_id=request.id,
        outcome=status,
        at=now,
        details={"due_at": request.due_at},
    )
    events.outcome_changed(session, rt, request, now=now, via="deemed")
    return True


# Built once. The columns to set come from the parameters; the version condition is the ORM's own
# optimistic check (`version_id_col`).
_UPDATE_REQUEST = update(_REQUESTS).where(
    _REQUESTS.c.id == bindparam("_id"), _REQUESTS.c.version == bindparam("_version")
)


def store_changes(session: Session, request: PaRequest, changes: dict[str, Any]) -> None:
    """Write changed columns of a loaded request and bump its version, as the ORM's flush would, with one
    UPDATE; the object then holds them as committed, so nothing is left for the unit of work to flush."""
    if inspect(request).modified:
        # Changes made through the ORM go first, as the flush would have written them before ours.
        session.flush()
    version = request.version + 1
    params = {**changes, "version": version, "_id": request.id, "_version": request.version}
    # On SQLite straight on the driver (store.base.run_on_driver): a decision's UPDATE 332k -> 284k
    # instructions (callgrind).
    result = run_on_driver(session.connection(), _UPDATE_REQUEST, params)
    if result.rowcount != 1:
        # What the ORM raises when a versioned UPDATE matches no row (the row changed since it was read).
        raise StaleDataError(
            f"UPDATE statement on table 'pa_requests' expected to update 1 row(s); {result.rowcount} were matched."
        )
    for key, value in changes.items():
        set_committed_value(request, key, value)
    set_committed_value(request, "version", version)
    note_updated(session, request)


_DECISIONS = table_of(Decision)


def add_decision(session: Session, request: PaRequest, row: dict[str, Any]) -> None:
    """Record a decision on the request (column values in `row`, each column with a default included): one
    driver-level insert, unless its decisions are already loaded."""
    if "decisions" not in request.__dict__:
        # Not loaded: nothing in memory to keep in step; whoever reads them later loads this row with the rest.
        # store.base.insert_rows, without an id (the database gives the one a Core insert would): a clinician
        # decision's row 346k -> 208k instructions against Connection.execute (callgrind, SQLite).
        insert_rows(session.connection(), _DECISIONS, [{**row, "request_id": request.id}])
        return
    if inspect(request).modified:
        # Loaded, and the request has changes for the flush to write (the sweep changes a batch's requests and
        # flushes them once): append through the ORM so the flush inserts the rows in the order they were made.
        request.decisions.append(Decision(**row))
        return
    # Loaded, and nothing of the request left to flush (a decision on a request the caller read with its
    # decisions, or that the simulator's sweep deemed): inserted now and added to the collection as stored. The
    # unit of work's flush of that one new object cost more than the rest of the decision: 2.76M -> 0.56M
    # instructions with the flush (callgrind, SQLite). Counted as changed, so that a rollback expires the
    # collection.
    decision = assemble(Decision, {**row, "request_id": request.id})
    insert_adopted(session, decision)
    collection_adapter(request.decisions).append_without_event(decision)
    note_updated(session, request)


# ---------------------------------------------------------------------------------------------- views


def request_view(
    rt: Runtime, request: PaRequest, *, now: dt.datetime, include_raw: bool = False
) -> dict[str, Any]:
    """The JSON representation every interface shows, with the effective (time-aware) status."""
    status = effective_status(request, now)
    deemed_now = status == Status.DEEMED_AFFIRMED.value and request.status in OPEN
    decided_at = request.due_at if deemed_now else request.decided_at
    valid_until = validity_end(rt, request, request.due_at) if deemed_now else request.valid_until
    decision_kind = "deemed" if deemed_now else request.decision_kind
    undecided = status in OPEN
    view: dict[str, Any] = {
        "id": request.id,
        "utn": request.utn,
        "status": status,
        "decision_kind": decision_kind,
        "version": request.version,
        "state": request.state,
        "participant": request.participant,
        "jurisdiction": request.jurisdiction,
        "category": request.category,
        "policy_id": request.policy_id,
        "organization_id": request.organization_id,
        "provider_npi": request.provider_npi,
        "beneficiary_mbi": request.beneficiary_mbi,
        "place_of_service": request.place_of_service,
        "date_of_service": request.date_of_service.isoformat(),
        "urgency": request.urgency,
        "channel": request.channel,
        "received_at": _iso(request.received_at),
        "mac_received_at": _iso(request.mac_received_at),
        "clock_started_at": _iso(request.clock_started_at),
        "due_at": _iso(request.due_at),
        "overdue": undecided and now >= request.due_at,
        "decided_at": _iso(decided_at),
        "valid_until": valid_until.isoformat() if valid_until else None,
        "exemption": request.exemption,
        "predecessor_id": request.predecessor_id,
        "profile": {"id": request.profile_id, "version": request.profile_version},
        "diagnosis_codes": request.diagnosis_codes,
        "clinical_facts": request.clinical_facts,
        "lines": line_views(rt, request, status),
        "criteria_results": request.criteria_results,
        "decisions": [decision_view(d) for d in request.decisions],
    }
    if deemed_now:
        view["decisions"].append(
            {
                "kind": "deemed",
                "resulting_status": status,
                "effective": True,
                "decided_at": _iso(request.due_at),
                "note": "no decision by the due time: deemed affirmed, with its associated services",
                "reasons": [],
                "reviewer": None,
                "profile": view["profile"],
            }
        )
    if include_raw:
        view["raw_submission"] = request.raw_submission
    return view


def decision_view(d: Decision) -> dict[str, Any]:
    """JSON for one decision event."""
    reviewer = None
    if d.reviewer_npi or d.reviewer_name:
        reviewer = {
            "name": d.reviewer_name,
            "npi": d.reviewer_npi,
            "specialty": d.reviewer_specialty,
            "credentials": d.reviewer_credentials,
        }
    return {
        "kind": d.kind,
        "resulting_status": d.resulting_status,
        "effective": d.effective,
        "decided_at": _iso(d.decided_at),
        "note": d.note,
        "reasons": d.reasons,
        "reviewer": reviewer,
        "profile": {"id": d.profile_id, "version": d.profile_version},
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None
