"""Gold cards (R4): periodic evaluation, grant and renewal, rescission only after a sample review, appeal.

How each outcome counts in the affirmation rate (affirmed / (affirmed + non-affirmed)), over the requests
*received* in the look-back window [now - lookback_days, now), by their effective status at `now`:

- affirmed by criteria or by a clinician: affirmed; non-affirmed by a clinician: non-affirmed;
- exempt (R1), deemed (R3) and withdrawn: per the profile's `exempt_counts_as`, `deemed_counts_as` and
  `withdrawn_counts_as` (excluded, affirmed or non_affirmed; default excluded: none was judged on its merits);
- gold-card affirmed: affirmed, because the card is the finding that the provider's requests are appropriate
  and only a retrospective sample review may overturn it (Texas model);
- still open: excluded (not decided yet).

After a rescission, only requests received after the rescission count for that provider x category (the
rescinded card's history is what the sample review found wanting), so the next evaluation cannot simply grant
the card back.

The volume is the denominator. A card is granted only when volume >= min_requests and rate >= the threshold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sqlalchemy import and_, bindparam, case, func, select
from sqlalchemy.orm import Session

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.config import Settings
from wiserpa.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from wiserpa.goldcard.models import GoldCard
from wiserpa.requests.models import PaRequest
from wiserpa.requests.status import Status, effective_status_sql
from wiserpa.runtime import Runtime
from wiserpa.store.base import read_connection, table_of

# An active card this close to its end is renewed by an evaluation that finds the provider still qualifies.
# (A project choice: one month leaves time to evaluate before the card lapses.)
RENEWAL_WINDOW_DAYS = 30


# Built once: every CRD hook asks it (fhir.crd), so it should not be rebuilt per call.
_ACTIVE_CARD = (
    select(GoldCard)
    .where(
        GoldCard.provider_npi == bindparam("npi"),
        GoldCard.category == bindparam("category"),
        GoldCard.status == "active",
        GoldCard.valid_from <= bindparam("at"),
        GoldCard.valid_until > bindparam("at"),
    )
    .order_by(GoldCard.id)
    .limit(1)
)


def active_gold_card(session: Session, *, npi: str, category: str, at: dt.datetime) -> GoldCard | None:
    """The provider's gold card for the category in force at `at`, if any."""
    return session.scalars(_ACTIVE_CARD, {"npi": npi, "category": category, "at": at}).first()


# Built once; a Core statement run on the session's connection, since every batch of submissions under a
# gold-card profile asks it (see store.base.read_connection).
_CARDS = table_of(GoldCard)
_ACTIVE_CARDS_OF = select(
    _CARDS.c.provider_npi, _CARDS.c.category, _CARDS.c.valid_from, _CARDS.c.valid_until
).where(_CARDS.c.provider_npi.in_(bindparam("npis", expanding=True)), _CARDS.c.status == "active")


def gold_carded(session: Session, asks: Sequence[tuple[str, str, dt.datetime]]) -> list[bool]:
    """For each (npi, category, instant): whether an active gold card is in force then; one query for all."""
    if not asks:
        return []
    cards: dict[tuple[str, str], list[tuple[dt.datetime, dt.datetime]]] = {}
    for npi, category, valid_from, valid_until in read_connection(session).execute(
        _ACTIVE_CARDS_OF, {"npis": sorted({npi for npi, _, _ in asks})}
    ):
        cards.setdefault((npi, category), []).append((valid_from, valid_until))
    # The same window test as _ACTIVE_CARD: in force from valid_from, up to (not including) valid_until.
    return [
        any(start <= at < end for start, end in cards.get((npi, category), ())) for npi, category, at in asks
    ]


# ---------------------------------------------------------------------------------------------- evaluation


@dataclass
class ProviderEvaluation:
    """One provider x category: the figures and what the evaluation did."""

    npi: str
    category: str
    affirmed: int = 0
    non_affirmed: int = 0
    excluded: int = 0
    action: str = ""  # granted | renewed | kept | below_threshold | below_volume | not_renewed | disabled
    card_id: int | None = None
    counted_from: dt.datetime | None = None  # the last rescission in the window, when there is one

    @property
    def volume(self) -> int:
        """Requests that count: the rate's denominator."""
        return self.affirmed + self.non_affirmed

    @property
    def rate(self) -> float | None:
        """Affirmation rate, or None without volume."""
        return self.affirmed / self.volume if self.volume else None


@dataclass
class EvaluationReport:
    """What one evaluation run found and did."""

    at: dt.datetime
    window_start: dt.datetime
    window_end: dt.datetime
    profile_id: str
    enabled: bool
    evaluations: list[ProviderEvaluation] = field(default_factory=list)
    expired: int = 0

    def count(self, action: str) -> int:
        """How many provider x category pairs ended with `action`."""
        return sum(e.action == action for e in self.evaluations)

    @property
    def granted(self) -> int:
        """New cards."""
        return self.count("granted")

    @property
    def renewed(self) -> int:
        """Expiring cards renewed."""
        return self.count("renewed")


def _counts_as(rt: Runtime, status: str) -> str:
    gc = rt.profile.gold_card
    if status in (Status.AFFIRMED.value, Status.GOLD_CARD_AFFIRMED.value):
        return "affirmed"
    if status == Status.NON_AFFIRMED.value:
        return "non_affirmed"
    if status == Status.EXEMPT_AFFIRMED.value:
        return gc.exempt_counts_as
    if status == Status.DEEMED_AFFIRMED.value:
        return gc.deemed_counts_as
    if status == Status.WITHDRAWN.value:
        return gc.withdrawn_counts_as
    return "excluded"  # open: not decided yet


def evaluate(
    session: Session,
    rt: Runtime,
    *,
    now: dt.datetime,
    npis: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationReport:
    """Evaluate each provider x category over the look-back window; grant, renew or let lapse (no commit)."""
    gc = rt.profile.gold_card
    start = now - dt.timedelta(days=gc.lookback_days)
    report = EvaluationReport(now, start, now, rt.profile.id, gc.enabled)
    # Cards past their end are marked expired so listings say so (active_gold_card already ignores them).
    for card in session.scalars(
        select(GoldCard).where(GoldCard.status == "active", GoldCard.valid_until <= now)
    ):
        card.status = "expired"
        report.expired += 1
    if not gc.enabled:
        return report
    # The last rescission per provider x category in the window: requests received up to it do not count.
    rescinded = (
        select(
            GoldCard.provider_npi.label("npi"),
            GoldCard.category.label("category"),
            func.max(GoldCard.rescinded_at).label("at"),
        )
        .where(GoldCard.status == "rescinded", GoldCard.rescinded_at >= start, GoldCard.rescinded_at <= now)
        .group_by(GoldCard.provider_npi, GoldCard.category)
    )
    if npis:
        rescinded = rescinded.where(GoldCard.provider_npi.in_(list(npis)))
    resc = rescinded.subquery()
    conditions = [PaRequest.received_at >= start, PaRequest.received_at < now]
    if npis:
        conditions.append(PaRequest.provider_npi.in_(list(npis)))
    # Grouped through a subquery so PostgreSQL need not match two copies of the time-bound CASE.
    sub = (
        select(
            PaRequest.provider_npi.label("npi"),
            PaRequest.category.label("category"),
            effective_status_sql(now).label("status"),
            resc.c.at.label("since"),
            case((PaRequest.received_at <= resc.c.at, 1), else_=0).label("before"),
        )
        .select_from(PaRequest)
        .outerjoin(resc, and_(resc.c.npi == PaRequest.provider_npi, resc.c.category == PaRequest.category))
        .where(and_(*conditions))
        .subquery()
    )
    rows = session.execute(
        select(sub.c.npi, sub.c.category, sub.c.status, sub.c.since, sub.c.before, func.count()).group_by(
            sub.c.npi, sub.c.category, sub.c.status, sub.c.since, sub.c.before
        )
    ).all()
    pairs: dict[tuple[str, str], ProviderEvaluation] = {}
    for npi, category, st, since, before, n in rows:
        ev = pairs.setdefault((npi, category), ProviderEvaluation(npi, category, counted_from=since))
        if before:
            ev.excluded += n
            continue
        kind = _counts_as(rt, st)
        if kind == "affirmed":
            ev.affirmed += n
        elif kind == "non_affirmed":
            ev.non_affirmed += n
        else:
            ev.excluded += n
    # Every card that can matter (in force now, or a successor starting later), read once rather than twice
    # per provider x category.
    live = select(GoldCard).where(GoldCard.status == "active", GoldCard.valid_until > now)
    if npis:
        live = live.where(GoldCard.provider_npi.in_(list(npis)))
    cards: dict[tuple[str, str], list[GoldCard]] = {}
    for card in session.scalars(live.order_by(GoldCard.id)):
        cards.setdefault((card.provider_npi, card.category), []).append(card)
    total = len(pairs)
    for i, key in enumerate(sorted(pairs), 1):
        ev = pairs[key]
        _act(session, rt, ev, cards.get(key, []), now=now, window=(ev.counted_from or start, now))
        report.evaluations.append(ev)
        if progress is not None:
            progress(i, total)
    return report


def _act(
    session: Session,
    rt: Runtime,
    ev: ProviderEvaluation,
    cards: Sequence[GoldCard],
    *,
    now: dt.datetime,
    window: tuple[dt.datetime, dt.datetime],
) -> None:
    """Grant, renew or keep the pair's card; `cards` are its active cards not yet ended, oldest first."""
    gc = rt.profile.gold_card
    qualifies = ev.volume >= gc.min_requests and (ev.rate or 0.0) >= gc.min_affirmation_rate
    # The same rules as active_gold_card and the successor query, over the cards read once by evaluate.
    current = next((c for c in cards if c.valid_from <= now < c.valid_until), None)
    if current is not None:
        ev.card_id = current.id
        successor = next((c for c in cards if c.valid_from >= current.valid_until), None)
        expiring = current.valid_until - now <= dt.timedelta(days=RENEWAL_WINDOW_DAYS)
        if successor is not None:
            ev.action, ev.card_id = "kept", successor.id
        elif not expiring:
            # Falling below the threshold does not end a card: only a sample review can (rescission).
            ev.action = "kept"
        elif qualifies:
            card = _new_card(rt, ev, now=now, start=current.valid_until, window=window, renews=current.id)
            session.add(card)
            session.flush()
            ev.action, ev.card_id = "renewed", card.id
            _audit(session, card, "goldcard.renew", now)
        else:
            ev.action = "not_renewed"
        return
    if not qualifies:
        ev.action = "below_volume" if ev.volume < gc.min_requests else "below_threshold"
        return
    card = _new_card(rt, ev, now=now, start=now, window=window, renews=None)
    session.add(card)
    session.flush()
    ev.action, ev.card_id = "granted", card.id
    _audit(session, card, "goldcard.grant", now)


def _new_card(
    rt: Runtime,
    ev: ProviderEvaluation,
    *,
    now: dt.datetime,
    start: dt.datetime,
    window: tuple[dt.datetime, dt.datetime],
    renews: int | None,
) -> GoldCard:
    gc = rt.profile.gold_card
    return GoldCard(
        provider_npi=ev.npi,
        category=ev.category,
        status="active",
        granted_at=now,
        valid_from=start,
        valid_until=start + dt.timedelta(days=gc.validity_days),
        affirmation_rate=float(ev.rate or 0.0),
        volume=ev.volume,
        window_start=window[0],
        window_end=window[1],
        profile_id=rt.profile.id,
        profile_version=rt.profile.version,
        details={
            "affirmed": ev.affirmed,
            "non_affirmed": ev.non_affirmed,
            "excluded": ev.excluded,
            "renews": renews,
            "rule": {
                "min_affirmation_rate": gc.min_affirmation_rate,
                "min_requests": gc.min_requests,
                "lookback_days": gc.lookback_days,
                "validity_days": gc.validity_days,
                "exempt_counts_as": gc.exempt_counts_as,
                "deemed_counts_as": gc.deemed_counts_as,
                "withdrawn_counts_as": gc.withdrawn_counts_as,
            },
            "sample_reviews": [],
            "appeals": [],
        },
    )


def _audit(session: Session, card: GoldCard, action: str, now: dt.datetime, **details: Any) -> None:
    audit.record(
        session,
        actor=audit.SYSTEM,
        action=action,
        object_type="gold_card",
        object_id=card.id,
        outcome=card.status,
        at=now,
        details={"npi": card.provider_npi, "category": card.category, **details},
    )


# ---------------------------------------------------------------------------------------------- rescission


def _load(session: Session, card_id: int, *, for_update: bool = False) -> GoldCard:
    stmt = select(GoldCard).where(GoldCard.id == card_id)
    if for_update:
        stmt = stmt.with_for_update()
    card = session.scalars(stmt).first()
    if card is None:
        raise NotFound(f"gold card {card_id} not found")
    return card


def _has_requests_in(session: Session, npi: str, state: str | None) -> bool:
    """Whether the NPI has any request in the state (a reviewer's scope for gold cards)."""
    stmt = select(PaRequest.id).where(PaRequest.provider_npi == npi, PaRequest.state == state).limit(1)
    return session.scalars(stmt).first() is not None


def record_sample_review(
    session: Session,
    rt: Runtime,
    *,
    card_id: int,
    reviewed: Sequence[tuple[int, bool]],
    reviewer: Principal,
) -> GoldCard:
    """A retrospective review of 5-20 gold-carded requests; rescinds (with notice) only under threshold."""
    if reviewer.role is Role.REVIEWER and not reviewer.is_clinician:
        raise Forbidden("a retrospective sample review needs a clinician reviewer")
    if reviewer.role not in (Role.REVIEWER, Role.OVERSIGHT):
        raise Forbidden("only a clinician reviewer or oversight may review a gold card's sample")
    gc = rt.profile.gold_card
    card = _load(session, card_id, for_update=True)
    if reviewer.role is Role.REVIEWER and not _has_requests_in(session, card.provider_npi, reviewer.state):
        # The same scope as list_cards: a card a reviewer cannot list does not exist for it.
        raise NotFound(f"gold card {card_id} not found")
    if card.status != "active":
        raise Conflict(f"gold card {card.id} is {card.status}; only an active card can be reviewed")
    ids = [rid for rid, _ in reviewed]
    if not gc.rescission_sample_min <= len(ids) <= gc.rescission_sample_max:
        raise Invalid(
            "the sample size is outside the profile's range",
            [
                FieldError(
                    "reviewed",
                    f"review {gc.rescission_sample_min} to {gc.rescission_sample_max} cases, not {len(ids)}",
                )
            ],
        )
    if len(set(ids)) != len(ids):
        raise Invalid("a case appears twice", [FieldError("reviewed", "each request id at most once")])
    found = session.scalars(select(PaRequest).where(PaRequest.id.in_(ids))).all()
    by_id = {r.id: r for r in found}
    wrong = [
        rid
        for rid in ids
        if rid not in by_id
        or by_id[rid].provider_npi != card.provider_npi
        or by_id[rid].category != card.category
        or by_id[rid].decision_kind != "gold_card"
        # carded under this card, not under an earlier one of the same provider and service
        or not card.valid_from <= by_id[rid].received_at < card.valid_until
        or (reviewer.role is Role.REVIEWER and by_id[rid].state != reviewer.state)
    ]
    if wrong:
        raise Invalid(
            "the sample must be this card's gold-carded requests",
            [FieldError("reviewed", f"not gold-carded requests of this card: {wrong}")],
        )
    now = rt.clock.now()
    appropriate = sum(ok for _, ok in reviewed)
    share = appropriate / len(ids)
    rescind = share < gc.rescission_threshold
    review = {
        "at": now.isoformat(),
        "reviewer": {"user_id": reviewer.user_id, "name": reviewer.name, "npi": reviewer.npi},
        "cases": [{"request_id": rid, "appropriate": ok} for rid, ok in reviewed],
        "appropriate_share": round(share, 4),
        "threshold": gc.rescission_threshold,
        "outcome": "rescinded" if rescind else "kept",
    }
    details = dict(card.details or {})
    details["sample_reviews"] = [*details.get("sample_reviews", []), review]
    if rescind:
        card.status = "rescinded"
        card.rescinded_at = now
        card.rescission_reason = (
            f"retrospective review of {len(ids)} cases found {appropriate} appropriate "
            f"({share:.0%}, under {gc.rescission_threshold:.0%})"
        )
        details["notice"] = {
            "sent_at": now.isoformat(),
            "to_npi": card.provider_npi,
            "text": f"Your gold card for {card.category} is rescinded: {card.rescission_reason}. "
            "You may appeal (POST /api/v1/gold-cards/{id}/appeal).".replace("{id}", str(card.id)),
        }
        # A renewal already granted rests on the same history: it ends with the card it renews.
        for successor in session.scalars(
            select(GoldCard)
            .where(
                GoldCard.provider_npi == card.provider_npi,
                GoldCard.category == card.category,
                GoldCard.status == "active",
                GoldCard.valid_from >= card.valid_until,
            )
            .with_for_update()
        ):
            successor.status = "rescinded"
            successor.rescinded_at = now
            successor.rescission_reason = (
                f"renewal of gold card {card.id}, rescinded: {card.rescission_reason}"
            )
            details["notice"]["also_rescinded"] = [*details["notice"].get("also_rescinded", []), successor.id]
            _audit(session, successor, "goldcard.rescind_renewal", now, renews=card.id)
    card.details = details
    _audit(
        session,
        card,
        "goldcard.sample_review",
        now,
        appropriate_share=round(share, 4),
        cases=len(ids),
        reviewer=reviewer.user_id,
    )
    return card


def appeal(session: Session, rt: Runtime, *, principal: Principal, card_id: int, reason: str) -> GoldCard:
    """The provider appeals a rescission; the appeal is recorded for an independent review."""
    card = _load(session, card_id, for_update=True)
    if principal.role is not Role.PROVIDER or card.provider_npi not in provider_npis(session, principal):
        raise NotFound(f"gold card {card_id} not found")
    if card.status != "rescinded":
        raise Conflict(f"gold card {card.id} is {card.status}; only a rescission can be appealed")
    if not reason.strip():
        raise Invalid("say why", [FieldError("reason", "give the grounds for the appeal")])
    now = rt.clock.now()
    details = dict(card.details or {})
    appeals = list(details.get("appeals", []))
    if any(a.get("status") == "filed" for a in appeals):
        raise Conflict(f"an appeal of gold card {card.id} is already pending")
    appeals.append(
        {
            "id": len(appeals) + 1,
            "filed_at": now.isoformat(),
            "by_user_id": principal.user_id,
            "reason": reason,
            "status": "filed",
            "reviewed_by": "independent review organization",
        }
    )
    details["appeals"] = appeals
    card.details = details
    _audit(session, card, "goldcard.appeal", now, by=principal.user_id)
    return card


AppealOutcome = Literal["upheld", "overturned"]  # the body of the decision route takes these too


def decide_appeal(
    session: Session, rt: Runtime, *, principal: Principal, card_id: int, outcome: str, note: str
) -> GoldCard:
    """An oversight reviewer, independent of the participant that rescinded the card, decides its pending appeal.

    Upheld, the rescission stands. Overturned, the card is in force again until its original end, and so is
    any renewal rescinded with it; the rescission is kept in the appeal's record. A card that a newer one has
    replaced meanwhile for the same provider and service stays as it is (the appeal says so): two cards are
    never in force at once.
    """
    if principal.role not in (Role.OVERSIGHT, Role.ADMIN):
        # The participant rescinded the card, so it cannot judge the appeal (R4); providers file, not decide.
        raise Forbidden("gold-card appeals are decided by oversight staff, independently of the participant")
    if outcome not in get_args(AppealOutcome):
        raise Invalid("unknown outcome", [FieldError("outcome", "use upheld or overturned")])
    if not note.strip():
        raise Invalid("say why", [FieldError("note", "give the grounds for the decision")])
    card = _load(session, card_id, for_update=True)
    details = dict(card.details or {})
    appeals = [dict(a) for a in details.get("appeals", [])]
    pending = next((a for a in appeals if a.get("status") == "filed"), None)
    if pending is None:
        raise Conflict(f"gold card {card.id} has no pending appeal")
    now = rt.clock.now()
    pending.update(
        status=outcome, decided_at=now.isoformat(), decided_by_user_id=principal.user_id, decision_note=note
    )
    if outcome == "overturned":
        renewals = [int(i) for i in (details.get("notice") or {}).get("also_rescinded", [])]
        restored, blocked = [], []
        for c in [card, *(_load(session, i, for_update=True) for i in renewals)]:
            if c.status != "rescinded":
                continue
            if _replaced(session, c):
                blocked.append(c.id)
                continue
            overturned = {
                "rescinded_at": _iso(c.rescinded_at),
                "reason": c.rescission_reason,
                "at": now.isoformat(),
            }
            c.status, c.rescinded_at, c.rescission_reason = "active", None, None
            restored.append(c.id)
            if c is card:
                details["rescission_overturned"] = overturned
            else:
                c.details = {**(c.details or {}), "rescission_overturned": overturned}
                _audit(session, c, "goldcard.reinstate_renewal", now, renews=card.id)
        pending.update(reinstated=restored, not_reinstated=blocked)
        if blocked:
            pending["not_reinstated_why"] = "a newer gold card for this provider and service replaced it"
    details["appeals"] = appeals
    card.details = details
    _audit(session, card, "goldcard.appeal_decision", now, outcome=outcome, by=principal.user_id)
    return card


def _replaced(session: Session, card: GoldCard) -> bool:
    """Whether another card of the same provider and service, in force or to come, overlaps this one's validity."""
    return (
        session.scalars(
            select(GoldCard.id).where(
                GoldCard.provider_npi == card.provider_npi,
                GoldCard.category == card.category,
                GoldCard.status == "active",
                GoldCard.id != card.id,
                GoldCard.valid_from < card.valid_until,
                GoldCard.valid_until > card.valid_from,
            )
        ).first()
        is not None
    )


# ---------------------------------------------------------------------------------------------- reads


def provider_npis(session: Session, principal: Principal) -> set[str]:
    """NPIs that appear on the provider organization's requests."""
    return set(
        session.scalars(
            select(PaRequest.provider_npi)
            .where(PaRequest.organization_id == principal.organization_id)
            .distinct()
        )
    )


def list_cards(
    session: Session, rt: Runtime, *, principal: Principal, npi: str | None = None
) -> list[GoldCard]:
    """Gold cards in the caller's scope: providers see their organization's NPIs, reviewers their state's."""
    stmt = select(GoldCard).order_by(GoldCard.provider_npi, GoldCard.category, GoldCard.valid_from)
    if npi:
        stmt = stmt.where(GoldCard.provider_npi == npi)
    if principal.role is Role.PROVIDER:
        stmt = stmt.where(GoldCard.provider_npi.in_(provider_npis(session, principal)))
    elif principal.role is Role.REVIEWER:
        in_state = select(PaRequest.provider_npi).where(PaRequest.state == principal.state).distinct()
        stmt = stmt.where(GoldCard.provider_npi.in_(in_state))
    elif principal.role not in (Role.OVERSIGHT, Role.ADMIN):
        raise Forbidden("not allowed")
    cards = list(session.scalars(stmt))
    audit.record(
        session,
        actor=principal.actor,
        action="goldcard.list",
        object_type="gold_card",
        object_id=None,
        outcome="ok",
        at=rt.clock.now(),
        details={"ids": [c.id for c in cards]},
    )
    return cards


def card_view(card: GoldCard, *, now: dt.datetime) -> dict[str, Any]:
    """JSON for a card, with why it was granted."""
    details = card.details or {}
    in_force = card.status == "active" and card.valid_from <= now < card.valid_until
    return {
        "id": card.id,
        "provider_npi": card.provider_npi,
        "category": card.category,
        "status": card.status,
        "in_force": in_force,
        "granted_at": _iso(card.granted_at),
        "valid_from": _iso(card.valid_from),
        "valid_until": _iso(card.valid_until),
        "why": {
            "affirmation_rate": round(card.affirmation_rate, 4),
            "volume": card.volume,
            "affirmed": details.get("affirmed"),
            "non_affirmed": details.get("non_affirmed"),
            "excluded": details.get("excluded"),
            "window_start": _iso(card.window_start),
            "window_end": _iso(card.window_end),
            "profile": {"id": card.profile_id, "version": card.profile_version},
            "rule": details.get("rule"),
            "renews": details.get("renews"),
        },
        "rescinded_at": _iso(card.rescinded_at),
        "rescission_reason": card.rescission_reason,
        "notice": details.get("notice"),
        "sample_reviews": details.get("sample_reviews", []),
        "appeals": details.get("appeals", []),
        "rescission_overturned": details.get("rescission_overturned"),  # on appeal: the rescission it undid
    }


def run_cli_evaluation(settings: Settings, *, echo: Callable[[str], Any]) -> EvaluationReport:
    """`wiserpa goldcard evaluate`: evaluate everyone now, with a progress bar, and commit."""
    from rich.progress import Progress

    rt = Runtime.build(settings)
    try:
        with rt.sessions() as session, Progress(transient=True) as bar:
            task = bar.add_task("evaluating providers", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = evaluate(session, rt, now=rt.clock.now(), progress=progress)
            session.commit()
    finally:
        rt.engine.dispose()
    if not report.enabled:
        echo(f"gold cards are off in profile {report.profile_id}; {report.expired} cards marked expired")
        return report
    echo(
        f"evaluated {len(report.evaluations)} provider x service pairs over "
        f"{report.window_start.date()}..{report.window_end.date()} ({report.profile_id}): "
        f"{report.granted} granted, {report.renewed} renewed, {report.count('kept')} kept, "
        f"{report.count('not_renewed')} not renewed, {report.count('below_threshold')} below the rate, "
        f"{report.count('below_volume')} below the volume, {report.expired} expired"
    )
    return report


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


__all__ = [
    "RENEWAL_WINDOW_DAYS",
    "EvaluationReport",
    "ProviderEvaluation",
    "active_gold_card",
    "appeal",
    "card_view",
    "evaluate",
    "list_cards",
    "provider_npis",
    "record_sample_review",
    "run_cli_evaluation",
]
