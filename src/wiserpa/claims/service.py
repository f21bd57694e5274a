"""Claims: intake, matching lines to authorizations, pre-payment review, appeals and expenditure figures.

Matching rules (docs/claims.md has the full table):

- A WISeR line (primary or add-on code that needs PA here) matches an authorization for the same beneficiary
  and code whose window covers the date of service: by UTN when the line carries one, else by beneficiary and
  code.
  A UTN issued for another beneficiary is refused (422 naming ``lines[i].utn``): nothing is written.
- An associated line (anesthesia, imaging, facility, ancillary procedure) matches the primary procedure's
  authorization by beneficiary + date of service + the catalog link, with no UTN, whoever bills it.
- The authorization's status is the *effective* one (deemed-on-read), so no sweep has to have run.
- Lines without an authorization go to pre-payment review; one review per service episode (beneficiary,
  category, date of service) so the facility, professional and anesthesia lines of one procedure share it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, and_, bindparam, or_, select
from sqlalchemy.orm import Session, load_only
from sqlalchemy.sql.elements import ColumnElement

from wiserpa.audit import service as audit
from wiserpa.audit.models import AuditHead
from wiserpa.auth.models import Role
from wiserpa.auth.scope import load_in_scope, scope_condition
from wiserpa.auth.service import Principal
from wiserpa.claims.models import Claim, ClaimLine, PrepaymentReview
from wiserpa.claims.schemas import ClaimLineIn, DocumentsIn, LineOutcome, SubmitClaimIn
from wiserpa.errors import ApiError, Conflict, FieldError, Forbidden, Invalid, NotFound
from wiserpa.policy.catalog import Catalog
from wiserpa.policy.clock import due_time, received_instant
from wiserpa.policy.criteria import coerce_facts, evaluate, requirements, validate_facts
from wiserpa.policy.decide import DecisionInput, decide
from wiserpa.policy.profiles import calendar_for
from wiserpa.requests.models import Decision, PaRequest, RequestLine
from wiserpa.requests.service import beneficiary_history, validity_end_in
from wiserpa.requests.status import AFFIRMED_STATES, OPEN, Status, deemed_by_time
from wiserpa.runtime import Runtime
from wiserpa.store.base import (
    adopt_loaded,
    allocate_ids,
    assemble,
    in_session,
    insert_adopted,
    insert_rows,
    read_connection,
    table_of,
)

# The plain strings of the statuses and outcomes matching compares and writes for every candidate and line:
# an enum member's `.value` is a descriptor call (about 30,000 of them for 3,556 claims, 2 % of the time).
_DEEMED_AFFIRMED, _EXEMPT_AFFIRMED = Status.DEEMED_AFFIRMED.value, Status.EXEMPT_AFFIRMED.value
_NON_AFFIRMED, _WITHDRAWN = Status.NON_AFFIRMED.value, Status.WITHDRAWN.value
_PAYABLE, _DENIED = LineOutcome.PAYABLE.value, LineOutcome.DENIED.value
_SUSPENDED, _NOT_SUBJECT = LineOutcome.SUSPENDED.value, LineOutcome.NOT_SUBJECT.value

# ---------------------------------------------------------------------------------------------- fee schedule


@dataclass(frozen=True)
class Fee:
    """One code's national allowed amounts (cents); None when the file gives none for that claim type."""

    code: str
    professional_cents: int | None
    institutional_cents: int | None
    per: str  # unit | case
    basis: str


@dataclass(frozen=True)
class FeeSchedule:
    """Allowed amounts by code, loaded from a CSV file."""

    source: str
    fees: Mapping[str, Fee]

    def allowed_cents(self, code: str, claim_type: str, units: int) -> int | None:
        """The line's allowed amount in cents, or None when the code is not priced for this claim type."""
        fee = self.fees.get(code)
        if fee is None:
            return None
        amount = fee.institutional_cents if claim_type == "institutional" else fee.professional_cents
        if amount is None:
            return None
        # Anesthesia units are minutes on a claim; the file prices a typical case instead.
        return amount if fee.per == "case" else amount * units


def _cents(text: str, where: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return round(float(text) * 100)
    except ValueError as exc:
        raise ValueError(f"{where}: {text!r} is not an amount in dollars") from exc


def parse_fee_schedule(text: str, source: str) -> FeeSchedule:
    """Parse a fee-schedule CSV (header: code, professional_usd, institutional_usd, per, basis, ...)."""
    reader = csv.DictReader(io.StringIO(text))
    need = {"code", "professional_usd", "institutional_usd", "per"}
    missing = need - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{source}: fee schedule lacks column(s) {', '.join(sorted(missing))}")
    fees: dict[str, Fee] = {}
    for n, row in enumerate(reader, start=2):
        code = (row["code"] or "").strip().upper()
        if not code or code.startswith("#"):
            continue
        per = (row["per"] or "unit").strip()
        if per not in ("unit", "case"):
            raise ValueError(f"{source}:{n}: per must be unit or case")
        fees[code] = Fee(
            code,
            _cents(row["professional_usd"] or "", f"{source}:{n}"),
            _cents(row["institutional_usd"] or "", f"{source}:{n}"),
            per,
            (row.get("basis") or "").strip(),
        )
    return FeeSchedule(source, fees)


@lru_cache(maxsize=8)
def _load_fee_schedule(path: str | None) -> FeeSchedule:
    if path is None:
        res = files("wiserpa").joinpath("data", "fees", "2026-national.csv")
        return parse_fee_schedule(res.read_text(encoding="utf-8"), "wiserpa/data/fees/2026-national.csv")
    return parse_fee_schedule(Path(path).read_text(encoding="utf-8"), path)


def load_fee_schedule(path: str | Path | None = None) -> FeeSchedule:
    """A fee schedule from a CSV path; without one, the packaged (approximate) 2026 national table."""
    return _load_fee_schedule(str(path) if path is not None else None)


def configured_fee_schedule(rt: Runtime) -> FeeSchedule:
    """The fee schedule in force: settings.fee_schedule (WISERPA_FEE_SCHEDULE), else the packaged one."""
    return load_fee_schedule(rt.settings.fee_schedule)


# ---------------------------------------------------------------------------------------------- scope


def claim_scope(principal: Principal) -> ColumnElement[bool]:
    """SQL condition selecting the claims this principal may see."""
    return scope_condition(principal, Claim)


def load_claim(
    session: Session,
    rt: Runtime,
    principal: Principal,
    claim_id: int,
    *,
    action: str,
    for_update: bool = False,
) -> Claim:
    """A claim the principal may see, or NotFound (another organization's claim is a 404)."""
    return load_in_scope(
        session, rt, principal, Claim, claim_id, object_type="claim", action=action, for_update=for_update
    )


# ------------------------------------------------------------------------------------------- authorizations


@dataclass(frozen=True, slots=True)
class Authorization:
    """A request as claim matching reads it: the columns its effective status and a line's outcome need."""

    id: int
    utn: str | None
    state: str
    participant: str
    beneficiary_mbi: str
    category: str
    primary_code: str
    date_of_service: dt.date
    received_at: dt.datetime
    due_at: dt.datetime
    deems_on_due: bool
    status: str
    decision_kind: str | None
    decided_at: dt.datetime | None
    valid_until: dt.date | None
    predecessor_id: int | None


@dataclass(frozen=True)
class AuthState:
    """An authorization as time makes it now: effective status and the dates of service it covers."""

    request: Authorization
    status: str
    decision_kind: str | None
    valid_from: dt.date
    valid_until: dt.date | None

    def covers(self, dos: dt.date) -> bool:
        """True when the affirmation is in force on the date of service."""
        return (
            self.status in AFFIRMED_STATES
            and self.valid_until is not None
            and self.valid_from <= dos <= self.valid_until
        )


def _zone(rt: Runtime, state: str) -> ZoneInfo:
    return _catalog_zone(rt.catalog, state)


@lru_cache(maxsize=64)
def _catalog_zone(catalog: Catalog, state: str) -> ZoneInfo:
    # Once per catalog and state: matching asks for every candidate authorization of every line.
    info = catalog.state(state)
    return ZoneInfo(info.timezone if info else "UTC")


def auth_state(rt: Runtime, request: Authorization, now: dt.datetime) -> AuthState:
    """The effective state of an authorization (deemed-on-read included, no sweep needed)."""
    deemed_now = deemed_by_time(request.status, request.deems_on_due, request.due_at, now)
    status = _DEEMED_AFFIRMED if deemed_now else request.status
    valid_until = validity_end_in(rt, request.state, request.due_at) if deemed_now else request.valid_until
    # The window opens when the request was received: a deemed approval covers a service the provider could
    # not postpone while waiting, so the decision date is not the lower bound.
    valid_from = request.received_at.astimezone(_zone(rt, request.state)).date()
    if status == _NON_AFFIRMED:
        valid_until = None
    kind = "deemed" if deemed_now else request.decision_kind
    return AuthState(request, status, kind, valid_from, valid_until)


# The matching read, built once: every request of the batch's beneficiaries (or named by a UTN) with its line
# codes, one row per line. Only the columns matching needs, as plain rows in one statement: claims never
# change requests, and ORM objects plus a second read for the codes cost more than the matching itself
# (simulator, with the connection read below: 31 -> 18 us a claim in batches of 30, 244 -> 84 us alone).
_CANDIDATES = (
    select(*(getattr(PaRequest, f.name) for f in fields(Authorization)), RequestLine.code)
    .outerjoin(RequestLine, RequestLine.request_id == PaRequest.id)
    .where(
        or_(
            PaRequest.beneficiary_mbi.in_(bindparam("mbis", expanding=True)),
            PaRequest.utn.in_(bindparam("utns", expanding=True)),
        )
    )
    .order_by(PaRequest.id)
)
# The latest effective non-affirmation of a request, for a denied line's reasons (few lines need it).
_DENIAL = (
    select(Decision.kind, Decision.decided_at, Decision.reviewer_npi, Decision.reasons, Decision.note)
    .where(
        Decision.request_id == bindparam("id"),
        Decision.effective.is_(True),
        Decision.resulting_status == _NON_AFFIRMED,
    )
    .order_by(Decision.id.desc())
    .limit(1)
)


class _Authorizations:
    """The requests claim lines may match, read once for a batch of claims (claims never change them)."""

    def __init__(self, session: Session, claims: Sequence[SubmitClaimIn]) -> None:
        mbis = sorted({c.beneficiary.mbi for c in claims})
        utns = sorted({ln.utn for c in claims for ln in c.lines if ln.utn is not None})
        self.by_utn: dict[str | None, Authorization] = {}
        self.by_mbi: dict[str, list[Authorization]] = {}
        self.codes: dict[int, set[str]] = {}
        self._denials: dict[int, Row[Any] | None] = {}
        # The session's connection (after the flush Session.execute would do), not Session.execute: a read of
        # columns needs none of the ORM's statement handling, which cost more than the read itself (a batch of
        # one claim: 190 -> 80 us).
        self.connection = read_connection(session)
        rows = self.connection.execute(_CANDIDATES, {"mbis": mbis, "utns": utns})
        for *values, code in rows:
            codes = self.codes.get(values[0])
            if codes is None:
                auth = Authorization(*values)
                codes = self.codes[auth.id] = set()
                self.by_utn[auth.utn] = auth
                self.by_mbi.setdefault(auth.beneficiary_mbi, []).append(auth)
            if code is not None:
                codes.add(code)
        # A non-affirmation a resubmission replaced (one not withdrawn) no longer decides a claim: the
        # resubmission does, once it matches, and until it is decided the line waits for it.
        self.superseded = frozenset(
            a.predecessor_id
            for found in self.by_mbi.values()
            for a in found
            if a.predecessor_id is not None and a.status != _WITHDRAWN
        )

    def for_code(self, *, mbi: str, category: str, code: str) -> list[Authorization]:
        """Authorizations of this beneficiary in the category whose request lists the code."""
        return [r for r in self.by_mbi.get(mbi, ()) if r.category == category and code in self.codes[r.id]]

    def for_categories(self, *, mbi: str, categories: Sequence[str]) -> list[Authorization]:
        """Authorizations of this beneficiary in the categories an associated code belongs to."""
        return [r for r in self.by_mbi.get(mbi, ()) if r.category in categories]

    def denial_reasons(self, request: Authorization) -> list[dict[str, Any]]:
        """The non-affirmation's cited reasons, with who decided and when (its decision read once a batch)."""
        if request.id not in self._denials:
            self._denials[request.id] = self.connection.execute(_DENIAL, {"id": request.id}).first()
        d = self._denials[request.id]
        if d is None:
            return [{"utn": request.utn}]
        return [
            {
                **r,
                "utn": request.utn,
                "decided_at": _iso(d.decided_at),
                "reviewer_npi": d.reviewer_npi,
                "decision": d.kind,
            }
            for r in d.reasons
        ] or [{"utn": request.utn, "decided_at": _iso(d.decided_at), "decision": d.kind, "note": d.note}]


# Lines already billed for the batch's beneficiaries, for the exact-duplicate edit (`_Billed`).
_BILLED = (
    select(
        Claim.claim_type,
        Claim.billing_npi,
        Claim.beneficiary_mbi,
        ClaimLine.code,
        ClaimLine.modifiers,
        ClaimLine.date_of_service,
        Claim.id,
        ClaimLine.seq,
    )
    .join(ClaimLine, ClaimLine.claim_id == Claim.id)
    .where(Claim.beneficiary_mbi.in_(bindparam("mbis", expanding=True)))
)
# Repeat procedure by the same (76) or another (77) physician: a second identical service billed on purpose.
REPEAT_MODIFIERS = frozenset({"76", "77"})
_BilledKey = tuple[str, str, str, str, dt.date, tuple[str, ...]]


class _Billed:
    """Services already billed for a batch's beneficiaries: Medicare's exact-duplicate edit.

    A line with the same claim type, billing provider, beneficiary, code, modifiers and date of service as a line
    billed before (or earlier on the same claim) is a duplicate, unless modifier 76 or 77 marks a repeat procedure:
    paying it again would pay the service twice and count it twice in every figure. A retry of one submission
    is not a duplicate: its Idempotency-Key replays the first answer before any of this runs.
    """

    def __init__(self, connection: Any, claims: Sequence[SubmitClaimIn]) -> None:
        mbis = sorted({c.beneficiary.mbi for c in claims})
        self.where: dict[_BilledKey, str] = {}
        for claim_type, npi, mbi, code, modifiers, dos, claim_id, seq in connection.execute(
            _BILLED, {"mbis": mbis}
        ):
            key = (claim_type, npi, mbi, code, dos, tuple(sorted(modifiers)))
            self.where.setdefault(key, f"line {seq} of claim {claim_id}")

    def check(self, data: SubmitClaimIn) -> None:
        """Raise 409 naming every line of `data` that duplicates a service already billed."""
        errors: list[FieldError] = []
        own: dict[_BilledKey, str] = {}
        for i, line in enumerate(data.lines):
            if REPEAT_MODIFIERS.intersection(line.modifiers):
                continue
            key = _billed_key(data, line)
            first = self.where.get(key) or own.get(key)
            if first is not None:
                errors.append(
                    FieldError(
                        f"lines[{i}]",
                        f"duplicates {first}: same billing provider, beneficiary, code, modifiers and date of "
                        "service (a repeat procedure carries modifier 76 or 77)",
                    )
                )
            own.setdefault(key, f"lines[{i}] of this claim")
        if errors:
            raise Conflict("; ".join(f"{e.field}: {e.message}" for e in errors), errors)

    def add(self, data: SubmitClaimIn) -> None:
        """Count an accepted claim's lines as billed, for the claims after it in the batch."""
        for i, line in enumerate(data.lines):
            key = _billed_key(data, line)
            self.where.setdefault(key, f"lines[{i}] of a claim submitted with it")


def _billed_key(data: SubmitClaimIn, line: ClaimLineIn) -> _BilledKey:
    modifiers = tuple(sorted(line.modifiers))
    return (data.claim_type.value, data.billing_provider.npi, data.beneficiary.mbi, line.code,
            line.date_of_service, modifiers)  # fmt: skip


def authorization_pays(rt: Runtime, st: AuthState, *, role: str, dos: dt.date) -> bool:
    """True when this authorization, as time makes it now, pays a line of this role on this date of service.

    An associated line of a primary affirmed by time or exemption is paid only when the profile says so.
    """
    if not st.covers(dos):
        return False
    if role != "associated":
        return True
    by_time_or_exemption = st.decision_kind in ("deemed", "exempt") or st.status in (
        _DEEMED_AFFIRMED,
        _EXEMPT_AFFIRMED,
    )
    return not by_time_or_exemption or rt.profile.claims.associated_payable_when_primary_deemed_or_exempt


@dataclass(frozen=True)
class Match:
    """The best authorization for a line, and what kind of match it is."""

    kind: str  # affirmed | non_affirmed | pending | expired | none
    state: AuthState | None = None


def best_match(
    states: Iterable[AuthState],
    dos: dt.date,
    validity_days: int,
    *,
    superseded: frozenset[int] = frozenset(),
    zone: dt.tzinfo = dt.UTC,
    follows_procedure: bool = False,
) -> Match:
    """Choose among candidate authorizations: in force > non-affirmed > still open > expired > nothing.

    A non-affirmation in `superseded` (a resubmission replaced it) is not a candidate; `zone` is the state's
    time zone, in which a non-affirmation's decision date is read. `follows_procedure` (an associated line):
    an undecided request for this very date of service ranks before a non-affirmation.
    """
    ranked: dict[str, list[AuthState]] = {"affirmed": [], "non_affirmed": [], "pending": [], "expired": []}
    for st in states:
        if st.request.status == _WITHDRAWN or dos < st.valid_from:
            continue
        if st.covers(dos):
            ranked["affirmed"].append(st)
        elif st.status == _NON_AFFIRMED:
            if st.request.id in superseded:
                continue
            decided = (st.request.decided_at or st.request.received_at).astimezone(zone)
            if dos <= decided.date() + dt.timedelta(days=validity_days):
                ranked["non_affirmed"].append(st)
        elif st.status in OPEN:
            ranked["pending"].append(st)
        elif st.status in AFFIRMED_STATES:
            ranked["expired"].append(st)
    if follows_procedure and ranked["non_affirmed"]:
        # An associated line cannot say which of the day's procedures it served: while one requested for this
        # date of service is undecided (and may yet be affirmed, or deemed), it waits rather than being denied.
        same_day = [st for st in ranked["pending"] if st.request.date_of_service == dos]
        if same_day:
            ranked["non_affirmed"], ranked["pending"] = [], same_day
    for kind, found in ranked.items():
        if found:
            # The service's own request (same date of service) first, then the most recent.
            found.sort(key=lambda s: (s.request.date_of_service == dos, s.request.received_at), reverse=True)
            return Match(kind, found[0])
    return Match("none")


# ---------------------------------------------------------------------------------------------- intake


@dataclass
class LinePlan:
    """What will be written for one line; computed before the first write."""

    index: int
    data: ClaimLineIn
    role: str
    kind: str | None
    category: str | None
    outcome: str
    reason: str
    reasons: list[dict[str, Any]] = field(default_factory=list)
    auth: AuthState | None = None
    matched_by: str | None = None
    participant: str | None = None
    needs_review: bool = False


def _line_context(
    rt: Runtime, data: SubmitClaimIn, i: int, line: ClaimLineIn, codes: Sequence[str]
) -> tuple[str, str | None, str | None, str | None]:
    """(role, kind, category, not-subject reason) for one line from the catalog alone."""
    return _catalog_context(
        rt.catalog,
        line.code,
        data.state,
        line.date_of_service,
        line.place_of_service,
        data.coverage,
        line.revenue_code,
        tuple(line.modifiers),
        tuple(data.diagnosis_codes),
        tuple(c for j, c in enumerate(codes) if j != i),
    )


# The catalog's answer depends on nothing but these arguments (a catalog never changes once loaded), and a
# simulated year bills the same few codes, places and diagnoses over and over: each new claim line's
# requires_pa (twice for an associated one) cost more than the rest of its matching.
@lru_cache(maxsize=8192)
def _catalog_context(
    catalog: Catalog,
    code: str,
    state: str,
    dos: dt.date,
    place_of_service: str,
    coverage: str,
    revenue_code: str | None,
    modifiers: tuple[str, ...],
    diagnosis_codes: tuple[str, ...],
    other_codes: tuple[str, ...],
) -> tuple[str, str | None, str | None, str | None]:
    answer = catalog.requires_pa(
        code=code,
        state=state,
        date_of_service=dos,
        place_of_service=place_of_service,
        coverage=coverage,
        revenue_code=revenue_code,
        modifiers=modifiers,
        diagnosis_codes=diagnosis_codes,
        other_codes=other_codes,
    )
    if answer.required and answer.category:
        info = catalog.code_info(code)
        return ("add_on" if info and info.add_on else "primary"), None, answer.category, None
    if answer.reason_code == "associated_service":
        cats = catalog.categories_for_associated(code)
        excluded = _associated_exclusion(
            catalog, cats[0], state, dos, place_of_service, coverage, revenue_code, modifiers
        )
        if excluded is not None:
            return "other", None, cats[0], excluded
        kind = next((a.kind for a in catalog.associated_codes(cats[0]) if a.code == code), None)
        return "associated", kind, cats[0], None
    return "other", None, answer.category, answer.reason


def _associated_exclusion(
    catalog: Catalog,
    category: str,
    state: str,
    dos: dt.date,
    place_of_service: str,
    coverage: str,
    revenue_code: str | None,
    modifiers: tuple[str, ...],
) -> str | None:
    """Why an associated line is outside WISeR (the exclusions its procedure would meet), or None.

    The catalog answers "associated" before it looks at coverage, emergency, inpatient or place of service, so
    the line's context is put to the category's procedure: an anesthesia line of a Medicare Advantage, emergency
    or inpatient service is no more subject to WISeR than that service.
    """
    cat = catalog.categories.get(category)
    # A procedure code already in effect on the date of service, so the probe reaches the exclusions.
    code = next(
        (
            c
            for c in (cat.codes if cat else ())
            if (info := catalog.code_info(c)) is not None
            and (info.effective_from is None or info.effective_from <= dos)
        ),
        None,
    )
    if code is None:
        return None
    probe = catalog.requires_pa(
        code=code,
        state=state,
        date_of_service=dos,
        place_of_service=place_of_service,
        coverage=coverage,
        revenue_code=revenue_code,
        modifiers=modifiers,
    )
    return probe.reason if probe.reason_code.startswith("excluded_") else None


def _validate(
    auths: _Authorizations, rt: Runtime, data: SubmitClaimIn, now: dt.datetime
) -> dict[int, Authorization]:
    """Checks that need the catalog or the database; raise Invalid naming every field. Returns UTN lookups."""
    catalog = rt.catalog
    state = catalog.state(data.state)
    if state is None:
        raise Invalid(
            "state is not a WISeR model state",
            [FieldError("state", f"{data.state} is not in the model ({', '.join(sorted(catalog.states))})")],
        )
    today = now.astimezone(_catalog_zone(catalog, data.state)).date()
    errors: list[FieldError] = []
    by_utn: dict[int, Authorization] = {}
    for i, line in enumerate(data.lines):
        dos = line.date_of_service
        if dos < catalog.services_from or dos > catalog.model_end:
            errors.append(
                FieldError(
                    f"lines[{i}].date_of_service",
                    f"outside the WISeR model ({catalog.services_from.isoformat()} to "
                    f"{catalog.model_end.isoformat()})",
                )
            )
        elif dos > today:
            errors.append(
                FieldError(f"lines[{i}].date_of_service", "a claim bills services already rendered")
            )
        if line.utn is not None:
            req = auths.by_utn.get(line.utn)
            if req is None:
                errors.append(FieldError(f"lines[{i}].utn", f"no authorization has UTN {line.utn}"))
            elif req.beneficiary_mbi != data.beneficiary.mbi:
                errors.append(
                    FieldError(
                        f"lines[{i}].utn",
                        f"UTN {line.utn} was issued for another beneficiary than beneficiary.mbi",
                    )
                )
            else:
                by_utn[i] = req
    if errors:
        raise Invalid("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    return by_utn


def _plan_line(
    auths: _Authorizations,
    rt: Runtime,
    data: SubmitClaimIn,
    i: int,
    line: ClaimLineIn,
    codes: Sequence[str],
    by_utn: Mapping[int, Authorization],
    now: dt.datetime,
) -> LinePlan:
    """Decide one line's outcome from the catalog, the authorizations on file and the profile."""
    role, kind, category, not_subject = _line_context(rt, data, i, line, codes)
    if role == "other" or category is None:
        return LinePlan(i, line, role, kind, category, _NOT_SUBJECT, not_subject or "not a WISeR service")
    validity = rt.profile.timelines.affirmation_validity_days
    dos = line.date_of_service
    mbi = data.beneficiary.mbi
    zone = _zone(rt, data.state)

    def choose(cands: Iterable[Authorization]) -> Match:
        states = (auth_state(rt, r, now) for r in cands)
        return best_match(
            states,
            dos,
            validity,
            superseded=auths.superseded,
            zone=zone,
            follows_procedure=role == "associated",
        )

    if role in ("primary", "add_on"):
        utn_req = by_utn.get(i)
        note = ""
        if utn_req is not None:
            if line.code in auths.codes[utn_req.id]:
                match = choose([utn_req])
                matched_by = "utn"
            else:
                note = f"UTN {line.utn} does not cover {line.code}; "
                match = Match("none")
            if match.kind == "none":
                # The UTN did not settle it: look for this code's own authorization.
                match = choose(auths.for_code(mbi=mbi, category=category, code=line.code))
                matched_by = "beneficiary_code_date"
        else:
            match = choose(auths.for_code(mbi=mbi, category=category, code=line.code))
            matched_by = "beneficiary_code_date"
        return _outcome_for_primary(auths, rt, i, line, role, category, match, matched_by, note)
    # Associated services follow the primary procedure's authorization, no UTN needed.
    utn_req = by_utn.get(i)
    cats = rt.catalog.categories_for_associated(line.code)
    match = Match("none")
    if utn_req is not None and utn_req.category in cats:
        match = choose([utn_req])
    if match.kind == "none":
        # No UTN, or one that does not settle it (a resubmission replaced it): the beneficiary's authorizations.
        match = choose(auths.for_categories(mbi=mbi, categories=cats))
    return _outcome_for_associated(auths, rt, i, line, kind, match)


def _outcome_for_primary(
    auths: _Authorizations,
    rt: Runtime,
    i: int,
    line: ClaimLineIn,
    role: str,
    category: str,
    match: Match,
    matched_by: str,
    note: str,
) -> LinePlan:
    st = match.state
    if match.kind == "affirmed" and st is not None:
        return LinePlan(
            i, line, role, None, category, _PAYABLE,
            f"{note}authorized: {st.request.utn} is {st.status} through {st.valid_until}",
            auth=st, matched_by=matched_by, participant=st.request.participant,
        )  # fmt: skip
    if match.kind == "non_affirmed" and st is not None:
        return LinePlan(
            i, line, role, None, category, _DENIED,
            f"{note}the authorization {st.request.utn} was non-affirmed",
            reasons=auths.denial_reasons(st.request), auth=st, matched_by=matched_by,
            participant=st.request.participant,
        )  # fmt: skip
    why = {
        "pending": "the authorization request {utn} is still undecided",
        "expired": "the authorization {utn} expired on {until} (date of service {dos})",
        "none": "no authorization for this beneficiary, code and date of service",
    }[match.kind].format(
        utn=st.request.utn if st else None, until=st.valid_until if st else None, dos=line.date_of_service
    )
    return LinePlan(
        i, line, role, None, category, _SUSPENDED,
        f"{note}{why}: suspended for pre-payment review",
        auth=st, matched_by=matched_by if st else None, needs_review=True,
    )  # fmt: skip


def _outcome_for_associated(
    auths: _Authorizations, rt: Runtime, i: int, line: ClaimLineIn, kind: str | None, match: Match
) -> LinePlan:
    st = match.state
    cats = rt.catalog.categories_for_associated(line.code)
    category = st.request.category if st else cats[0]
    label = kind or "associated"
    if match.kind == "affirmed" and st is not None:
        if authorization_pays(rt, st, role="associated", dos=line.date_of_service):
            return LinePlan(
                i, line, "associated", kind, category, _PAYABLE,
                f"{label} service of {st.request.primary_code}, authorized by {st.request.utn} ({st.status})",
                auth=st, matched_by="beneficiary_date_catalog", participant=st.request.participant,
            )  # fmt: skip
        return LinePlan(
            i, line, "associated", kind, category, _SUSPENDED,
            f"the primary procedure's authorization {st.request.utn} is {st.status}; under "
            f"{rt.profile.id} its {label} services are not paid on that basis: "
            "suspended for pre-payment review",
            auth=st, matched_by="beneficiary_date_catalog", needs_review=True,
        )  # fmt: skip
    if match.kind == "non_affirmed" and st is not None:
        return LinePlan(
            i, line, "associated", kind, category, _DENIED,
            f"{label} service of a non-affirmed procedure ({st.request.utn})",
            reasons=auths.denial_reasons(st.request), auth=st, matched_by="beneficiary_date_catalog",
            participant=st.request.participant,
        )  # fmt: skip
    why = {
        "pending": "the primary procedure's authorization {utn} is still undecided",
        "expired": "the primary procedure's authorization {utn} expired on {until}",
        "none": "no authorization for the primary procedure on this date of service",
    }[match.kind].format(utn=st.request.utn if st else None, until=st.valid_until if st else None)
    return LinePlan(
        i, line, "associated", kind, category, _SUSPENDED,
        f"{why}: suspended for pre-payment review",
        auth=st, matched_by="beneficiary_date_catalog" if st else None, needs_review=True,
    )  # fmt: skip


@dataclass(frozen=True)
class ClaimSubmission:
    """One claim to take in: who bills, the validated body with the JSON it came as, the channel, and when.

    `received_at` is None for "now" (every interactive caller); a bulk caller such as the simulator passes each
    claim's own receipt time, which may not be later than the clock.
    """

    principal: Principal
    data: SubmitClaimIn
    raw: dict[str, Any]
    channel: str = "rest"
    received_at: dt.datetime | None = None


def submit_claim(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    data: SubmitClaimIn,
    raw: dict[str, Any],
    channel: str = "rest",
    fee_schedule: FeeSchedule | None = None,
) -> Claim:
    """Validate, match every line and store the claim in the caller's transaction (the caller commits)."""
    result = submit_claims(
        session, rt, [ClaimSubmission(principal, data, raw, channel)], fee_schedule=fee_schedule
    )[0]
    if isinstance(result, ApiError):
        raise result
    return result


def submit_claims(
    session: Session,
    rt: Runtime,
    items: Sequence[ClaimSubmission],
    *,
    fee_schedule: FeeSchedule | None = None,
) -> list[Claim | ApiError]:
    """Validate, match and store claims with one statement per table (the caller commits).

    Each claim succeeds or fails alone: a refused one (4xx) is returned in its place and writes nothing.
    Claims never change authorizations, so the authorizations are read once for the batch; pre-payment reviews
    are opened in item order, so a later claim for the same service episode joins the review an earlier opened.
    """
    results, new = _take_claims(session, rt, items, fee_schedule)
    if new:
        stored = [assemble(Claim, c.claim, lines=[assemble(ClaimLine, ln) for ln in c.lines]) for c in new]
        insert_adopted(session, stored, "lines")
        _audit_claims(session, new, [claim.id for claim in stored])
        given = iter(stored)
        return [next(given) if r is None else r for r in results]
    return [r for r in results if r is not None]


def store_claims(
    session: Session,
    rt: Runtime,
    items: Sequence[ClaimSubmission],
    *,
    fee_schedule: FeeSchedule | None = None,
) -> list[int | ApiError]:
    """`submit_claims` for a caller that needs only the new claims' ids: the same checks, rows and audit entries,
    without the ORM objects (nothing of them enters the session).

    For bulk billing: building, inserting and adopting a claim's ORM objects cost more than its matching.
    """
    results, new = _take_claims(session, rt, items, fee_schedule)
    ids: list[int] = []
    if new:
        connection = session.connection()
        ids = allocate_ids(connection, _CLAIMS, len(new))
        line_rows = []
        for claim_id, c in zip(ids, new, strict=True):
            c.claim["id"] = claim_id
            for ln in c.lines:
                ln["claim_id"] = claim_id
                line_rows.append({key: ln.get(key) for key in _LINE_KEYS})
        for line_id, row in zip(allocate_ids(connection, _LINES, len(line_rows)), line_rows, strict=True):
            row["id"] = line_id
        insert_rows(connection, _CLAIMS, [{key: c.claim.get(key) for key in _CLAIM_KEYS} for c in new])
        insert_rows(connection, _LINES, line_rows)
        _audit_claims(session, new, ids)
    given = iter(ids)
    return [next(given) if r is None else r for r in results]


_CLAIMS, _LINES = table_of(Claim), table_of(ClaimLine)
# Every column of a row `store_claims` writes (none has a default of its own: tests/claims pins that).
_CLAIM_KEYS = tuple(c.key for c in _CLAIMS.columns)
_LINE_KEYS = tuple(c.key for c in _LINES.columns)


@dataclass
class _NewClaim:
    """A claim that passed every check: its item, its column values and its lines', and the audit summary."""

    item: ClaimSubmission
    claim: dict[str, Any]
    lines: list[dict[str, Any]]
    summary: list[list[str]]


def _take_claims(
    session: Session, rt: Runtime, items: Sequence[ClaimSubmission], fee_schedule: FeeSchedule | None
) -> tuple[list[ApiError | None], list[_NewClaim]]:
    """Check and match every claim, opening the reviews they need: per item its refusal or None, and the
    accepted claims' values in item order (not yet stored)."""
    now = rt.clock.now()
    fees = fee_schedule or configured_fee_schedule(rt)
    auths = _Authorizations(session, [item.data for item in items])
    billed = _Billed(auths.connection, [item.data for item in items])
    results: list[ApiError | None] = []
    new: list[_NewClaim] = []
    for item in items:
        try:
            claim = _new_claim(session, rt, auths, billed, item, now, fees)
        except ApiError as exc:
            results.append(exc)
            continue
        billed.add(item.data)
        results.append(None)
        new.append(claim)
    return results, new


def _audit_claims(session: Session, new: Sequence[_NewClaim], ids: Sequence[int]) -> None:
    """The claim.submit entries of stored claims, in item order."""
    audit.append(
        session,
        (
            audit.Entry(
                c.item.principal.actor, "claim.submit", "claim", claim_id, "ok", c.claim["received_at"],
                {"lines": c.summary},
            )
            for c, claim_id in zip(new, ids, strict=True)
        ),
    )  # fmt: skip


def _join_procedure_episodes(
    session: Session, rt: Runtime, data: SubmitClaimIn, plans: Sequence[LinePlan]
) -> None:
    """Put an unmatched associated line whose code several categories list into its procedure's episode.

    01991 (anesthesia for a nerve block) belongs to both trigeminal neurolysis and epidural steroid injection:
    the procedure on the same claim and date of service decides, else an episode already under review for this
    beneficiary and date (the procedure's claim came first); only without either the catalog's first category.
    """
    for p in plans:
        if p.role != "associated" or p.auth is not None or not p.needs_review:
            continue
        cats = rt.catalog.categories_for_associated(p.data.code)
        if len(cats) < 2:
            continue
        dos = p.data.date_of_service
        on_claim = [
            q.category
            for q in plans
            if q.role in ("primary", "add_on") and q.category in cats and q.data.date_of_service == dos
        ]
        found = (
            on_claim[0]
            if on_claim
            else session.scalars(
                select(PrepaymentReview.category)
                .where(
                    PrepaymentReview.beneficiary_mbi == data.beneficiary.mbi,
                    PrepaymentReview.date_of_service == dos,
                    PrepaymentReview.category.in_(cats),
                )
                .order_by(PrepaymentReview.id)
            ).first()
        )
        if found is not None:
            p.category = found


def _new_claim(
    session: Session,
    rt: Runtime,
    auths: _Authorizations,
    billed: _Billed,
    item: ClaimSubmission,
    now: dt.datetime,
    fees: FeeSchedule,
) -> _NewClaim:
    """Check one claim and match every line: its column values (not yet stored) and each line's [code, outcome]
    for the audit log; raise the 4xx that refuses it."""
    principal, data = item.principal, item.data
    if principal.role is not Role.PROVIDER or principal.organization_id is None:
        raise Forbidden("only a provider organization's key may submit claims")
    at = received_instant(item.received_at, now)
    by_utn = _validate(auths, rt, data, at)
    billed.check(data)
    codes = [ln.code for ln in data.lines]
    plans = [_plan_line(auths, rt, data, i, ln, codes, by_utn, at) for i, ln in enumerate(data.lines)]
    _join_procedure_episodes(session, rt, data, plans)
    state = rt.catalog.state(data.state)
    assert state is not None  # checked by _validate
    # ---- every check passed; only an opened pre-payment review is written before the claim itself
    episodes: dict[tuple[str, dt.date], PrepaymentReview] = {}
    lines = []
    summary: list[list[str]] = []
    for seq, p in enumerate(plans):
        values: dict[str, Any] = {
            "seq": seq,
            "code": p.data.code,
            "modifiers": list(p.data.modifiers),
            "units": p.data.units,
            "date_of_service": p.data.date_of_service,
            "rendering_npi": p.data.rendering_npi,
            "place_of_service": p.data.place_of_service,
            "revenue_code": p.data.revenue_code,
            "utn": p.data.utn,
            "role": p.role,
            "kind": p.kind,
            "category": p.category,
            "outcome": p.outcome,
            "outcome_reason": p.reason,
            "reasons": p.reasons,
            "request_id": p.auth.request.id if p.auth else None,
            "authorization_utn": p.auth.request.utn if p.auth else None,
            "matched_by": p.matched_by,
            "participant": p.participant,
            "allowed_cents": fees.allowed_cents(p.data.code, data.claim_type.value, p.data.units),
            "decided_at": at,
        }
        if p.needs_review and p.category is not None:
            review = _episode_review(
                session, rt, episodes, mbi=data.beneficiary.mbi, state=data.state,
                participant=state.participant, category=p.category, dos=p.data.date_of_service, now=at,
                procedure=p.role in ("primary", "add_on"),
            )  # fmt: skip
            # On the values, not the built line: a new line's attribute events are work nothing needs.
            values.update(_review_decides(review, at))
        lines.append(values)
        summary.append([values["code"], values["outcome"]])
    claim = {
        "organization_id": principal.organization_id,
        "submitted_by_user_id": principal.user_id,
        "claim_type": data.claim_type.value,
        "billing_npi": data.billing_provider.npi,
        "beneficiary_mbi": data.beneficiary.mbi,
        "state": data.state,
        "participant": state.participant,
        "diagnosis_codes": list(data.diagnosis_codes),
        "channel": item.channel,
        "received_at": at,
        "profile_id": rt.profile.id,
        "profile_version": rt.profile.version,
        "fee_schedule": fees.source[-200:],
        "raw_submission": item.raw,
    }
    return _NewClaim(item, claim, lines, summary)


# --------------------------------------------------------------------------------------- pre-payment review

REVIEW_OPEN = ("awaiting_documentation", "under_review")
REVIEW_PAYABLE = ("affirmed", "deemed_payable")


def review_status(review: PrepaymentReview, now: dt.datetime) -> str:
    """The status every reader sees: under asa-reform a missed decision clock *is* payable (deemed)."""
    if (
        review.status == "under_review"
        and review.deems_on_miss
        and review.decision_due_at is not None
        and now >= review.decision_due_at
    ):
        return "deemed_payable"
    return review.status


def deemed_review_sql(now: dt.datetime) -> ColumnElement[bool]:
    """The same rule as `review_status(...) == 'deemed_payable'` for stored-undecided reviews, in SQL."""
    return and_(
        PrepaymentReview.status == "under_review",
        PrepaymentReview.deems_on_miss.is_(True),
        PrepaymentReview.decision_due_at <= now,
    )


def _review_status_sql(status: str, now: dt.datetime) -> ColumnElement[bool]:
    """Reviews whose status as of `now` (`review_status`) is `status`: a missed decision clock deems them."""
    if status == "deemed_payable":
        return or_(PrepaymentReview.status == status, deemed_review_sql(now))
    if status == "under_review":
        # Not `~deemed_review_sql(now)`: NOT of a NULL comparison (no decision clock yet) would drop the row.
        still_due = or_(
            PrepaymentReview.deems_on_miss.is_not(True),
            PrepaymentReview.decision_due_at.is_(None),
            PrepaymentReview.decision_due_at > now,
        )
        return and_(PrepaymentReview.status == status, still_due)
    return PrepaymentReview.status == status


_EPISODE_GUARD = select(AuditHead.id).where(AuditHead.id == 1).with_for_update()


def _episode_review(
    session: Session,
    rt: Runtime,
    cache: dict[tuple[str, dt.date], PrepaymentReview],
    *,
    mbi: str,
    state: str,
    participant: str,
    category: str,
    dos: dt.date,
    now: dt.datetime,
    procedure: bool = False,
) -> PrepaymentReview:
    """The review of this service episode: an existing one (any status), or a new one.

    A procedure line with no review of its own category takes over a review its associated services opened
    under another category their code also belongs to (an anesthesia claim that came first, 01991 filed under
    trigeminal neurolysis for an epidural), so the episode's billers share one review.
    """
    key = (category, dos)
    if key in cache:
        return cache[key]
    if session.get_bind().dialect.name == "postgresql":
        # Two billers of one episode at the same moment must not open two reviews: wait for the audit chain's
        # head (the lock every audited write takes anyway, so no new lock order), then look. The other
        # transaction has committed its review by then, and READ COMMITTED shows it to the next statement.
        session.execute(_EPISODE_GUARD)
    # The beneficiary's reviews for this date of service (rarely more than one), read once for both questions.
    episode = _episode_reviews(session, mbi, dos)
    found = next((r for r in reversed(episode) if r.category == category), None)
    if found is None and procedure:
        found = _adopt_associated_review(session, rt, episode, state=state, category=category, now=now)
    if found is None:
        found = _open_review(session, rt, mbi=mbi, state=state, participant=participant, category=category,
                             dos=dos, now=now)  # fmt: skip
    cache[key] = found
    return found


_EPISODE_REVIEWS = (
    select(PrepaymentReview)
    .where(
        PrepaymentReview.beneficiary_mbi == bindparam("mbi"),
        PrepaymentReview.date_of_service == bindparam("dos"),
    )
    .order_by(PrepaymentReview.id)
)
_EPISODE_REVIEW_ROWS = (
    select(table_of(PrepaymentReview))
    .where(
        PrepaymentReview.beneficiary_mbi == bindparam("mbi"),
        PrepaymentReview.date_of_service == bindparam("dos"),
    )
    .order_by(PrepaymentReview.id)
)


def _episode_reviews(session: Session, mbi: str, dos: dt.date) -> list[PrepaymentReview]:
    """The beneficiary's reviews for a date of service, oldest first, as the ORM statement would load them.

    Read with Core and adopted: most lines that need a review find none yet, and the ORM's statement handling
    cost more than the indexed read. A review the session already holds is handed back as the ORM would (it
    may carry changes), so then the ORM statement runs instead.
    """
    rows = read_connection(session).execute(_EPISODE_REVIEW_ROWS, {"mbi": mbi, "dos": dos}).all()
    if any(in_session(session, PrepaymentReview, row.id) for row in rows):
        return list(session.scalars(_EPISODE_REVIEWS, {"mbi": mbi, "dos": dos}))
    return [adopt_loaded(session, PrepaymentReview, row) for row in rows]


def _adopt_associated_review(
    session: Session,
    rt: Runtime,
    episode: Sequence[PrepaymentReview],
    *,
    state: str,
    category: str,
    now: dt.datetime,
) -> PrepaymentReview | None:
    """Move to `category` an untouched review of the episode (its beneficiary and date of service, oldest first)
    opened only for associated lines that `category` also lists."""
    candidates = [
        r
        for r in episode
        if r.category != category and r.status == "awaiting_documentation" and r.documents_received_at is None
    ]
    for review in candidates:
        lines = _linked_lines(session, review.id)
        if not lines or not all(
            ln.role == "associated" and category in rt.catalog.categories_for_associated(ln.code)
            for ln in lines
        ):
            continue
        previous = review.category
        policy_id = rt.catalog.governing_policy(category, state)
        policy = rt.criteria.for_policy(policy_id) if policy_id else None
        review.category = category
        review.policy_id = policy_id
        review.documentation_request = requirements(policy) if policy else []
        review.events = [
            *review.events,
            {
                "at": _iso(now),
                "event": "recategorized",
                "note": f"{previous} -> {category}: the procedure's claim",
            },
        ]
        review.updated_at = now
        for ln in lines:
            ln.category = category
        audit.record(
            session, actor=audit.SYSTEM, action="prepayment_review.recategorize", object_type="prepayment_review",
            object_id=review.id, outcome=category, at=now, details={"from": previous},
        )  # fmt: skip
        return review
    return None


def _open_review(
    session: Session,
    rt: Runtime,
    *,
    mbi: str,
    state: str,
    participant: str,
    category: str,
    dos: dt.date,
    now: dt.datetime,
) -> PrepaymentReview:
    profile = rt.profile
    info = rt.catalog.state(state)
    calendar = calendar_for(profile, info.timezone if info else "UTC")
    policy_id = rt.catalog.governing_policy(category, state)
    policy = rt.criteria.for_policy(policy_id) if policy_id else None
    # Built and stored as a load would leave it, with one INSERT: the constructor's attribute events and the
    # unit of work's flush cost more than the insert (an opened review with its audit entry: 435 -> 255 us CPU).
    review = assemble(
        PrepaymentReview,
        {
            "state": state,
            "participant": participant,
            "beneficiary_mbi": mbi,
            "category": category,
            "policy_id": policy_id,
            "date_of_service": dos,
            "status": "awaiting_documentation",
            "opened_at": now,
            "documentation_due_at": due_time(
                now, profile.prepayment_review.documentation_due.to_duration(), calendar
            ),
            # What is asked derives from the governing NCD/LCD criteria and nothing else (R6).
            "documentation_request": requirements(policy) if policy else [],
            "deems_on_miss": profile.prepayment_review.deemed_payable_on_miss,
            "diagnosis_codes": [],
            "clinical_facts": {},
            "attachments": [],
            "criteria_results": [],
            "reasons": [],
            "events": [{"at": _iso(now), "event": "opened"}],
            "profile_id": profile.id,
            "profile_version": profile.version,
            "updated_at": now,
        },
    )
    insert_adopted(session, review)
    audit.record(
        session,
        actor=audit.SYSTEM,
        action="prepayment_review.open",
        object_type="prepayment_review",
        object_id=review.id,
        outcome=review.status,
        at=now,
        details={"category": category, "date_of_service": dos.isoformat()},
    )
    return review


def _review_decides(review: PrepaymentReview, now: dt.datetime) -> dict[str, Any]:
    """A line's columns linking it to its episode review; an already decided review decides the line at once."""
    changes: dict[str, Any] = {"prepayment_review_id": review.id, "participant": review.participant}
    status = review_status(review, now)
    if status in REVIEW_PAYABLE:
        changes["outcome"] = _PAYABLE
        changes["outcome_reason"] = f"pre-payment review {review.id} found the service payable ({status})"
        changes["matched_by"] = "prepayment_review"
    elif status == "non_affirmed":
        changes["outcome"] = _DENIED
        changes["outcome_reason"] = f"pre-payment review {review.id} non-affirmed the service"
        changes["reasons"] = list(review.reasons)
        changes["matched_by"] = "prepayment_review"
    return changes


def _apply_review_to_line(line: ClaimLine, review: PrepaymentReview, now: dt.datetime) -> None:
    """Link a stored line to its episode review; an already decided review decides the line at once."""
    for key, value in _review_decides(review, now).items():
        setattr(line, key, value)


def _load_review(
    session: Session, rt: Runtime, principal: Principal, review_id: int, *, for_update: bool = False
) -> PrepaymentReview:
    stmt = select(PrepaymentReview).where(PrepaymentReview.id == review_id)
    if for_update:
        stmt = stmt.with_for_update()
    review = session.scalars(stmt).first()
    visible = review is not None and (
        principal.role in (Role.OVERSIGHT, Role.ADMIN)
        or (principal.role is Role.REVIEWER and review.state == principal.state)
        or (
            principal.role is Role.PROVIDER
            and session.scalar(
                select(ClaimLine.id)
                .join(Claim, Claim.id == ClaimLine.claim_id)
                .where(
                    ClaimLine.prepayment_review_id == review_id,
                    Claim.organization_id == principal.organization_id,
                )
                .limit(1)
            )
            is not None
        )
    )
    if review is None or not visible:
        raise NotFound(f"pre-payment review {review_id} not found")
    return review


def get_review(session: Session, rt: Runtime, *, principal: Principal, review_id: int) -> PrepaymentReview:
    """Read one pre-payment review in the caller's scope."""
    return _load_review(session, rt, principal, review_id)


def list_reviews(
    session: Session, rt: Runtime, *, principal: Principal, status: str | None = None, limit: int = 50
) -> list[PrepaymentReview]:
    """Reviews in the reviewer's state (oversight/admin: all), soonest decision due first."""
    if principal.role not in (Role.REVIEWER, Role.OVERSIGHT, Role.ADMIN):
        raise Forbidden("the pre-payment review worklist is for reviewers")
    stmt = select(PrepaymentReview)
    if principal.role is Role.REVIEWER:
        stmt = stmt.where(PrepaymentReview.state == principal.state)
    if status:
        stmt = stmt.where(_review_status_sql(status, rt.clock.now()))
    stmt = stmt.order_by(PrepaymentReview.decision_due_at, PrepaymentReview.id).limit(limit)
    return list(session.scalars(stmt))


def _linked_lines(session: Session, review_id: int) -> list[ClaimLine]:
    return list(session.scalars(select(ClaimLine).where(ClaimLine.prepayment_review_id == review_id)))


def _settle_lines(
    session: Session, review: PrepaymentReview, now: dt.datetime, *, rt: Runtime | None = None
) -> None:
    """Carry the review's outcome onto every linked claim line that is still suspended.

    With `rt`, a line whose own authorization has come into force since intake (decided, or deemed by time)
    is settled payable on that authorization instead: the review was only its fallback.
    """
    lines = _linked_lines(session, review.id)
    paid = authorized_lines(session, rt, lines, now) if rt is not None else set()
    for line in lines:
        if line.outcome != _SUSPENDED:
            continue
        if line.id in paid:
            line.outcome = _PAYABLE
            line.outcome_reason = f"the authorization {line.authorization_utn} came into force after intake"
        else:
            _apply_review_to_line(line, review, now)
        line.decided_at = now


def submit_documents(
    session: Session, rt: Runtime, *, principal: Principal, review_id: int, data: DocumentsIn
) -> PrepaymentReview:
    """The provider answers the documentation request; the decision clock starts now and the engine runs."""
    if principal.role is not Role.PROVIDER:
        raise Forbidden("documentation comes from a provider whose claim is under review")
    review = _load_review(session, rt, principal, review_id, for_update=True)
    if review.status != "awaiting_documentation":
        raise Conflict(f"pre-payment review {review.id} already has its documentation ({review.status})")
    policy = rt.criteria.for_policy(review.policy_id) if review.policy_id else None
    facts: dict[str, Any] = dict(data.clinical_facts)
    if policy is not None:
        errs = validate_facts(policy, facts)
        if errs:
            fields = [FieldError(path, msg) for path, msg in errs]
            raise Invalid("; ".join(f"{f.field}: {f.message}" for f in fields), fields)
        facts = coerce_facts(policy, facts)
    now = rt.clock.now()
    info = rt.catalog.state(review.state)
    calendar = calendar_for(rt.profile, info.timezone if info else "UTC")
    review.documents_received_at = now
    # The same clock code as request deadlines: the profile's decision window from receipt of documents.
    review.decision_due_at = due_time(now, rt.profile.prepayment_review.decision.to_duration(), calendar)
    review.clinical_facts = _json_ready(facts)
    review.diagnosis_codes = list(data.diagnosis_codes)
    review.attachments = [a.model_dump(mode="json") for a in data.attachments]
    result = decide(
        DecisionInput(
            request_key=f"PPR{review.id}",
            state=review.state,
            category=review.category,
            policy_id=review.policy_id,
            date_of_service=review.date_of_service,
            diagnosis_codes=tuple(data.diagnosis_codes),
            facts=facts,
            time_sensitive_attestation=data.time_sensitive_attestation,
        ),
        criteria=rt.criteria,
        profile=rt.profile,
        history=beneficiary_history(session, mbi=review.beneficiary_mbi, category=review.category, now=now),
        gold_carded=False,
    )
    review.criteria_results = [r.to_dict() for r in result.criteria_results]
    events = [*review.events, {"at": _iso(now), "event": "documents_received", "note": data.note}]
    if result.outcome == "pended":
        review.status = "under_review"
        events.append({"at": _iso(now), "event": "pended", "note": result.reason})
    else:
        # Machines may affirm, never deny.
        review.status = "affirmed"
        review.decision_kind = "exempt" if result.outcome == "exempt_affirmed" else "criteria"
        review.decided_at = now
        events.append({"at": _iso(now), "event": "affirmed", "note": result.reason})
    review.events = events
    review.updated_at = now
    if review.status == "affirmed":
        _settle_lines(session, review, now)
    audit.record(
        session,
        actor=principal.actor,
        action="prepayment_review.documents",
        object_type="prepayment_review",
        object_id=review.id,
        outcome=review.status,
        at=now,
    )
    return review


def materialize_deemed_review(session: Session, review: PrepaymentReview, *, now: dt.datetime) -> bool:
    """Store a deemed-payable outcome time has already made true; idempotent. True if it changed the row."""
    if review_status(review, now) != "deemed_payable" or review.status == "deemed_payable":
        return False
    assert review.decision_due_at is not None
    review.status = "deemed_payable"
    review.decision_kind = "deemed"
    review.decided_at = review.decision_due_at
    review.events = [
        *review.events,
        {"at": _iso(review.decision_due_at), "event": "deemed_payable", "note": "decision clock missed"},
    ]
    review.updated_at = now
    _settle_lines(session, review, now)
    audit.record(
        session,
        actor=audit.SYSTEM,
        action="prepayment_review.deemed",
        object_type="prepayment_review",
        object_id=review.id,
        outcome="deemed_payable",
        at=now,
    )
    return True


def sweep_prepayment_reviews(session: Session, rt: Runtime, *, now: dt.datetime, limit: int = 500) -> int:
    """Materialize every review whose missed clock deems it payable (safe with several workers)."""
    stmt = select(PrepaymentReview).where(deemed_review_sql(now)).order_by(PrepaymentReview.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return sum(materialize_deemed_review(session, r, now=now) for r in session.scalars(stmt).all())


def decide_review(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    review_id: int,
    decision: str,
    reasons: Sequence[str] = (),
    note: str | None = None,
) -> tuple[PrepaymentReview, bool]:
    """A reviewer affirms, or a clinician non-affirms citing unmet criteria. Returns (review, applied)."""
    if principal.role is not Role.REVIEWER:
        raise Forbidden("only a participant's reviewer may decide pre-payment reviews")
    review = _load_review(session, rt, principal, review_id, for_update=True)
    now = rt.clock.now()
    if decision == "non_affirm" and not (principal.is_clinician and principal.npi):
        raise Forbidden("only a licensed clinician (with an NPI on file) may non-affirm")
    if review.status == "awaiting_documentation":
        if now < review.documentation_due_at:
            raise Conflict(f"pre-payment review {review.id} is waiting for documentation")
        # The documentation never came: every criterion is undocumented, which a clinician may cite.
        policy = rt.criteria.for_policy(review.policy_id) if review.policy_id else None
        if policy is not None:
            review.criteria_results = [
                r.to_dict()
                for r in evaluate(
                    policy, {}, date_of_service=review.date_of_service, category=review.category
                )
            ]
    reason_rows: list[dict[str, Any]] = []
    if decision == "non_affirm":
        gaps = {r["criterion_id"]: r for r in review.criteria_results if r.get("result") != "met"}
        if not reasons:
            raise Invalid(
                "a non-affirmation must cite at least one unmet criterion",
                [FieldError("reasons", "name at least one criterion id that is not met")],
            )
        unknown = [r for r in reasons if r not in gaps]
        if unknown:
            raise Invalid(
                "reasons must be criteria this service does not meet",
                [
                    FieldError(
                        "reasons", f"{', '.join(unknown)} not among ({', '.join(sorted(gaps)) or 'none'})"
                    )
                ],
            )
        reason_rows = [
            {
                "criterion_id": rid,
                "citation": gaps[rid].get("citation"),
                "statement": gaps[rid].get("statement"),
                "result": gaps[rid].get("result"),
                "reviewer_npi": principal.npi,
                "prepayment_review_id": review.id,
            }
            for rid in reasons
        ]
    if materialize_deemed_review(session, review, now=now):
        # Time decided first: the clinician's decision is recorded as late and does not change the outcome.
        review.events = [*review.events, {"at": _iso(now), "event": f"late_{decision}", "effective": False}]
        audit.record(
            session, actor=principal.actor, action="prepayment_review.decide",
            object_type="prepayment_review", object_id=review.id, outcome="late_ignored", at=now,
        )  # fmt: skip
        return review, False
    if review.status not in REVIEW_OPEN:
        raise Conflict(f"pre-payment review {review.id} is already {review.status}")
    review.status = "affirmed" if decision == "affirm" else "non_affirmed"
    review.decision_kind = "clinician"
    review.decided_at = now
    review.reasons = reason_rows
    review.reviewer_user_id = principal.user_id
    review.reviewer_npi = principal.npi
    review.reviewer_name = principal.name
    review.note = note
    review.updated_at = now
    review.events = [*review.events, {"at": _iso(now), "event": f"clinician_{decision}", "note": note}]
    _settle_lines(session, review, now, rt=rt)
    audit.record(
        session, actor=principal.actor, action="prepayment_review.decide", object_type="prepayment_review",
        object_id=review.id, outcome=review.status, at=now, details={"reasons": list(reasons)},
    )  # fmt: skip
    return review, True


# ---------------------------------------------------------------------------------------------- appeals


def _line(claim: Claim, seq: int) -> ClaimLine:
    for line in claim.lines:
        if line.seq == seq:
            return line
    raise NotFound(f"claim {claim.id} has no line {seq}")


def line_outcome(
    line: ClaimLine, review: PrepaymentReview | None, now: dt.datetime, *, authorized: bool = False
) -> str:
    """A line's outcome as of now: an overturned appeal pays it; a deemed review pays a suspended line.

    `authorized`: the authorization the line waited for (undecided at intake) now pays it — decided since, or
    deemed affirmed by time, which holds on every read whether or not a sweep ran (R3).
    """
    if line.appeal_status == "overturned":
        return _PAYABLE
    if line.outcome == _SUSPENDED:
        status = review_status(review, now) if review is not None else None
        if status in REVIEW_PAYABLE:
            return _PAYABLE
        if status == "non_affirmed":
            return _DENIED
        if authorized:
            return _PAYABLE
    return line.outcome


_AUTHORIZATIONS_BY_ID = select(*(getattr(PaRequest, f.name) for f in fields(Authorization))).where(
    PaRequest.id.in_(bindparam("ids", expanding=True))
)


def authorized_lines(session: Session, rt: Runtime, lines: Iterable[ClaimLine], now: dt.datetime) -> set[int]:
    """Ids of suspended lines whose authorization, undecided at intake, now pays them (read, nothing written)."""
    waiting = [ln for ln in lines if ln.outcome == _SUSPENDED and ln.request_id is not None]
    if not waiting:
        return set()
    ids = sorted({ln.request_id for ln in waiting if ln.request_id is not None})
    rows = read_connection(session).execute(_AUTHORIZATIONS_BY_ID, {"ids": ids})
    auths = {a.id: a for a in (Authorization(*r) for r in rows)}
    out = set()
    for ln in waiting:
        auth = auths.get(ln.request_id) if ln.request_id is not None else None
        if auth is not None and authorization_pays(
            rt, auth_state(rt, auth, now), role=ln.role, dos=ln.date_of_service
        ):
            out.add(ln.id)
    return out


def appeal(
    session: Session, rt: Runtime, *, principal: Principal, claim_id: int, seq: int, reason: str | None
) -> Claim:
    """The billing provider asks for a redetermination of a denied line."""
    if principal.role is not Role.PROVIDER:
        raise Forbidden("only the billing provider may appeal its claim")
    claim = load_claim(session, rt, principal, claim_id, action="claim.appeal", for_update=True)
    line = _line(claim, seq)
    if line.outcome != _DENIED:
        raise Conflict(f"line {seq} is {line.outcome}; only a denied line can be appealed")
    if line.appeal_status is not None:
        raise Conflict(f"line {seq} was already appealed ({line.appeal_status})")
    now = rt.clock.now()
    line.appeal_status = "pending"
    line.appealed_at = now
    line.appeal_reason = reason
    audit.record(
        session, actor=principal.actor, action="claim.appeal", object_type="claim_line", object_id=line.id,
        outcome="pending", at=now,
    )  # fmt: skip
    return claim


def record_appeal_outcome(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    claim_id: int,
    seq: int,
    outcome: str,
    decided_on: dt.date,
    note: str | None,
) -> Claim:
    """Oversight or an administrator records the redetermination: upheld or overturned, and when."""
    if principal.role not in (Role.OVERSIGHT, Role.ADMIN):
        raise Forbidden("appeal outcomes are recorded by oversight or an administrator")
    claim = load_claim(session, rt, principal, claim_id, action="claim.appeal_outcome", for_update=True)
    line = _line(claim, seq)
    if line.appeal_status != "pending":
        raise Conflict(f"line {seq} has no pending appeal")
    now = rt.clock.now()
    assert line.appealed_at is not None
    appealed_on = line.appealed_at.astimezone(_zone(rt, claim.state)).date()
    if decided_on < appealed_on or decided_on > now.astimezone(_zone(rt, claim.state)).date():
        raise Invalid(
            "decided_on must fall between the appeal and today",
            [FieldError("decided_on", f"between {appealed_on.isoformat()} and today")],
        )
    line.appeal_status = outcome
    line.appeal_decided_on = decided_on
    line.appeal_recorded_at = now
    line.appeal_note = note
    audit.record(
        session, actor=principal.actor, action="claim.appeal_outcome", object_type="claim_line",
        object_id=line.id, outcome=outcome, at=now,
    )  # fmt: skip
    return claim


# ---------------------------------------------------------------------------------------------- figures


_LINES_AS_OF = (
    select(ClaimLine, PrepaymentReview)
    .outerjoin(PrepaymentReview, PrepaymentReview.id == ClaimLine.prepayment_review_id)
    .options(
        load_only(
            ClaimLine.participant,
            ClaimLine.allowed_cents,
            ClaimLine.outcome,
            ClaimLine.appeal_status,
            ClaimLine.request_id,
            ClaimLine.role,
            ClaimLine.date_of_service,
            ClaimLine.prepayment_review_id,
            ClaimLine.authorization_utn,
        ),
        load_only(PrepaymentReview.status, PrepaymentReview.deems_on_miss, PrepaymentReview.decision_due_at),
    )
)


def lines_as_of(
    session: Session, rt: Runtime, *conditions: ColumnElement[bool], now: dt.datetime
) -> list[tuple[ClaimLine, str]]:
    """The claim lines meeting `conditions`, each with its outcome as of `now` (`line_outcome`).

    Only the columns figures and outcomes need are loaded (others load on access): the simulator reads every
    anesthesia line of a state-year here, and the JSON columns were half the cost.
    """
    found = session.execute(_LINES_AS_OF.where(*conditions)).tuples().all()
    authorized = authorized_lines(session, rt, (line for line, _ in found), now)
    return [
        (line, line_outcome(line, review, now, authorized=line.id in authorized)) for line, review in found
    ]


def participant_stats(
    session: Session, rt: Runtime, *, principal: Principal, participant: str | None = None
) -> list[dict[str, Any]]:
    """Per participant: lines, denials, appeals, overturns (CMS-0057-F approved-after-appeal), dollars."""
    if principal.role not in (Role.REVIEWER, Role.OVERSIGHT, Role.ADMIN):
        raise Forbidden("claim figures are for reviewers, oversight and administrators")
    conditions: list[ColumnElement[bool]] = [ClaimLine.participant.is_not(None)]
    if principal.role is Role.REVIEWER:
        own = rt.catalog.state(principal.state or "")
        conditions.append(ClaimLine.participant == (own.participant if own else ""))
    if participant:
        conditions.append(ClaimLine.participant == participant)
    rows: dict[str, dict[str, Any]] = {}
    for line, current in lines_as_of(session, rt, *conditions, now=rt.clock.now()):
        assert line.participant is not None
        r = rows.setdefault(line.participant, _empty_stats(line.participant))
        cents = line.allowed_cents or 0
        r["lines"] += 1
        if line.allowed_cents is None:
            r["unpriced_lines"] += 1
        ever_denied = line.outcome == _DENIED
        if ever_denied:
            r["denials"] += 1
        if line.appeal_status is not None:
            r["appealed"] += 1
        if line.appeal_status == "overturned":
            r["overturned"] += 1
        if line.appeal_status == "upheld":
            r["upheld"] += 1
        r[current] += 1
        r[f"{current}_usd"] += cents
    out = []
    for r in sorted(rows.values(), key=lambda x: x["participant"]):
        r["approved_after_appeal"] = r["overturned"]
        r["approved_after_appeal_rate"] = round(r["overturned"] / r["appealed"], 4) if r["appealed"] else None
        r["overturn_rate"] = round(r["overturned"] / r["denials"], 4) if r["denials"] else None
        for k in ("payable_usd", "denied_usd", "suspended_usd", "not_subject_usd"):
            r[k] = round(r[k] / 100, 2)
        # Averted expenditure = what denials kept unpaid (overturned denials are paid, so they avert nothing).
        r["paid_usd"] = r["payable_usd"]
        r["averted_usd"] = r["denied_usd"]
        out.append(r)
    return out


def _empty_stats(participant: str) -> dict[str, Any]:
    return {
        "participant": participant,
        "lines": 0,
        "unpriced_lines": 0,
        "denials": 0,
        "appealed": 0,
        "overturned": 0,
        "upheld": 0,
        **{o.value: 0 for o in LineOutcome},
        **{f"{o.value}_usd": 0 for o in LineOutcome},
    }


# ---------------------------------------------------------------------------------------------- views


def reviews_for(session: Session, claim: Claim) -> dict[int, PrepaymentReview]:
    """The reviews linked to a claim's lines, by id (one query)."""
    ids = {ln.prepayment_review_id for ln in claim.lines if ln.prepayment_review_id is not None}
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(PrepaymentReview).where(PrepaymentReview.id.in_(ids)))}


def claim_view(
    claim: Claim,
    reviews: Mapping[int, PrepaymentReview],
    *,
    now: dt.datetime,
    authorized: frozenset[int] | set[int] = frozenset(),
) -> dict[str, Any]:
    """The JSON representation of a claim with each line's current outcome (`authorized`: authorized_lines)."""
    lines = []
    totals = {f"{o.value}_usd": 0 for o in LineOutcome}
    for ln in claim.lines:
        review = reviews.get(ln.prepayment_review_id) if ln.prepayment_review_id else None
        current = line_outcome(ln, review, now, authorized=ln.id in authorized)
        totals[f"{current}_usd"] += ln.allowed_cents or 0
        lines.append(
            {
                "seq": ln.seq,
                "code": ln.code,
                "modifiers": ln.modifiers,
                "units": ln.units,
                "date_of_service": ln.date_of_service.isoformat(),
                "rendering_npi": ln.rendering_npi,
                "place_of_service": ln.place_of_service,
                "revenue_code": ln.revenue_code,
                "utn": ln.utn,
                "role": ln.role,
                "kind": ln.kind,
                "category": ln.category,
                "outcome": current,
                "outcome_at_intake": ln.outcome,
                "reason": (
                    f"the authorization {ln.authorization_utn} came into force after intake"
                    if ln.id in authorized and current != ln.outcome
                    else ln.outcome_reason
                ),
                "reasons": ln.reasons,
                "authorization": (
                    {"request_id": ln.request_id, "utn": ln.authorization_utn} if ln.request_id else None
                ),
                "matched_by": ln.matched_by,
                "participant": ln.participant,
                "allowed_usd": ln.allowed_cents / 100 if ln.allowed_cents is not None else None,
                "prepayment_review": review_view(review, now=now, brief=True) if review else None,
                "appeal": (
                    {
                        "status": ln.appeal_status,
                        "appealed_at": _iso(ln.appealed_at),
                        "reason": ln.appeal_reason,
                        "decided_on": ln.appeal_decided_on.isoformat() if ln.appeal_decided_on else None,
                        "note": ln.appeal_note,
                    }
                    if ln.appeal_status
                    else None
                ),
            }
        )
    return {
        "id": claim.id,
        "claim_type": claim.claim_type,
        "state": claim.state,
        "participant": claim.participant,
        "organization_id": claim.organization_id,
        "billing_npi": claim.billing_npi,
        "beneficiary_mbi": claim.beneficiary_mbi,
        "diagnosis_codes": claim.diagnosis_codes,
        "channel": claim.channel,
        "received_at": _iso(claim.received_at),
        "profile": {"id": claim.profile_id, "version": claim.profile_version},
        "fee_schedule": claim.fee_schedule,
        "lines": lines,
        "totals": {k: round(v / 100, 2) for k, v in totals.items()},
    }


def review_view(review: PrepaymentReview, *, now: dt.datetime, brief: bool = False) -> dict[str, Any]:
    """JSON for a pre-payment review, with its effective (time-aware) status."""
    status = review_status(review, now)
    view: dict[str, Any] = {
        "id": review.id,
        "status": status,
        "category": review.category,
        "policy_id": review.policy_id,
        "date_of_service": review.date_of_service.isoformat(),
        "documentation_due_at": _iso(review.documentation_due_at),
        "documents_received_at": _iso(review.documents_received_at),
        "decision_due_at": _iso(review.decision_due_at),
        "documentation_overdue": status == "awaiting_documentation" and now >= review.documentation_due_at,
    }
    if brief:
        return view
    deemed_now = status == "deemed_payable" and review.status != "deemed_payable"
    view.update(
        {
            "state": review.state,
            "participant": review.participant,
            "beneficiary_mbi": review.beneficiary_mbi,
            "opened_at": _iso(review.opened_at),
            "decided_at": _iso(review.decision_due_at if deemed_now else review.decided_at),
            "decision_kind": "deemed" if deemed_now else review.decision_kind,
            "documentation_request": review.documentation_request,
            "clinical_facts": review.clinical_facts,
            "diagnosis_codes": review.diagnosis_codes,
            "criteria_results": review.criteria_results,
            "reasons": review.reasons,
            "reviewer": {"npi": review.reviewer_npi, "name": review.reviewer_name}
            if review.reviewer_npi
            else None,
            "note": review.note,
            "events": review.events,
            "profile": {"id": review.profile_id, "version": review.profile_version},
        }
    )
    return view


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


__all__ = [
    "AuthState",
    "Authorization",
    "ClaimSubmission",
    "Fee",
    "FeeSchedule",
    "appeal",
    "auth_state",
    "authorization_pays",
    "authorized_lines",
    "best_match",
    "claim_scope",
    "claim_view",
    "configured_fee_schedule",
    "decide_review",
    "get_review",
    "line_outcome",
    "lines_as_of",
    "list_reviews",
    "load_claim",
    "load_fee_schedule",
    "materialize_deemed_review",
    "parse_fee_schedule",
    "participant_stats",
    "record_appeal_outcome",
    "review_status",
    "review_view",
    "reviews_for",
    "store_claims",
    "submit_claim",
    "submit_claims",
    "submit_documents",
    "sweep_prepayment_reviews",
]
