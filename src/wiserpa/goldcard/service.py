"""Looking up gold cards (evaluation and rescission live beside this)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from wiserpa.goldcard.models import GoldCard


def active_gold_card(session: Session, *, npi: str, category: str, at: dt.datetime) -> GoldCard | None:
    """The provider's gold card for the category in force at `at`, if any."""
    return session.scalars(
        select(GoldCard).where(
            GoldCard.provider_npi == npi,
            GoldCard.category == category,
            GoldCard.status == "active",
            GoldCard.valid_from <= at,
            GoldCard.valid_until > at,
        )
    ).first()
