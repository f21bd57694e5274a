"""The runtime: loaded policy data, the clock and the database, shared by every interface."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from wiserpa.config import Settings
from wiserpa.policy.catalog import Catalog, load_catalog
from wiserpa.policy.clock import Clock, SystemClock
from wiserpa.policy.criteria import CriteriaLibrary, load_criteria
from wiserpa.policy.profiles import PolicyProfile, load_profile
from wiserpa.store.db import make_engine, make_sessionmaker


@dataclass
class Runtime:
    """Everything a service call needs besides its session: REST, FHIR, CLI, web and simulator share it."""

    settings: Settings
    catalog: Catalog
    criteria: CriteriaLibrary
    profile: PolicyProfile
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session] = field(repr=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        engine: Engine | None = None,
        profile: PolicyProfile | None = None,
    ) -> Runtime:
        """Load policy data once and connect to the database."""
        engine = engine or make_engine(settings.database_url)
        profile = profile or load_profile(settings.profile, extra_dirs=tuple(settings.profile_dirs))
        criteria = load_criteria()
        if profile.criteria_overrides:
            criteria = criteria.with_overrides(profile.criteria_overrides)
        return cls(
            settings=settings,
            catalog=load_catalog(),
            criteria=criteria,
            profile=profile,
            clock=clock or SystemClock(),
            engine=engine,
            sessions=make_sessionmaker(engine),
        )

    def with_profile(self, profile: PolicyProfile) -> Runtime:
        """The same runtime under another policy profile (the simulator compares them)."""
        criteria = load_criteria()
        if profile.criteria_overrides:
            criteria = criteria.with_overrides(profile.criteria_overrides)
        return Runtime(self.settings, self.catalog, criteria, profile, self.clock, self.engine, self.sessions)
