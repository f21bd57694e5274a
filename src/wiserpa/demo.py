"""The demo data set: synthetic practices, reviewers and a few hundred requests run through the real services."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from rich.progress import Progress
from sqlalchemy.orm import Session

from wiserpa.auth.models import OrgKind, Role, User
from wiserpa.auth.service import Principal, create_organization, create_user, issue_key, principal_for
from wiserpa.config import Settings
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.validation import make_valid_npi
from wiserpa.requests import service as requests
from wiserpa.requests.schemas import SubmitRequestIn
from wiserpa.reviews import service as reviews
from wiserpa.runtime import Runtime
from wiserpa.synthetic import active_categories, make_submission

DEMO_START = dt.datetime(2026, 1, 6, 14, 0, tzinfo=dt.UTC)
SPECIALTIES = ("Anesthesiology", "Pain Medicine", "Physical Medicine & Rehabilitation", "Orthopaedic Surgery")


def _json(value: object) -> object:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def build_demo(
    settings: Settings,
    *,
    n_requests: int = 400,
    seed: int = 2026,
    progress: bool = False,
    end: dt.datetime | None = None,
) -> list[tuple[str, str]]:
    """Fill the database and return (label, api key) pairs, one per role and state."""
    rng = random.Random(seed)
    end = end or dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)
    clock = FixedClock(DEMO_START)
    rt = Runtime.build(settings, clock=clock)
    keys: list[tuple[str, str]] = []
    with rt.sessions() as session:
        practices: dict[str, list[tuple[Principal, list[str]]]] = {}
        reviewers: dict[str, Principal] = {}
        for s_i, state in enumerate(sorted(rt.catalog.states)):
            info = rt.catalog.states[state]
            participant = create_organization(
                session, name=info.participant, kind=OrgKind.PARTICIPANT, now=clock.now(), state=state
            )
            rev_user = create_user(
                session,
                name=f"Dr. Reviewer ({state})",
                role=Role.REVIEWER,
                now=clock.now(),
                organization_id=participant.id,
                state=state,
                npi=make_valid_npi(900_000 + s_i),
                specialty=SPECIALTIES[s_i % 4],
                credentials="MD",
                is_clinician=True,
            )
            reviewers[state] = principal_for(rev_user)
            keys.append(
                (
                    f"reviewer · {info.participant} ({state})",
                    issue_key(session, user=rev_user, now=clock.now()),
                )
            )
            practices[state] = []
            for p_i in range(2):
                org = create_organization(
                    session,
                    name=f"{state} Spine & Pain Associates {p_i + 1}",
                    kind=OrgKind.PRACTICE,
                    now=clock.now(),
                    state=state,
                    npi=make_valid_npi(500_000 + s_i * 10 + p_i),
                )
                user = create_user(
                    session,
                    name=f"Front desk, {org.name}",
                    role=Role.PROVIDER,
                    now=clock.now(),
                    organization_id=org.id,
                )
                clinicians = [make_valid_npi(700_000 + s_i * 100 + p_i * 10 + k) for k in range(3)]
                practices[state].append((principal_for(user), clinicians))
                if p_i == 0:
                    keys.append((f"provider · {org.name}", issue_key(session, user=user, now=clock.now())))
        oversight_org = create_organization(
            session, name="Oversight (CMS / societies)", kind=OrgKind.OVERSIGHT, now=clock.now()
        )
        overseer = create_user(
            session,
            name="Oversight analyst",
            role=Role.OVERSIGHT,
            now=clock.now(),
            organization_id=oversight_org.id,
        )
        keys.append(("oversight · read everything", issue_key(session, user=overseer, now=clock.now())))
        admin = create_user(session, name="Operator", role=Role.ADMIN, now=clock.now())
        keys.append(("admin", issue_key(session, user=admin, now=clock.now())))
        session.commit()
        _generate_requests(session, rt, clock, rng, practices, reviewers, n_requests, end, progress)
    rt.engine.dispose()
    return keys


def _generate_requests(
    session: Session,
    rt: Runtime,
    clock: FixedClock,
    rng: random.Random,
    practices: dict[str, list[tuple[Principal, list[str]]]],
    reviewers: dict[str, Principal],
    n: int,
    end: dt.datetime,
    progress: bool,
) -> None:
    states = sorted(practices)
    categories = active_categories(rt.catalog)
    span = (end - DEMO_START).total_seconds()
    times = sorted(DEMO_START + dt.timedelta(seconds=rng.random() * span) for _ in range(n))
    pending_reviews: list[tuple[dt.datetime, int, str, str]] = []

    def run_reviews(until: dt.datetime) -> None:
        pending_reviews.sort()
        while pending_reviews and pending_reviews[0][0] <= until:
            at, request_id, state, decision = pending_reviews.pop(0)
            clock.set(at)
            req = session.get(requests.PaRequest, request_id)
            if req is None or req.status != "pended":
                continue
            gaps = [r["criterion_id"] for r in req.criteria_results if r.get("result") == "unmet"]
            outcome = "non_affirm" if decision == "deny" and gaps else "affirm"
            reviews.decide(
                session,
                rt,
                principal=reviewers[state],
                request_id=request_id,
                outcome=outcome,
                reasons=gaps[:2] if outcome == "non_affirm" else [],
                note="Documentation reviewed against the governing policy.",
            )
            session.commit()

    step: Callable[[], None] = lambda: None  # noqa: E731
    ctx = Progress(transient=True) if progress else None
    if ctx is not None:
        ctx.start()
        task = ctx.add_task("Generating demo requests", total=n)
        step = lambda: ctx.advance(task)  # noqa: E731
    try:
        for at in times:
            run_reviews(at)
            clock.set(at)
            state = rng.choice(states)
            principal, clinicians = rng.choice(practices[state])
            category = rng.choice(categories)
            case = rng.choices(("complete", "incomplete", "unmet", "exempt"), weights=(60, 20, 15, 5))[0]
            dos = (at + dt.timedelta(days=rng.randint(7, 40))).date()
            raw = _json(
                make_submission(
                    rt.catalog,
                    rng,
                    state=state,
                    category=category,
                    case=case,
                    date_of_service=dos,
                    npi=rng.choice(clinicians),
                    urgency="expedited" if rng.random() < 0.15 else "standard",
                    channel="mac_forwarded" if rng.random() < 0.1 else "portal",
                )
            )
            assert isinstance(raw, dict)
            data = SubmitRequestIn.model_validate(raw)
            req = requests.submit(session, rt, principal=principal, data=data, raw=raw)
            session.commit()
            if req.status == "pended":
                # Most reviews land within the deadline; some participants run late (the 2026 reality).
                hours = rng.choice((6, 20, 40, 60, 70, 90, 200, 500))
                pending_reviews.append(
                    (
                        at + dt.timedelta(hours=hours),
                        req.id,
                        state,
                        "deny" if case == "unmet" and rng.random() < 0.6 else "affirm",
                    )
                )
            step()
        run_reviews(end)
    finally:
        if ctx is not None:
            ctx.stop()


def demo_user(session: Session, role: Role) -> User | None:
    """The first demo user with a role (tests use it)."""
    from sqlalchemy import select

    return session.scalars(select(User).where(User.role == role.value).order_by(User.id)).first()
