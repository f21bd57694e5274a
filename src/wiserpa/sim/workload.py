"""The synthetic workload: who submits what, when, and what happens to it outside the engine.

Everything random is drawn here, up front, from one seed, so every policy profile sees the *same* patients,
providers, arrivals and provider behaviour (common random numbers): differences between profiles come from the
engine alone. Numbers come from `data/sim/assumptions.yaml`, each with its source.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from wiserpa.policy.catalog import Catalog
from wiserpa.policy.clock import BusinessCalendar
from wiserpa.policy.validation import make_valid_mbi, make_valid_npi
from wiserpa.policy.yaml_text import load_yaml

__all__ = [
    "Arrival",
    "Assumptions",
    "Practice",
    "TicketArrival",
    "Workload",
    "annual_volume",
    "generate",
    "load_assumptions",
]

CASES = ("complete", "incomplete", "unmet")
_T = TypeVar("_T")


class AssumptionError(ValueError):
    """An assumptions file entry without a value or a source."""


@dataclass(frozen=True)
class Assumptions:
    """Flattened assumptions: dotted key -> value, and dotted key -> source."""

    values: dict[str, Any]
    sources: dict[str, str]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def with_values(self, **overrides: Any) -> Assumptions:
        """A copy with some values replaced (keys use '__' for dots); sources say 'override'."""
        values, sources = dict(self.values), dict(self.sources)
        for k, v in overrides.items():
            key = k.replace("__", ".")
            if key not in values:
                raise KeyError(f"unknown assumption {key}")
            values[key] = v
            sources[key] = "override (scenario)"
        return Assumptions(values, sources)


def _flatten(node: dict[str, Any], prefix: str, values: dict[str, Any], sources: dict[str, str]) -> None:
    for key, item in node.items():
        path = f"{prefix}{key}"
        if not isinstance(item, dict):
            raise AssumptionError(f"{path}: expected a mapping with value and source")
        if "value" in item or "source" in item:
            if "value" not in item or not str(item.get("source") or "").strip():
                raise AssumptionError(
                    f"{path}: every number needs a value and a source (or 'assumption: ...')"
                )
            values[path] = item["value"]
            sources[path] = str(item["source"])
        else:
            _flatten(item, f"{path}.", values, sources)


def parse_assumptions(text: str) -> Assumptions:
    """Parse an assumptions YAML document; refuse any leaf without a source."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    _flatten(load_yaml(text) or {}, "", values, sources)
    return Assumptions(values, sources)


@cache
def load_assumptions() -> Assumptions:
    """The packaged assumptions."""
    return parse_assumptions(files("wiserpa").joinpath("data", "sim", "assumptions.yaml").read_text("utf-8"))


def annual_volume(a: Assumptions, state: str) -> float:
    """Requests per year in a state: NJ's Q1 figure annualized, scaled by the state factor."""
    weekly_nj = a["volume.nj_q1_requests"] / a["volume.q1_operating_weeks"]
    return float(weekly_nj * a["volume.year_operating_weeks"] * a["volume.state_factor"][state])


# ------------------------------------------------------------------------------------------- the population


@dataclass(frozen=True)
class Practice:
    """A provider organization: its clinicians' NPIs and its documentation accuracy class."""

    index: int
    accuracy: str
    npis: tuple[str, ...]
    weight: float


@dataclass
class Arrival:
    """One patient episode: the first request and everything the provider will do, decided up front."""

    seq: int
    at: dt.datetime
    practice: int
    npi: str
    mbi: str
    category: str
    case: str
    exempt_eligible: bool
    urgency: str
    channel: str
    mac_received_at: dt.datetime | None
    date_of_service: dt.date
    anesthesia: bool
    proceeds_without_pa: bool
    resubmits: bool
    resubmit_delay_days: int
    peer_to_peer: bool
    claim_lag_days: int
    seed: int  # per-episode seed for anything decided later (reviewer's choice, service time)
    submission_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TicketArrival:
    """A support ticket a practice opens."""

    at: dt.datetime
    practice: int
    urgent: bool
    pick: int  # which of the profile's urgent triggers (the list is policy data, read at run time)
    response_hours: float


@dataclass
class Workload:
    """Everything the engine will be fed for one state and period."""

    state: str
    start: dt.datetime
    end: dt.datetime
    practices: list[Practice]
    arrivals: list[Arrival]
    tickets: list[TicketArrival]
    anesthesia_npis: tuple[str, ...]
    expected_annual: float


def _business_days(cal: BusinessCalendar, first: dt.date, last: dt.date) -> list[dt.date]:
    days = []
    d = first
    while d <= last:
        if cal.is_business_day(d):
            days.append(d)
        d += dt.timedelta(days=1)
    return days


def _hhmm(text: str) -> dt.time:
    h, m = text.split(":")
    return dt.time(int(h), int(m))


def _share(table: dict[str, float], key: str) -> float:
    return float(table.get(key, table.get("default", 0.0)))


def _pick(rng: random.Random, population: Sequence[_T], cum_weights: list[float]) -> _T:
    """`rng.choices(population, cum_weights=cum_weights)[0]`: the same draw, without its per-call checks.

    What `choices` does for one item (one `random()`, scaled by the total, bisected), called 150,000 times for
    50,000 arrivals: 0.98 -> 0.79 s of CPU to draw them (the same workload).
    """
    return population[
        bisect_right(cum_weights, rng.random() * (cum_weights[-1] + 0.0), 0, len(population) - 1)
    ]


def _intake_days(
    a: Assumptions, catalog: Catalog, *, state: str, start: dt.datetime, end: dt.datetime
) -> list[dt.date]:
    """The business days of [start, end) on which practices submit, state time."""
    info = catalog.state(state)
    if info is None:
        raise ValueError(f"{state} is not a WISeR state")
    zone = ZoneInfo(info.timezone)
    open_t, close_t = (_hhmm(x) for x in a["arrivals.business_hours"])
    cal = BusinessCalendar(info.timezone, open_t, close_t)
    first_day = max(start.astimezone(zone).date(), catalog.requests_from)
    last_day = (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    return _business_days(cal, first_day, last_day)


def arrival_count(
    a: Assumptions,
    catalog: Catalog,
    *,
    state: str,
    start: dt.datetime,
    end: dt.datetime,
    scale: float,
    requests: int | None = None,
) -> int:
    """How many patients `generate` draws for these arguments, without drawing them."""
    days = _intake_days(a, catalog, state=state, start=start, end=end)
    if requests is None:
        weeks = max(0.0, (len(days) / 5.0))
        requests = round(annual_volume(a, state) / a["volume.year_operating_weeks"] * weeks * scale)
    return max(0, int(requests)) if days else 0


def generate(
    a: Assumptions,
    catalog: Catalog,
    *,
    state: str,
    start: dt.datetime,
    end: dt.datetime,
    scale: float,
    seed: int,
    requests: int | None = None,
) -> Workload:
    """Draw the workload for [start, end): volume from the assumptions (or `requests`), times `scale`."""
    info = catalog.state(state)
    if info is None:
        raise ValueError(f"{state} is not a WISeR state")
    rng = random.Random(f"workload:{seed}:{state}")
    zone = ZoneInfo(info.timezone)
    open_t, close_t = (_hhmm(x) for x in a["arrivals.business_hours"])
    days = _intake_days(a, catalog, state=state, start=start, end=end)
    expected_annual = annual_volume(a, state)
    n = arrival_count(a, catalog, state=state, start=start, end=end, scale=scale, requests=requests)

    # Providers: practices with a long-tailed volume, each of an accuracy class. Their number follows the
    # yearly volume, so each keeps a realistic yearly volume (what a gold card looks at) whatever the window.
    weeks = len(days) / 5.0
    yearly = n * a["volume.year_operating_weeks"] / weeks if weeks else float(n)
    n_practices = max(3, round(a["providers.practices_per_10k_requests"] * yearly / 10_000))
    classes = a["providers.classes"]
    shares = {name: float(c["share"]) for name, c in classes.items()}
    # Classes by quota (largest remainder), then shuffled: the mix holds even with a handful of practices.
    quota = {name: int(share * n_practices) for name, share in shares.items()}
    for name in sorted(shares, key=lambda k: shares[k] * n_practices - quota[k], reverse=True):
        if sum(quota.values()) >= n_practices:
            break
        quota[name] += 1
    labels = [name for name, q in quota.items() for _ in range(q)]
    rng.shuffle(labels)
    lo, hi = a["providers.clinicians_per_practice"]
    raw_weights = [rng.paretovariate(1.6) for _ in labels]
    # Each class sends its share of the volume (big and small practices within it), so one large practice
    # cannot swing the overall case mix.
    class_total = {
        name: sum(w for w, lab in zip(raw_weights, labels, strict=True) if lab == name) for name in quota
    }
    practices: list[Practice] = []
    for i, (label, w) in enumerate(zip(labels, raw_weights, strict=True)):
        npis = tuple(make_valid_npi(3_000_000 + i * 10 + k) for k in range(rng.randint(lo, hi)))
        practices.append(Practice(i, label, npis, weight=shares[label] * w / class_total[label]))
    anesthesia_npis = tuple(make_valid_npi(4_000_000 + k) for k in range(4))

    mix = a["volume.category_mix"]
    cats = [c for c in mix if c in catalog.categories and catalog.categories[c].active]
    weights = [mix[c] for c in cats]
    lead_lo, lead_hi = a["arrivals.date_of_service_lead_days"]
    fwd_lo, fwd_hi = a["volume.mac_forwarding_delay_hours"]
    rs_lo, rs_hi = a["provider_behaviour.resubmit_delay_business_days"]
    lag_lo, lag_hi = a["anesthesia.claim_lag_days"]
    span = (
        dt.datetime.combine(dt.date.min, close_t) - dt.datetime.combine(dt.date.min, open_t)
    ).total_seconds()
    stamps: list[dt.datetime] = []
    for _ in range(n):
        day = rng.choice(days)
        local = dt.datetime.combine(day, open_t, zone) + dt.timedelta(seconds=int(rng.random() * span))
        stamps.append(local.astimezone(dt.UTC))
    stamps.sort()
    arrivals: list[Arrival] = []
    # Cumulative weights and shares computed once (what `choices(weights=...)` computes on every call), so
    # the draws, and therefore the workload, are the same (1.0 -> 0.8 s of CPU for 50,000 arrivals).
    practice_cum = list(itertools.accumulate(p.weight for p in practices))
    case_cum = {
        name: list(itertools.accumulate([c["complete"], c["incomplete"], c["unmet"]]))
        for name, c in classes.items()
    }
    cat_cum = list(itertools.accumulate(weights))
    mac_share, expedited_share = a["volume.mac_forwarded_share"], a["volume.expedited_share"]
    exempt_share = {c: _share(a["providers.exempt_eligible_share"], c) for c in cats}
    anesthesia_share = {c: _share(a["anesthesia.share_with_anesthesia"], c) for c in cats}
    without_pa_share = a["anesthesia.proceed_without_pa_share"]
    resubmit_share = a["provider_behaviour.resubmit_incomplete_share"]
    p2p_share = a["provider_behaviour.peer_to_peer_share"]
    for seq, at in enumerate(stamps):
        practice = _pick(rng, practices, practice_cum)
        case = _pick(rng, CASES, case_cum[practice.accuracy])
        category = _pick(rng, cats, cat_cum)
        channel = "mac_forwarded" if rng.random() < mac_share else "portal"
        mac_at = at - dt.timedelta(hours=rng.uniform(fwd_lo, fwd_hi)) if channel == "mac_forwarded" else None
        dos = at.astimezone(zone).date() + dt.timedelta(days=rng.randint(lead_lo, lead_hi))
        dos = max(dos, catalog.services_from)
        arrivals.append(
            Arrival(
                seq=seq,
                at=at,
                practice=practice.index,
                npi=rng.choice(practice.npis),
                mbi=make_valid_mbi(10_000_000 + seq),
                category=category,
                case=case,
                exempt_eligible=rng.random() < exempt_share[category],
                urgency="expedited" if rng.random() < expedited_share else "standard",
                channel=channel,
                mac_received_at=mac_at,
                date_of_service=dos,
                anesthesia=rng.random() < anesthesia_share[category],
                proceeds_without_pa=rng.random() < without_pa_share,
                resubmits=rng.random() < resubmit_share,
                resubmit_delay_days=rng.randint(rs_lo, rs_hi),
                peer_to_peer=rng.random() < p2p_share,
                claim_lag_days=rng.randint(lag_lo, lag_hi),
                seed=rng.getrandbits(48),
                submission_seed=rng.getrandbits(48),
            )
        )
    # Support tickets: a Poisson-like share of request arrivals, at the same instants.
    tickets: list[TicketArrival] = []
    med, sigma = a["support.response_hours"]["median"], a["support.response_hours"]["sigma"]
    for arr in arrivals:
        if rng.random() < a["support.tickets_per_request"]:
            urgent = rng.random() < a["support.urgent_share"]
            tickets.append(
                TicketArrival(
                    at=arr.at + dt.timedelta(minutes=rng.randint(1, 120)),
                    practice=arr.practice,
                    urgent=urgent,
                    pick=rng.randrange(1_000),
                    response_hours=rng.lognormvariate(math.log(med), sigma),
                )
            )
    tickets.sort(key=lambda t: t.at)
    return Workload(state, start, end, practices, arrivals, tickets, anesthesia_npis, expected_annual)
