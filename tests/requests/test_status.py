"""The state machine's allowed moves, and deemed approval as a function of time."""

from __future__ import annotations

import datetime as dt
import itertools
from types import SimpleNamespace

import pytest

from wiserpa.requests.status import (
    AFFIRMED_STATES,
    TRANSITIONS,
    Status,
    TransitionError,
    check_transition,
    effective_status,
)

ALLOWED = {
    (Status.RECEIVED, Status.PENDED),
    (Status.RECEIVED, Status.AFFIRMED),
    (Status.RECEIVED, Status.EXEMPT_AFFIRMED),
    (Status.RECEIVED, Status.GOLD_CARD_AFFIRMED),
    (Status.RECEIVED, Status.WITHDRAWN),
    (Status.PENDED, Status.AFFIRMED),
    (Status.PENDED, Status.NON_AFFIRMED),
    (Status.PENDED, Status.DEEMED_AFFIRMED),
    (Status.PENDED, Status.WITHDRAWN),
    *((s, Status.WITHDRAWN) for s in AFFIRMED_STATES),
}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(Status, Status)))
def test_every_pair_is_allowed_or_refused_as_designed(old: Status, new: Status) -> None:
    if (old, new) in ALLOWED:
        check_transition(old, new)
    else:
        with pytest.raises(TransitionError):
            check_transition(old, new)


def test_table_has_every_state() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert not TRANSITIONS[Status.NON_AFFIRMED] and not TRANSITIONS[Status.WITHDRAWN]


DUE = dt.datetime(2026, 3, 5, 16, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("deems", "status", "now", "expected"),
    [
        (True, "pended", DUE - dt.timedelta(seconds=1), "pended"),
        (True, "pended", DUE, "deemed_affirmed"),
        (True, "received", DUE + dt.timedelta(days=80), "deemed_affirmed"),
        (False, "pended", DUE + dt.timedelta(days=83), "pended"),
        (True, "non_affirmed", DUE + dt.timedelta(days=1), "non_affirmed"),
        (True, "withdrawn", DUE + dt.timedelta(days=1), "withdrawn"),
    ],
)
def test_effective_status(deems: bool, status: str, now: dt.datetime, expected: str) -> None:
    request = SimpleNamespace(deems_on_due=deems, status=status, due_at=DUE)
    assert effective_status(request, now) == expected  # type: ignore[arg-type]
