"""The simulation engine: a year of WISeR through the real application services, on a simulated clock.

One run per policy profile, each on its own in-memory SQLite database with its own `Runtime` and `FixedClock`.
An event loop over simulated time submits requests (`requests.service.submit`/`resubmit`), lets the reviewer
pool work the real worklist (`reviews.service.worklist`/`decide`), runs the deadline sweep
(`deadlines.service.sweep`), evaluates gold cards (`goldcard.service.evaluate`), bills claims with their
anesthesia lines (`claims.service.submit_claim`) and opens and answers support tickets (`support.service`).
The simulator decides only what people outside the engine decide (when to submit, what the reviewer
concludes, when to bill); every rule is the engine's.
"""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import heapq
import math
import multiprocessing as mp
import os
import queue
import random
import shutil
import signal
import sqlite3
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, event, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from wiserpa.auth.models import OrgKind, Role
from wiserpa.auth.service import Principal, create_organization, create_user, principal_for
from wiserpa.claims import service as claims
from wiserpa.claims.models import Claim, ClaimLine
from wiserpa.claims.schemas import SubmitClaimIn
from wiserpa.config import Settings
from wiserpa.deadlines import service as deadlines
from wiserpa.deadlines.models import DeadlineMiss
from wiserpa.errors import ApiError
from wiserpa.goldcard import service as goldcard
from wiserpa.goldcard.models import GoldCard
from wiserpa.policy.clock import BusinessCalendar, FixedClock
from wiserpa.policy.examples import COMPLETE_FACTS
from wiserpa.policy.profiles import PolicyProfile, load_profile
from wiserpa.policy.validation import make_valid_npi
from wiserpa.reporting.compensation import (
    CompensationParams,
    ParticipantPeriod,
    current_formula,
    reform_formula,
)
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest
from wiserpa.requests.schemas import SubmitRequestIn
from wiserpa.requests.status import AFFIRMED_STATES, OPEN, Status
from wiserpa.reviews import service as reviews
from wiserpa.runtime import Runtime
from wiserpa.sim.participants import ReviewerPool, pool_from_assumptions
from wiserpa.sim.workload import (
    Arrival,
    Assumptions,
    TicketArrival,
    Workload,
    annual_volume,
    arrival_count,
    generate,
    load_assumptions,
)
from wiserpa.store.base import read_connection, table_of
from wiserpa.store.db import make_engine
from wiserpa.store.migrate import upgrade
from wiserpa.support import service as support
from wiserpa.synthetic import make_submission

__all__ = [
    "REFORM_SECTIONS",
    "Episode",
    "ProfileRun",
    "Scenario",
    "SimulationResult",
    "profile_variants",
    "run_profile",
    "simulate",
]

# Sections of a profile that carry a reform; `--compare` switches each on alone on top of wiser-2026.
REFORM_SECTIONS = (
    "timelines",
    "deemed_approval",
    "penalties",
    "exemptions",
    "gold_card",
    "support",
    "prepayment_review",
    "claims",
    "compensation",
)
_OPEN = {s.value for s in OPEN}
_AFFIRMED = {s.value for s in AFFIRMED_STATES}
# Status values as plain strings: `Status.X.value` runs enum's Python-level property on every read, and these are
# read per request in the loop and per row in the metrics.
_DEEMED = Status.DEEMED_AFFIRMED.value
_WITHDRAWN = Status.WITHDRAWN.value
_NON_AFFIRMED = Status.NON_AFFIRMED.value
# The episode outcome an affirmed status stands for (any other affirmation: by whom, or after a resubmission).
_OUTCOME_OF_STATUS = {
    Status.EXEMPT_AFFIRMED.value: "exempt",
    Status.GOLD_CARD_AFFIRMED.value: "gold_card",
    _DEEMED: "deemed",
}
# The requests a sweep deemed, among those that fell due (on_sweep): a Core read built once, on the session's
# connection (built per sweep and run through the ORM, it was about a sixth of on_sweep's time).
_DEEMED_AMONG = select(table_of(PaRequest).c.id, table_of(PaRequest).c.decided_at).where(
    table_of(PaRequest).c.id.in_(bindparam("ids", expanding=True)), table_of(PaRequest).c.status == _DEEMED
)

# How often the run commits (the deadline sweep also commits before it runs). Committing once a simulated day
# instead of once an hour: 50.4-56.0 s instead of 65.9-72.9 s for 20,000 asa-reform requests, two runs each.
_COMMIT_EVERY = dt.timedelta(days=1)
_PARALLEL_MIN_ARRIVALS = 1000
_MAX_BATCH = 256  # events handled together at most (tests set 1 to compare with one-by-one calls)

# Event kinds, in the order they run when they share an instant.
SWEEP, GOLDCARD, DECIDE, ARRIVAL, RESUBMIT, TICK, CARE, CLAIM, TICKET_OPEN, TICKET_ANSWER = range(10)
_BATCHED = (ARRIVAL, RESUBMIT, CLAIM)  # handled in batches, each event at its own time


# ---------------------------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Scenario:
    """What to simulate. `requests` and `clinicians` override the assumptions (tests use them)."""

    state: str = "WA"
    year: int = 2026
    profiles: tuple[str, ...] = ("wiser-2026", "asa-reform")
    scale: float = 1.0
    seed: int = 2026
    compare: bool = False
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    requests: int | None = None
    clinicians: float | None = None
    drain_days: int | None = None
    support_tickets: bool = True
    claims: bool = True
    overrides: tuple[tuple[str, Any], ...] = ()

    def assumptions(self) -> Assumptions:
        """The packaged assumptions with this scenario's overrides."""
        base = load_assumptions()
        return (
            base.with_values(**{k.replace(".", "__"): v for k, v in self.overrides})
            if self.overrides
            else base
        )

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) of request intake, UTC."""
        start = self.start or dt.datetime(self.year, 1, 1, tzinfo=dt.UTC)
        end = self.end or dt.datetime(self.year + 1, 1, 1, tzinfo=dt.UTC)
        return start, end

    def as_dict(self) -> dict[str, Any]:
        """JSON form, for reports and stored runs."""
        start, end = self.window()
        return {
            "state": self.state,
            "year": self.year,
            "profiles": list(self.profiles),
            "scale": self.scale,
            "seed": self.seed,
            "compare": self.compare,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "requests": self.requests,
            "clinicians": self.clinicians,
            "overrides": dict(self.overrides),
        }


def profile_variants(names: tuple[str, ...], *, compare: bool) -> list[PolicyProfile]:
    """The profiles to run; with `compare`, also wiser-2026 with each asa-reform section switched on alone."""
    profiles = [load_profile(n) for n in names]
    if compare:
        base, reform = load_profile("wiser-2026"), load_profile("asa-reform")
        for section in REFORM_SECTIONS:
            if getattr(base, section) == getattr(reform, section):
                continue
            profiles.append(
                base.model_copy(
                    update={
                        section: getattr(reform, section),
                        "id": f"{base.id}.{section.replace('_', '-')}",
                        "title": f"{base.title} + {section.replace('_', ' ')} from {reform.id}",
                    }
                )
            )
    return profiles


# ---------------------------------------------------------------------------------------------- episodes


@dataclass
class Episode:
    """One patient's path through the engine: its requests, outcome, care and claims."""

    arrival: Arrival
    request_ids: list[int] = field(default_factory=list)
    outcome: str | None = None  # set once, the episode's single final outcome
    authorized_at: dt.datetime | None = None
    care_at: dt.datetime | None = None
    without_pa: bool = False
    non_affirmations: int = 0
    overturned: int = 0
    resubmissions: int = 0
    peer_to_peer: int = 0
    primary_code: str = ""
    utn: str | None = None
    claims: list[int] = field(default_factory=list)

    @property
    def wait_days(self) -> float | None:
        """Days from the first request until care could proceed (None if it never could)."""
        if self.care_at is None:
            return None
        return (self.care_at - self.arrival.at).total_seconds() / 86_400


@dataclass
class ProfileRun:
    """One profile's results: metrics (deterministic), series, and run facts (wall time, partial)."""

    profile_id: str
    profile_title: str
    metrics: dict[str, float | int | None]
    series: dict[str, Any]
    outcomes: dict[str, int]
    checks: dict[str, Any]
    wall_seconds: float
    partial: bool
    db_path: str | None = None

    @property
    def requests_per_second(self) -> float:
        """Simulated requests (incl. resubmissions) per wall-clock second."""
        n = float(self.metrics.get("requests_submitted") or 0)
        return n / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass
class SimulationResult:
    """All profile runs of one scenario."""

    scenario: Scenario
    runs: list[ProfileRun]
    partial: bool
    calibration: dict[str, Any] = field(default_factory=dict)
    assumptions: dict[str, Any] = field(default_factory=dict)
    expected_annual: float = 0.0

    def metrics_by_profile(self) -> dict[str, dict[str, float | int | None]]:
        """Profile id -> metrics."""
        return {r.profile_id: r.metrics for r in self.runs}


# ---------------------------------------------------------------------------------------------- storage


@cache
def _template_db() -> Path:
    """A migrated empty SQLite file, made once per process and copied for each run."""
    folder = Path(tempfile.mkdtemp(prefix="wiserpa-sim-template-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _run_engine(template: Path) -> Engine:
    """The run's engine: one in-memory SQLite database, loaded from the migrated template, with the application's
    settings otherwise.

    A crash loses a run anyway, so the database need not outlive the process. Kept in memory, a day's commit
    frees the rollback journal instead of writing its pages to a file, and no page is ever read back from one:
    a state-year of 50,000 asa-reform requests took 77.4 and 81.8 s instead of 87.2 and 88.5 s on a temporary
    file with a 256 MiB page cache (two pairs run side by side; peak RSS 969 MB against 581 MB). One connection
    (StaticPool) holds the database; the simulator runs on one thread.
    """
    engine = make_engine("sqlite://", poolclass=StaticPool)

    @event.listens_for(engine, "connect")
    def _load_template(dbapi_conn: Any, _record: Any) -> None:
        # Runs after make_engine's own connect hook, which configured the connection. A backup, not
        # `deserialize`: a deserialized database cannot grow past 1 GiB, a state-year at larger scales does.
        source = sqlite3.connect(template)
        try:
            source.backup(dbapi_conn)
        finally:
            source.close()

    return engine


def _save(engine: Engine, folder: Path) -> Path:
    """Write the run's database to `folder`/sim.db, for inspection."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sim.db"
    path.unlink(missing_ok=True)
    target = sqlite3.connect(path)
    try:
        with engine.connect() as conn:
            source = conn.connection.driver_connection
            assert source is not None  # a checked-out connection is open
            source.backup(target)
    finally:
        target.close()
    return path


# ---------------------------------------------------------------------------------------------- one run


@dataclass
class _Batch:
    """Events of one kind waiting to be handled together, each with its time, and their beneficiaries."""

    events: list[tuple[Any, dt.datetime]] = field(default_factory=list)
    mbis: set[str] = field(default_factory=set)


class _Run:
    """The event loop of one profile run."""

    def __init__(
        self,
        scenario: Scenario,
        a: Assumptions,
        workload: Workload,
        profile: PolicyProfile,
        engine: Engine,
        progress: Callable[[int], None] | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.scenario, self.a, self.workload, self.profile = scenario, a, workload, profile
        start, end = scenario.window()
        self.start, self.end = start, end
        drain = scenario.drain_days if scenario.drain_days is not None else int(a["engine.drain_days"])
        self.horizon = end + dt.timedelta(days=drain)
        self.clock = FixedClock(start)
        settings = Settings(database_url=str(engine.url), profile=profile.id, sweep_interval_seconds=0)
        self.rt = Runtime.build(settings, clock=self.clock, profile=profile, engine=engine)
        info = self.rt.catalog.state(scenario.state)
        assert info is not None
        self.info = info
        self.calendar = BusinessCalendar(info.timezone)
        self.pool: ReviewerPool = pool_from_assumptions(
            a, self.calendar, state=scenario.state, clinicians=scenario.clinicians, scale=scenario.scale
        )
        self.progress = progress
        self.should_stop = should_stop
        self.queue: list[tuple[dt.datetime, int, int, Any]] = []
        self._n = 0
        self.episodes = [Episode(arr) for arr in workload.arrivals]
        self.by_request: dict[int, Episode] = {}
        self.criteria_results: dict[int, list[dict[str, Any]]] = {}  # open request -> its criteria results
        self.open: set[int] = set()
        # (due time, id) of requests tracked open: due times never change, so the sweep has work only once the
        # earliest still-open one has passed.
        self.due: list[tuple[dt.datetime, int]] = []
        self.in_review: set[int] = set()
        self.clinician_decisions = 0
        self.late_decisions = 0
        self.wrong_affirmations = 0
        self.audited = 0
        self.audit_agreements = 0
        self.tickets_opened = 0
        self.tickets_failed = 0
        self.out_of_order = 0
        self.backlog: list[tuple[str, int, int]] = []  # (week, open in worklist, ESI open)
        self.calibration_backlog: int | None = None
        self.fees = claims.configured_fee_schedule(self.rt)
        self.commit_due = start
        # Arrivals, claims or resubmissions waiting to be handled together, by kind, oldest batch first.
        self.batches: dict[int, _Batch] = {}
        self.submitted = 0  # arrivals handed to the engine so far (the progress figure)
        self.request_rows: Sequence[Any] | None = None  # every request at the end of the run (_request_rows)

    # -------------------------------------------------------------------- queue

    def push(self, at: dt.datetime, kind: int, payload: Any = None) -> None:
        self._n += 1
        heapq.heappush(self.queue, (at, kind, self._n, payload))

    # -------------------------------------------------------------------- setup

    def setup(self, session: Session) -> None:
        now = self.clock.now()
        state = self.scenario.state
        participant = create_organization(
            session, name=self.info.participant, kind=OrgKind.PARTICIPANT, now=now, state=state
        )
        reviewer = create_user(
            session, name=f"Reviewer pool ({state})", role=Role.REVIEWER, now=now,
            organization_id=participant.id, state=state, npi=make_valid_npi(990_001),
            specialty="Pain Medicine", credentials="MD", is_clinician=True,
        )  # fmt: skip
        staff = create_user(
            session, name=f"Support desk ({state})", role=Role.REVIEWER, now=now,
            organization_id=participant.id, state=state,
        )  # fmt: skip
        oversight_org = create_organization(session, name="Oversight", kind=OrgKind.OVERSIGHT, now=now)
        overseer = create_user(
            session,
            name="Simulator oversight",
            role=Role.OVERSIGHT,
            now=now,
            organization_id=oversight_org.id,
        )
        self.reviewer: Principal = principal_for(reviewer)
        self.staff: Principal = principal_for(staff)
        self.overseer: Principal = principal_for(overseer)
        self.practices: list[Principal] = []
        for p in self.workload.practices:
            org = create_organization(
                session, name=f"{state} practice {p.index + 1} ({p.accuracy})", kind=OrgKind.PRACTICE,
                now=now, state=state, npi=make_valid_npi(2_000_000 + p.index),
            )  # fmt: skip
            user = create_user(
                session, name=f"Front desk {p.index + 1}", role=Role.PROVIDER, now=now, organization_id=org.id
            )
            self.practices.append(principal_for(user))
        anes_org = create_organization(
            session, name=f"{state} Anesthesia Associates", kind=OrgKind.PRACTICE, now=now, state=state,
            npi=make_valid_npi(2_900_000),
        )  # fmt: skip
        anes_user = create_user(
            session, name="Anesthesia billing", role=Role.PROVIDER, now=now, organization_id=anes_org.id
        )
        self.anesthesia: Principal = principal_for(anes_user)
        session.commit()
        for ep in self.episodes:
            self.push(ep.arrival.at, ARRIVAL, ep)
        if self.scenario.support_tickets:
            for ticket in self.workload.tickets:
                self.push(ticket.at, TICKET_OPEN, ticket)
        every = dt.timedelta(hours=int(self.a["engine.sweep_every_hours"]))
        t = self.start
        while t <= self.horizon:
            self.push(t, SWEEP)
            t += every
        # Reviewer ticks: every business hour on the hour, state time.
        d = self.calendar.local(self.start).date()
        last = self.calendar.local(self.horizon).date()
        while d <= last:
            if self.calendar.is_business_day(d):
                t = self.calendar.opens(d)
                while t < self.calendar.closes(d):
                    if self.start <= t <= self.horizon:
                        self.push(t, TICK)
                    t += dt.timedelta(hours=1)
            if d.day == 1 and self.profile.gold_card.enabled:
                at = self.calendar.at(d, dt.time(6, 0))
                if self.start < at <= self.horizon:
                    self.push(at, GOLDCARD)
            d += dt.timedelta(days=1)

    # -------------------------------------------------------------------- loop

    def run(self, session: Session) -> bool:
        """Process events until the horizon; True if interrupted (Ctrl-C)."""
        steps = 0
        try:
            while self.queue:
                steps += 1
                if self.should_stop is not None and steps % 64 == 0 and self.should_stop():
                    raise KeyboardInterrupt  # the parent process was interrupted (parallel runs)
                at, kind, _, payload = heapq.heappop(self.queue)
                if self.batches:
                    # Handle the waiting batches this event must come after (all of them when the day ends).
                    ends_day = at >= self.commit_due or at > self.horizon
                    kinds = list(self.batches) if ends_day else self._before(kind, payload, at)
                    if kinds:
                        self.flush(session, kinds)
                if at > self.horizon:
                    break
                if at < self.clock.now():
                    # Simulated time never runs backwards; a checked counter, expected to stay 0.
                    self.out_of_order += 1
                    at = self.clock.now()
                self.clock.set(at)
                if at >= self.commit_due:
                    # One transaction per simulated day instead of one per event: a failed service call
                    # rolls back only its own savepoint, so committing less never loses the other events.
                    session.commit()
                    self.commit_due = at.replace(hour=0, minute=0, second=0, microsecond=0) + _COMMIT_EVERY
                if kind in _BATCHED:
                    batch = self.batches.get(kind)
                    if batch is None:  # not `setdefault`, which would build a _Batch for every event
                        batch = self.batches[kind] = _Batch()
                    batch.events.append((payload, at))
                    batch.mbis.add(self._mbi(kind, payload))
                    if len(batch.events) >= _MAX_BATCH:
                        self.flush(session, [kind])
                elif kind == TICK:
                    self.on_tick(session, at)
                elif kind == DECIDE:
                    self.on_decide(session, *payload)
                elif kind == SWEEP:
                    self.on_sweep(session)
                elif kind == GOLDCARD:
                    with session.begin_nested():  # a Ctrl-C inside takes only this call back
                        goldcard.evaluate(session, self.rt, now=at)
                elif kind == CARE:
                    self.on_care(payload)
                elif kind == TICKET_OPEN:
                    self.on_ticket(session, payload)
                elif kind == TICKET_ANSWER:
                    self.on_ticket_answer(session, payload)
        except KeyboardInterrupt:
            # Keep what was simulated (the episodes already count it); a service call cut short rolled
            # back its own savepoint. An interrupt inside a commit leaves nothing to keep but that day. Events
            # still waiting in the batch never reached the engine: like those after the interrupt, they did
            # not happen (their patients count as not submitted).
            try:
                session.commit()
            except Exception:
                session.rollback()
            return True
        self.flush(session, list(self.batches))
        session.commit()
        return False

    # -------------------------------------------------------------------- requests

    def _submission(self, ep: Episode) -> dict[str, Any]:
        arr = ep.arrival
        raw = make_submission(
            self.rt.catalog, random.Random(arr.submission_seed), state=self.scenario.state,
            category=arr.category, case=arr.case, date_of_service=arr.date_of_service, npi=arr.npi,
            mbi=arr.mbi, urgency=arr.urgency, channel=arr.channel,
        )  # fmt: skip
        if arr.exempt_eligible:
            # Cancer-related or palliative pain, attested by a clinician (R1); the facts stay as they are.
            raw["diagnosis_codes"] = list(dict.fromkeys(["G89.3", *raw["diagnosis_codes"]]))[:12]
            raw["time_sensitive_attestation"] = True
        if arr.mac_received_at is not None:
            raw["mac_received_at"] = arr.mac_received_at.isoformat()
        return raw

    def _before(self, kind: int, payload: Any, at: dt.datetime) -> list[int]:
        """The kinds of waiting batch that must be handled before this event, which may see or change them.

        Every engine rule that links requests, decisions and claims is per beneficiary (frequency history,
        claim matching, pre-payment reviews), so an event of another beneficiary commutes with a waiting batch
        and the batch can keep growing past it: handled later, each item still at its own time, it stores
        what handling each as it came would. Reads across beneficiaries (the worklist, the sweep, gold-card
        evaluation) come after everything before them; requests keep their ids in receipt order.
        """
        if kind in (TICKET_OPEN, TICKET_ANSWER):
            return []  # support tickets involve no request or claim
        if kind == TICK and not self._tick_reads(at):
            return []
        if kind not in _BATCHED and kind not in (DECIDE, CARE):
            return list(self.batches)  # TICK, SWEEP, GOLDCARD
        mbi = self._mbi(kind, payload)
        creates_requests = kind in (ARRIVAL, RESUBMIT)
        return [
            k
            for k, batch in self.batches.items()
            if k != kind and (mbi in batch.mbis or (creates_requests and k in (ARRIVAL, RESUBMIT)))
        ]

    def _mbi(self, kind: int, payload: Any) -> str:
        """The beneficiary an arrival, resubmission, claim, decision or date of care is about."""
        if kind == DECIDE:
            return self.by_request[payload[0]].arrival.mbi
        ep: Episode = payload[0] if kind == CLAIM else payload  # ARRIVAL, RESUBMIT, CARE: the episode
        return ep.arrival.mbi

    def flush(self, session: Session, kinds: list[int]) -> None:
        """Handle the waiting batches of these kinds, oldest first (reports progress in arrivals submitted)."""
        submitted = 0
        for kind in [k for k in self.batches if k in kinds]:
            events = self.batches.pop(kind).events
            if kind == CLAIM:
                self.bill_claims(session, events)
            elif kind == RESUBMIT:
                self.resubmit(session, events)
            else:
                submitted += self.submit_arrivals(session, events)
        if submitted:
            self.submitted += submitted
            if self.progress is not None:
                self.progress(self.submitted)

    def submit_arrivals(self, session: Session, batch: list[tuple[Episode, dt.datetime]]) -> int:
        """Submit arrivals in one batch, each received at its own time; returns how many."""
        items = []
        for ep, at in batch:
            raw = self._submission(ep)
            items.append(
                requests.Submission(
                    self.practices[ep.arrival.practice],
                    SubmitRequestIn.model_validate(raw),
                    raw,
                    received_at=at,
                )
            )
        with session.begin_nested():  # a Ctrl-C inside takes only this batch back
            results = requests.submit_many(session, self.rt, items)
        for (ep, _), req in zip(batch, results, strict=True):
            if isinstance(req, ApiError):
                # The engine refused the submission (4xx): that is this patient's single outcome.
                ep.outcome = "rejected"
                continue
            ep.primary_code = req.primary_code
            self._track(ep, req)
            if ep.arrival.proceeds_without_pa:
                self.push(self._local_morning(ep.arrival.date_of_service), CARE, ep)
        return len(batch)

    def resubmit(self, session: Session, batch: list[tuple[Episode, dt.datetime]]) -> None:
        """Resubmit non-affirmed requests with the missing facts added, in one batch, each at its own time."""
        items = []
        for ep, at in batch:
            facts = dict(COMPLETE_FACTS.get(ep.arrival.category, {}))
            items.append(
                requests.Resubmission(
                    self.practices[ep.arrival.practice], ep.request_ids[-1],
                    {"clinical_facts": facts} if facts else {}, received_at=at,
                )
            )  # fmt: skip
        with session.begin_nested():  # a Ctrl-C inside takes only this batch back
            results = requests.resubmit_many(session, self.rt, items)
        for (ep, _), req in zip(batch, results, strict=True):
            if isinstance(req, ApiError):
                self._final(ep, "non_affirmed")
                continue
            ep.resubmissions += 1
            self._track(ep, req)

    def _track(self, ep: Episode, req: PaRequest) -> None:
        ep.request_ids.append(req.id)
        if req.status in _OPEN:
            # What the reviewer reads at decision time: stored at submission and unchanged while the request is
            # open, so kept here rather than read back once per decision.
            self.criteria_results[req.id] = req.criteria_results
        ep.utn = req.utn
        self.by_request[req.id] = ep
        if req.status in _AFFIRMED:
            self._authorized(ep, req.decided_at or self.clock.now(), req.status, req.decision_kind)
        elif req.status in _OPEN:
            self.open.add(req.id)
            heapq.heappush(self.due, (req.due_at, req.id))

    def _authorized(self, ep: Episode, at: dt.datetime, status: str, kind: str | None) -> None:
        if ep.non_affirmations:
            ep.overturned += 1  # a non-affirmation that the resubmission reversed
        if ep.outcome is not None:
            return
        ep.outcome = _OUTCOME_OF_STATUS.get(
            status,
            "affirmed_after_resubmission"
            if ep.resubmissions
            else ("affirmed_by_clinician" if kind == "clinician" else "affirmed_automatically"),
        )
        ep.authorized_at = at
        if ep.care_at is None:
            ep.care_at = at
            self._schedule_claim(ep, max(at, self._local_morning(ep.arrival.date_of_service)))

    def _final(self, ep: Episode, outcome: str) -> None:
        if ep.outcome is None:
            ep.outcome = outcome

    def _local_morning(self, d: dt.date) -> dt.datetime:
        return self.calendar.at(d, dt.time(9, 0))

    # -------------------------------------------------------------------- reviewers

    def _backlog_due(self, at: dt.datetime) -> bool:
        """Whether this tick records the weekly backlog (Monday's first business hour)."""
        local = self.calendar.local(at)
        return local.weekday() == 0 and local.hour == self.calendar.day_start.hour

    def _tick_reads(self, at: dt.datetime) -> bool:
        """Whether this tick reads the worklist: the backlog is due, or a reviewer is free this hour."""
        return self._backlog_due(at) or self.pool.free_at < at + dt.timedelta(hours=1)

    def on_tick(self, session: Session, at: dt.datetime) -> None:
        hour_end = at + dt.timedelta(hours=1)
        if self._backlog_due(at):
            self._record_backlog(session, self.calendar.local(at).date())
        if self.pool.free_at >= hour_end or not (self.open - self.in_review):
            return  # nothing new to pick up: skip the worklist read (it is audited and not free)
        per_hour = max(1, math.ceil(self.pool.speed * 60 / self.pool.median_minutes))
        # No savepoint around this read, unlike the calls that write: its one effect is its audit entry, which is
        # appended whole or not at all, so a Ctrl-C inside leaves nothing half done for the run's final commit.
        # The savepoint's begin and release were a fifth of on_tick (1,000 requests: asa-reform 7.46 -> 7.42 G
        # instructions, wiser-2026 7.09 -> 7.03 G).
        page = reviews.worklist(
            session, self.rt, principal=self.reviewer, limit=len(self.in_review) + 3 * per_hour + 5,
            details=False, count=False,
        )  # fmt: skip
        items = [r.id for r in page.items if r.id not in self.in_review]
        for rid in items:
            if self.pool.free_at >= hour_end:
                break
            ep = self.by_request[rid]
            attempt = ep.request_ids.index(rid)
            done, minutes = self.pool.take(at, random.Random(f"{ep.arrival.seed}:service:{attempt}"))
            self.in_review.add(rid)
            self.push(done, DECIDE, (rid, minutes))

    def _record_backlog(self, session: Session, day: dt.date) -> None:
        with session.begin_nested():  # a Ctrl-C inside takes only this call back
            total = reviews.worklist(session, self.rt, principal=self.reviewer, limit=1, details=False).total
            esi = reviews.worklist(
                session, self.rt, principal=self.reviewer, limit=1, category="epidural_steroid_injection",
                details=False,
            ).total  # fmt: skip
        self.backlog.append((day.isoformat(), int(total or 0), int(esi or 0)))  # counted: never None

    def on_decide(self, session: Session, rid: int, minutes: float) -> None:
        self.in_review.discard(rid)
        ep = self.by_request[rid]
        attempt = ep.request_ids.index(rid)
        rng = random.Random(f"{ep.arrival.seed}:decision:{attempt}")
        results = self.criteria_results[rid]
        case = "complete" if attempt > 0 else ep.arrival.case
        unmet = [r["criterion_id"] for r in results if r.get("result") == "unmet"]
        gaps = [r["criterion_id"] for r in results if r.get("result") != "met"]
        if case == "unmet" and unmet and rng.random() < self.a["reviewers.non_affirm_unmet"]:
            outcome, reasons = "non_affirm", unmet[:2]
        elif case == "incomplete" and gaps and rng.random() < self.a["reviewers.non_affirm_incomplete"]:
            outcome, reasons = "non_affirm", gaps[:2]
        else:
            outcome, reasons = "affirm", []
        try:
            with session.begin_nested():
                result = reviews.decide(
                    session, self.rt, principal=self.reviewer, request_id=rid, outcome=outcome,
                    reasons=reasons, note="Reviewed against the governing NCD/LCD.",
                )  # fmt: skip
        except ApiError:
            return
        self.clinician_decisions += 1
        del self.criteria_results[rid]  # decided: no longer open
        if rng.random() < self.a["reviewers.audit_sample_share"]:
            self.audited += 1
            self.audit_agreements += not (case == "unmet" and outcome == "affirm")
        req = result.request
        self.open.discard(rid)
        if not result.applied:
            self.late_decisions += 1
            self._authorized(ep, req.due_at, _DEEMED, "deemed")
            return
        if outcome == "affirm":
            if case == "unmet":
                self.wrong_affirmations += 1
            self._authorized(ep, self.clock.now(), req.status, "clinician")
            return
        ep.non_affirmations += 1
        if ep.arrival.peer_to_peer:
            ep.peer_to_peer += 1
        if case == "incomplete" and ep.arrival.resubmits and ep.resubmissions == 0:
            d = self.calendar.local(self.clock.now()).date()
            for _ in range(ep.arrival.resubmit_delay_days):
                d = self.calendar.next_business_day(d + dt.timedelta(days=1))
            self.push(self.calendar.at(d, dt.time(10, 0)), RESUBMIT, ep)
        else:
            self._final(ep, "non_affirmed")

    def on_sweep(self, session: Session) -> None:
        now = self.clock.now()
        while self.due and self.due[0][1] not in self.open:
            heapq.heappop(self.due)  # decided since
        if not self.due or self.due[0][0] > now:
            # Nothing open has fallen due since the last sweep, which deemed or settled everything due then: the
            # sweep would read nothing and commit nothing (56-70 % of the simulator's sweeps).
            return
        # The sweep commits per batch and rolls everything back if it fails or is interrupted: commit the
        # day's events first so they cannot be lost with it.
        session.commit()
        swept = deadlines.sweep(session, self.rt)
        fell_due = []
        while self.due and self.due[0][0] <= now:
            fell_due.append(
                heapq.heappop(self.due)[1]
            )  # deemed, or its miss recorded and settled: never due again
        if not swept.deemed:
            return
        # Only what fell due since the last sweep can have been deemed by this one (nothing else here deems a
        # request outside a clinician's decision, which on_decide handles).
        ids = sorted(rid for rid in fell_due if rid in self.open)
        connection = read_connection(session)
        for i in range(0, len(ids), 500):
            rows = connection.execute(_DEEMED_AMONG, {"ids": ids[i : i + 500]}).all()
            for rid, decided in rows:
                self.open.discard(rid)
                self._authorized(self.by_request[rid], decided, _DEEMED, "deemed")

    # -------------------------------------------------------------------- care and claims

    def on_care(self, ep: Episode) -> None:
        """The planned date of service: a patient who cannot wait gets care now, authorized or not."""
        if ep.care_at is not None or ep.outcome == "non_affirmed":
            return
        ep.care_at = self.clock.now()
        ep.without_pa = True
        self._schedule_claim(ep, ep.care_at)

    def _schedule_claim(self, ep: Episode, care: dt.datetime) -> None:
        if not self.scenario.claims:
            return
        bill = care + dt.timedelta(days=ep.arrival.claim_lag_days)
        self.push(bill, CLAIM, (ep, self.calendar.local(care).date()))

    def bill_claims(self, session: Session, batch: list[tuple[tuple[Episode, dt.date], dt.datetime]]) -> None:
        """Bill each episode's procedure (and anesthesia) claims in one batch, each at its own time."""
        items: list[claims.ClaimSubmission] = []
        owners: list[Episode] = []
        for (ep, dos), at in batch:
            for principal, raw in self._claim_bodies(ep, dos):
                items.append(
                    claims.ClaimSubmission(principal, SubmitClaimIn.model_validate(raw), raw, received_at=at)
                )
                owners.append(ep)
        with session.begin_nested():  # a Ctrl-C inside takes only this batch back
            # The engine keeps only the claims' ids: store_claims runs submit_claims's checks and writes without
            # building ORM objects for them.
            results = claims.store_claims(session, self.rt, items, fee_schedule=self.fees)
        for ep, claim_id in zip(owners, results, strict=True):
            if not isinstance(claim_id, ApiError):  # a refused claim (4xx) is not billed, so not tracked
                ep.claims.append(claim_id)

    def _claim_bodies(self, ep: Episode, dos: dt.date) -> list[tuple[Principal, dict[str, Any]]]:
        """The procedure's claim, and the anesthesia group's when the service had anesthesia."""
        arr = ep.arrival
        line: dict[str, Any] = {
            "code": ep.primary_code, "date_of_service": dos.isoformat(), "rendering_npi": arr.npi,
            "place_of_service": "22",
        }  # fmt: skip
        if not ep.without_pa and ep.utn:
            line["utn"] = ep.utn
        bodies: list[tuple[Principal, dict[str, Any]]] = [
            (self.practices[arr.practice], self._claim(ep, [line], arr.npi)),
        ]
        anesthesia = [
            a.code for a in self.rt.catalog.associated_codes(arr.category) if a.kind == "anesthesia"
        ]
        if arr.anesthesia and anesthesia:
            anes_npi = self.workload.anesthesia_npis[arr.seq % len(self.workload.anesthesia_npis)]
            anes_line = {
                "code": anesthesia[0], "date_of_service": dos.isoformat(), "rendering_npi": anes_npi,
                "place_of_service": "22", "units": 30,
            }  # fmt: skip
            bodies.append((self.anesthesia, self._claim(ep, [anes_line], anes_npi)))
        return bodies

    def _claim(self, ep: Episode, lines: list[dict[str, Any]], npi: str) -> dict[str, Any]:
        return {
            "state": self.scenario.state, "claim_type": "professional", "billing_provider": {"npi": npi},
            "beneficiary": {"mbi": ep.arrival.mbi}, "diagnosis_codes": ["M54.16"], "lines": lines,
        }  # fmt: skip

    # -------------------------------------------------------------------- support

    def on_ticket(self, session: Session, t: TicketArrival) -> None:
        allowed = support.allowed_triggers(self.profile)
        trigger = allowed[t.pick % len(allowed)] if t.urgent and allowed else None
        try:
            with session.begin_nested():
                ticket = support.open_ticket(
                    session, self.rt, principal=self.practices[t.practice], category="portal_access",
                    subject="Cannot complete a WISeR request", description="Simulated ticket.",
                    state=self.scenario.state, urgent_trigger=trigger,
                )  # fmt: skip
        except ApiError:
            self.tickets_failed += 1
            return
        self.tickets_opened += 1
        self.push(self.clock.now() + dt.timedelta(hours=t.response_hours), TICKET_ANSWER, ticket.id)

    def on_ticket_answer(self, session: Session, ticket_id: int) -> None:
        try:
            with session.begin_nested():
                # Holding the answered ticket keeps it in the session, so `resolve` finds it there instead of
                # reading it again (on SQLite, where no row lock needs a fresh read).
                ticket = support.add_message(
                    session, self.rt, principal=self.staff, ticket_id=ticket_id, body="Fixed; try again."
                )
                support.resolve(session, self.rt, principal=self.staff, ticket_id=ticket.id)
        except ApiError:
            self.tickets_failed += 1

    # -------------------------------------------------------------------- metrics

    def finish(self, session: Session, wall: float, partial: bool) -> ProfileRun:
        now = self.clock.now()
        for ep in self.episodes:
            if ep.outcome is None and ep.request_ids:
                ep.outcome = "pending_at_end"
        submitted = [ep for ep in self.episodes if ep.request_ids]
        outcomes: dict[str, int] = {}
        for ep in [*submitted, *(ep for ep in self.episodes if ep.outcome == "rejected")]:
            outcomes[ep.outcome or "pending_at_end"] = outcomes.get(ep.outcome or "pending_at_end", 0) + 1
        waits = [w for ep in submitted if (w := ep.wait_days) is not None]
        # Episodes still waiting at the end count with their wait so far (censored, a lower bound).
        censored = [
            (now - ep.arrival.at).total_seconds() / 86_400
            for ep in submitted
            if ep.care_at is None and ep.outcome == "pending_at_end"
        ]
        all_waits = waits + censored
        rows = self._request_rows(session)
        live = [(st, k, r, d, due) for _, st, k, r, d, due in rows if st != _WITHDRAWN]
        # Per request: receipt to decision (deemed: the due time); still open: the wait so far (censored).
        decision_days = [((d or now) - r).total_seconds() / 86_400 for _, _, r, d, _ in live]
        reviewed = [
            ((d or now) - r).total_seconds() / 86_400
            for st, k, r, d, _ in live
            if k in ("clinician", "deemed") or st in _OPEN or st == _NON_AFFIRMED
        ]
        over_due = sum(1 for _, _, _, d, due in live if (d or now) > due)
        statuses: dict[str, int] = {}
        for _, st, *_ in rows:
            statuses[st] = statuses.get(st, 0) + 1
        misses = session.scalar(select(func.count()).select_from(DeadlineMiss)) or 0
        ledger = deadlines.penalty_ledger(session, self.rt, principal=self.overseer)
        priced = sum(line["amount_usd"] for line in ledger)
        # As every reader sees them now (a line that waited for its procedure's authorization is paid once the
        # authorization is in force), not as they were at intake.
        anes_by = Counter(
            outcome
            for _, outcome in claims.lines_as_of(session, self.rt, ClaimLine.kind == "anesthesia", now=now)
        )
        claim_count = session.scalar(select(func.count()).select_from(Claim)) or 0
        cards = session.scalar(select(func.count()).select_from(GoldCard)) or 0
        comp = support.compliance(session, self.rt, principal=self.overseer, state=self.scenario.state)
        breached = sum(c.breached for c in comp)
        measured = sum(c.measured for c in comp)
        session.commit()
        # Burden
        b = self.a
        n_requests = len(rows)
        resubs = sum(ep.resubmissions for ep in submitted)
        p2p = sum(ep.peer_to_peer for ep in submitted)
        admin_hours = (
            (n_requests - resubs) * b["burden.admin_hours_per_request"]
            + resubs * b["burden.admin_hours_per_resubmission"]
            + p2p * b["burden.admin_hours_per_peer_to_peer"]
            + self.tickets_opened * b["burden.admin_hours_per_support_ticket"]
        )
        clinician_hours = self.pool.booked_minutes / 60 + p2p * b["burden.clinician_hours_per_peer_to_peer"]
        pay = self._pay(rows, submitted, now)
        m: dict[str, float | int | None] = {
            "episodes": len(submitted) + outcomes.get("rejected", 0),
            "rejected_submissions": outcomes.get("rejected", 0),
            "requests_submitted": n_requests,
            "resubmissions": resubs,
            "days_to_care_median": _q(all_waits, 0.5),
            "days_to_care_p90": _q(all_waits, 0.9),
            "days_to_care_mean": _mean(all_waits),
            "share_over_14_days": _share(all_waits, 14.0),
            "days_to_decision_median": _q(decision_days, 0.5),
            "days_to_decision_p90": _q(decision_days, 0.9),
            "days_to_decision_max": max(decision_days) if decision_days else None,
            "reviewed_days_to_decision_mean": _mean(reviewed),
            "decisions_after_due": over_due,
            "deadline_misses": int(misses),
            "penalties_priced_usd": round(priced, 2),
            "penalties_owed_usd": round(priced, 2) if self.profile.penalties.enforced else 0.0,
            "deemed_approvals": statuses.get(Status.DEEMED_AFFIRMED.value, 0),
            "late_clinician_decisions_ignored": self.late_decisions,
            "exempt_requests": statuses.get(Status.EXEMPT_AFFIRMED.value, 0),
            "gold_card_requests": statuses.get(Status.GOLD_CARD_AFFIRMED.value, 0),
            "gold_cards_issued": int(cards),
            "non_affirmed_requests": statuses.get(Status.NON_AFFIRMED.value, 0),
            "pending_at_end": statuses.get(Status.PENDED.value, 0) + statuses.get(Status.RECEIVED.value, 0),
            "care_without_pa": sum(ep.without_pa for ep in submitted),
            "claims": int(claim_count),
            "anesthesia_lines": sum(anes_by.values()),
            "anesthesia_lines_denied": anes_by.get("denied", 0),
            "anesthesia_lines_suspended": anes_by.get("suspended", 0),
            "anesthesia_lines_paid": anes_by.get("payable", 0),
            "clinician_review_hours": round(clinician_hours, 1),
            "provider_admin_hours": round(admin_hours, 1),
            "peer_to_peer_calls": p2p,
            "support_tickets": self.tickets_opened,
            "support_sla_breaches": breached,
            "support_within_sla_pct": round(100 * (measured - breached) / measured, 1) if measured else None,
            "pay_current_formula_usd": pay[0],
            "pay_reform_formula_usd": pay[1],
        }
        series = {
            "days_to_care": [round(x, 3) for x in all_waits],
            "backlog": self.backlog,
            "penalties_by_month": [(line["month"], round(line["amount_usd"], 2)) for line in ledger],
        }
        checks = {
            "requests_in_db": n_requests,
            "requests_tracked": sum(len(ep.request_ids) for ep in submitted),
            "episodes_with_one_outcome": sum(1 for ep in self.episodes if ep.outcome),
            "support_operations_refused": self.tickets_failed,
            "events_out_of_order": self.out_of_order,
            "claims_in_db": int(claim_count),
            "claims_tracked": sum(len(ep.claims) for ep in submitted),
            "unmatched_primary_lines": self._unmatched(session),
        }
        outcomes = dict(sorted(outcomes.items()))
        return ProfileRun(self.profile.id, self.profile.title, m, series, outcomes, checks,
                          wall, partial)  # fmt: skip

    def _request_rows(self, session: Session) -> Sequence[Any]:
        """(id, status, decision kind, received, decided, due) of every request, read once at the end of the run.

        The metrics and the calibration both need them, and nothing changes in between: reading a state-year of
        50,000 requests again for the calibration took 0.5 s.
        """
        if self.request_rows is None:
            self.request_rows = session.execute(
                select(PaRequest.id, PaRequest.status, PaRequest.decision_kind, PaRequest.received_at,
                       PaRequest.decided_at, PaRequest.due_at)
            ).all()  # fmt: skip
        return self.request_rows

    def _unmatched(self, session: Session) -> int:
        """Primary claim lines whose authorization is not a request of the same episode."""
        bad = 0
        for claim_id, rid, mbi in session.execute(
            select(ClaimLine.claim_id, ClaimLine.request_id, Claim.beneficiary_mbi)
            .join(Claim, Claim.id == ClaimLine.claim_id)
            .where(ClaimLine.role.in_(("primary", "associated")), ClaimLine.request_id.is_not(None))
        ):
            ep = self.by_request.get(rid)
            if ep is None or ep.arrival.mbi != mbi or claim_id not in ep.claims:
                bad += 1
        return bad

    def _pay(self, rows: Any, submitted: list[Episode], now: dt.datetime) -> tuple[float, float]:
        reform = load_profile(str(self.a["compensation.source_profile"])).compensation
        params = CompensationParams(
            share_of_savings=self.profile.compensation.current_share_of_savings,
            quality_adjustment_max=self.profile.compensation.quality_adjustment_max,
            reform_fee_per_review_usd=reform.reform_fee_per_review_usd,
            timeliness_weight=reform.timeliness_weight,
            accuracy_weight=reform.accuracy_weight,
        )
        decided = [(st, k, d, due) for _, st, k, _, d, due in rows if d is not None and st != _WITHDRAWN]
        on_time = sum(1 for st, k, d, due in decided if k != "deemed" and d < due)
        averted = overturned_usd = 0.0
        for ep in submitted:
            if not ep.non_affirmations:
                continue
            # What Medicare does not pay for a denied procedure: the professional and the facility claim.
            cents = sum(
                self.fees.allowed_cents(ep.primary_code, t, 1) or 0 for t in ("professional", "institutional")
            )
            averted += cents / 100 * ep.non_affirmations
            overturned_usd += cents / 100 * min(ep.overturned, ep.non_affirmations)
        non_affirmed = sum(ep.non_affirmations for ep in submitted)
        period = ParticipantPeriod(
            participant=self.info.participant,
            reviews=len(decided),
            decided_on_time=on_time,
            non_affirmed_lines=min(non_affirmed, len(decided)),
            averted_allowed_usd=averted,
            overturned_denials=min(
                sum(min(ep.overturned, ep.non_affirmations) for ep in submitted), non_affirmed
            ),
            overturned_allowed_usd=overturned_usd,
            audited=min(self.audited, len(decided)),
            audit_agreements=min(self.audit_agreements, self.audited, len(decided)),
            quality_score=float(self.a["compensation.quality_score"]),
        )
        return round(current_formula(period, params).total_usd, 2), round(
            reform_formula(period, params).total_usd, 2
        )

    # -------------------------------------------------------------------- calibration

    def calibration(self, session: Session) -> dict[str, Any]:
        """WA check: mean days to decision of reviewed requests received before the report date."""
        cut = dt.datetime.fromisoformat(str(self.a["calibration_wa.window_end"])).replace(tzinfo=dt.UTC)
        now = self.clock.now()
        rows = self._request_rows(session)
        days = [((min(d, cut) if d else min(now, cut)) - r).total_seconds() / 86_400 for _, st, k, r, d, _ in rows
                if r < cut and (k in ("clinician", "deemed") or st in _OPEN or st == "non_affirmed")]  # fmt: skip
        esi = next((b[2] for b in reversed(self.backlog) if b[0] <= cut.date().isoformat()), None)
        return {
            "reviewed_mean_days_by_report_date": _mean(days),
            "esi_waiting_at_report_date": esi,
            "target_mean_days": self.a["calibration_wa.target_mean_days"],
            "target_waiting_esi": self.a["calibration_wa.target_waiting_esi"],
            "report_date": cut.date().isoformat(),
        }


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return round(s[lo] + (s[hi] - s[lo]) * (k - lo), 3)


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def _share(values: list[float], over: float) -> float | None:
    return round(sum(v > over for v in values) / len(values), 4) if values else None


# ---------------------------------------------------------------------------------------------- entry points


def run_profile(
    scenario: Scenario,
    profile: PolicyProfile,
    workload: Workload,
    *,
    assumptions: Assumptions | None = None,
    progress: Callable[[int], None] | None = None,
    keep_dir: Path | None = None,
    calibrate: bool = False,
    should_stop: Callable[[], bool] | None = None,
    template: Path | None = None,
) -> tuple[ProfileRun, dict[str, Any]]:
    """Run one profile on its own in-memory database (saved in `keep_dir` if given); returns its results (partial
    after Ctrl-C)."""
    a = assumptions or scenario.assumptions()
    t0 = time.perf_counter()  # wall time for the throughput figure only; simulated time is the FixedClock
    engine = _run_engine(template or _template_db())
    try:
        run = _Run(scenario, a, workload, profile, engine, progress, should_stop)
        with run.rt.sessions() as session:
            run.setup(session)
            with _few_collections():  # the final metrics too: they load every request and claim line
                partial = run.run(session)
                result = run.finish(session, time.perf_counter() - t0, partial)
            cal = run.calibration(session) if calibrate else {}
        if keep_dir is not None:
            result.db_path = str(_save(engine, keep_dir))
    finally:
        engine.dispose()
    return result, cal


@contextmanager
def _few_collections() -> Iterator[None]:
    """Let the cyclic garbage collector run rarely, never over what exists already, in the run and its metrics.

    A run allocates millions of short-lived objects (rows, ORM states, dicts) next to a large, long-lived heap
    (the workload, the episodes, the catalog and criteria). With the default thresholds the collector ran about
    1,800 times per 10,000 requests and its full collections walked that whole heap each time; freezing the heap
    as it stands after set-up and collecting the youngest generation every 20,000 allocations instead of 700
    took 20,000 asa-reform requests from 46.9-49.0 s of CPU to 36.2-37.3 s (two A/B rounds). Memory stays
    bounded: collections still run, just less often.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@dataclass(frozen=True)
class _Job:
    """One profile run as handed to a worker process (everything in it pickles)."""

    index: int
    scenario: Scenario
    profile: PolicyProfile
    assumptions: Assumptions
    keep_dir: Path | None
    calibrate: bool
    template: Path
    arrivals: int  # how many patients the workload holds (the progress total)
    # None in a worker process: it draws the workload itself (the same, from the seed), in parallel with the
    # other workers, instead of waiting for the parent to draw it and to pickle it to each worker in turn.
    workload: Workload | None = None

    def the_workload(self) -> Workload:
        """The workload this job runs (drawn here when not handed over)."""
        return self.workload if self.workload is not None else _workload(self.scenario, self.assumptions)


# The workload this process drew last: a worker given several profiles of one scenario draws it once.
_drawn: list[tuple[Scenario, Workload]] = []


def _workload(scenario: Scenario, a: Assumptions) -> Workload:
    if _drawn and _drawn[0][0] == scenario:
        return _drawn[0][1]
    start, end = scenario.window()
    workload = generate(a, load_catalog_once(), state=scenario.state, start=start, end=end,
                        scale=scenario.scale, seed=scenario.seed, requests=scenario.requests)  # fmt: skip
    _drawn[:] = [(scenario, workload)]
    return workload


def _jobs(
    scenario: Scenario, a: Assumptions, arrivals: int, workload: Workload | None, keep_dir: Path | None
) -> list[_Job]:
    template = _template_db()
    jobs = []
    for i, profile in enumerate(profile_variants(scenario.profiles, compare=scenario.compare)):
        sub = keep_dir / profile.id if keep_dir is not None else None
        calibrate = profile.id == "wiser-2026" and _covers_report(scenario, a)
        jobs.append(_Job(i, scenario, profile, a, sub, calibrate, template, arrivals, workload))
    return jobs


def simulate(
    scenario: Scenario,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    keep_dir: Path | None = None,
    workers: int | None = None,
) -> SimulationResult:
    """Run every profile (and ablation) of a scenario on the same workload; stops early on Ctrl-C.

    Profile runs are independent (each has its own database, runtime and clock), so with more than one
    profile they run in `workers` processes (default: one per profile up to the CPU count, for runs of at
    least _PARALLEL_MIN_ARRIVALS patients); `workers=1` runs them one after another in this process. Both
    give identical results for the same seed.
    """
    a = scenario.assumptions()
    start, end = scenario.window()
    arrivals = arrival_count(a, load_catalog_once(), state=scenario.state, start=start, end=end,
                             scale=scenario.scale, requests=scenario.requests)  # fmt: skip
    result = SimulationResult(
        scenario, [], False, assumptions=dict(a.values), expected_annual=annual_volume(a, scenario.state)
    )
    n_jobs = len(profile_variants(scenario.profiles, compare=scenario.compare))
    if workers is None:
        # Starting a worker process costs a second or two (imports, catalog, criteria): not worth it for
        # small runs such as the tests'.
        workers = 1 if arrivals < _PARALLEL_MIN_ARRIVALS else min(n_jobs, os.cpu_count() or 1)
    if workers > 1 and n_jobs > 1:
        _run_parallel(_jobs(scenario, a, arrivals, None, keep_dir), result, progress, workers)
    else:
        workload = _workload(scenario, a)  # drawn once, run under each profile in turn
        _run_sequential(_jobs(scenario, a, arrivals, workload, keep_dir), result, progress)
    return result


def _collect(result: SimulationResult, run: ProfileRun, cal: dict[str, Any]) -> None:
    result.runs.append(run)
    if cal:
        result.calibration = cal
    if run.partial:
        result.partial = True


def _run_sequential(
    jobs: list[_Job], result: SimulationResult, progress: Callable[[str, int, int], None] | None
) -> None:
    for job in jobs:
        total = job.arrivals

        def step(done: int, pid: str = job.profile.id, total: int = total) -> None:
            if progress is not None:
                progress(pid, done, total)

        try:
            run, cal = run_profile(
                job.scenario, job.profile, job.the_workload(), assumptions=job.assumptions, progress=step,
                keep_dir=job.keep_dir, calibrate=job.calibrate, template=job.template,
            )  # fmt: skip
        except KeyboardInterrupt:
            result.partial = True
            break
        _collect(result, run, cal)
        if run.partial:
            break


# A worker process's channel to the parent, set by _init_worker (ProcessPoolExecutor passes no per-task queues).
_events: Any = None
_stop: Any = None


def _init_worker(events: Any, stop: Any) -> None:
    """Worker process start-up: keep the parent's queue and stop flag; leave Ctrl-C to the parent."""
    global _events, _stop
    # Ctrl-C reaches the whole process group; the parent handles it and tells the workers through `stop`,
    # so a worker always finishes its metrics and returns a (partial) result instead of dying mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _events, _stop = events, stop


def _child(job: _Job) -> tuple[ProfileRun, dict[str, Any]] | None:
    """Run one profile in a worker process, reporting progress; None if stopped before it began."""
    if _stop.is_set():
        return None
    total = job.arrivals
    every = max(1, total // 200)  # about 200 progress messages per run, not one per arrival

    def step(done: int) -> None:
        if done % every == 0 or done == total:
            _events.put((job.index, done))

    return run_profile(
        job.scenario, job.profile, job.the_workload(), assumptions=job.assumptions, progress=step,
        keep_dir=job.keep_dir, calibrate=job.calibrate, should_stop=_stop.is_set, template=job.template,
    )  # fmt: skip


def _start_method() -> str:
    """How to start worker processes: fork when this process runs a single thread, else spawn.

    A forked worker starts with everything already imported and loaded (the catalog, criteria, templates); a
    spawned one imports it all again, 1.1 s on the benchmark's machine before its run can begin. But a child
    forked while other threads run (a web worker, a test runner) can inherit a lock one of them held, so those
    spawn. The workers never touch the parent's database connections and leave through os._exit (no atexit
    handlers, no finalizers), so inheriting them does no harm.
    """
    if "fork" in mp.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _run_parallel(
    jobs: list[_Job],
    result: SimulationResult,
    progress: Callable[[str, int, int], None] | None,
    workers: int,
) -> None:
    ctx = mp.get_context(_start_method())
    events, stop = ctx.Queue(), ctx.Event()
    interrupted = False
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(events, stop)
    ) as pool:
        futures = [pool.submit(_child, job) for job in jobs]

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            stop.set()  # running profiles stop at their next event and return partial results
            for f in futures:
                f.cancel()  # those not started never start, as in a sequential run

        pending = set(futures)
        while pending:
            message = None
            try:
                message = events.get(timeout=0.2)
            except queue.Empty:
                pass
            except KeyboardInterrupt:
                interrupt()
            if message is not None and progress is not None and not interrupted:
                index, done = message
                try:
                    progress(jobs[index].profile.id, done, jobs[index].arrivals)
                except KeyboardInterrupt:
                    interrupt()
            pending = {f for f in pending if not f.done()}
            if any(not f.cancelled() and f.exception() is not None for f in futures if f.done()):
                stop.set()  # one profile failed: stop the others too; its error is raised below
        while True:  # drain, so no worker blocks on a full pipe while the pool shuts down
            try:
                events.get_nowait()
            except queue.Empty:
                break
        for f in futures:
            outcome = None if f.cancelled() else f.result()  # a worker's exception is raised here
            if outcome is not None:
                _collect(result, *outcome)
    if interrupted:
        result.partial = True


def _covers_report(scenario: Scenario, a: Assumptions) -> bool:
    """The WA calibration needs a WA run whose intake spans the start of the model to the report date."""
    start, end = scenario.window()
    report = dt.datetime.fromisoformat(str(a["calibration_wa.window_end"])).replace(tzinfo=dt.UTC)
    return (
        scenario.state == "WA" and start <= dt.datetime(scenario.year, 1, 6, tzinfo=dt.UTC) and end >= report
    )


@cache
def load_catalog_once() -> Any:
    """The packaged catalog (the workload needs states, categories and dates)."""
    from wiserpa.policy.catalog import load_catalog

    return load_catalog()
