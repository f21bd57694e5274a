"""Named policy profiles: every timeline, safeguard and money parameter as editable, cited YAML.

A profile file lives in ``wiserpa/data/profiles`` (packaged) or any directory the caller passes. ``extends``
deep-merges a file over its parent (mappings key by key; lists and scalars replace). Each section's
``sources`` maps a parameter name to its source (an S-id from the domain brief, or "assumption: ...").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wiserpa.policy.clock import BusinessCalendar, Duration, DurationUnit, ensure_utc
from wiserpa.policy.validation import normalize_icd10cm
from wiserpa.policy.yaml_text import load_yaml

__all__ = [
    "ClaimsPolicy",
    "CompensationPolicy",
    "DeemedApprovalPolicy",
    "DurationSpec",
    "ExemptionPolicy",
    "GoldCardPolicy",
    "PenaltyPolicy",
    "PolicyProfile",
    "PrepaymentReviewPolicy",
    "ProfileError",
    "SupportPolicy",
    "Timelines",
    "calendar_for",
    "clock_start",
    "list_profiles",
    "load_profile",
    "timeline_for",
]

CountsAs = Literal["excluded", "affirmed", "non_affirmed"]


class ProfileError(ValueError):
    """A profile is missing or invalid; the message names the file and the field."""


# Day counts beyond ten years outlive the model many times over and, far enough, overflow date arithmetic.
_TEN_YEARS_DAYS = 3653


class _Section(BaseModel):
    """Base for profile sections: unknown keys are errors; ``sources`` may only name real parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    sources: dict[str, str] = {}

    @model_validator(mode="after")
    def _sources_name_fields(self) -> _Section:
        unknown = sorted(set(self.sources) - set(type(self).model_fields) - {"sources"})
        if unknown:
            raise ValueError(f"sources names unknown parameter(s): {', '.join(unknown)}")
        return self


class DurationSpec(BaseModel):
    """A duration as written in YAML: {amount, unit}."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    amount: float = Field(ge=0)
    unit: DurationUnit

    @model_validator(mode="after")
    def _in_range(self) -> DurationSpec:
        # Past a year no time limit means anything, and far larger ones overflow every due-time computation.
        longest = _LONGEST[self.unit]
        if self.amount > longest:
            raise ValueError(f"amount must be at most {longest:g} {self.unit}")
        try:
            self.to_duration()
        except ValueError as exc:  # e.g. a fractional number of business days
            raise ValueError(str(exc)) from exc
        return self

    def to_duration(self) -> Duration:
        """The clock module's Duration."""
        return _duration(self.amount, self.unit)


# One year in each counting unit: the longest time limit a profile may set.
_LONGEST: dict[str, float] = {
    "hours": 366 * 24,
    "business_hours": 261 * 24,
    "business_days": 261,
    "calendar_days": 366,
}


@lru_cache(maxsize=256)
def _duration(amount: float, unit: DurationUnit) -> Duration:
    # Duration is immutable and validates itself on construction; every submission asks for its window.
    return Duration(amount, unit)


def _hhmm(value: str) -> str:
    try:
        dt.time.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"expected HH:MM, got {value!r}") from exc
    return value


class Timelines(_Section):
    """Review time limits and how they are counted."""

    standard: DurationSpec = DurationSpec(amount=72, unit="hours")
    expedited: DurationSpec = DurationSpec(amount=48, unit="hours")
    mac_forwarded: DurationSpec = DurationSpec(amount=72, unit="hours")
    mac_forwarded_clock_start: Literal["mac_receipt", "participant_receipt"] = "participant_receipt"
    business_day_start: str = "08:00"
    business_day_end: str = "17:00"
    affirmation_validity_days: int = Field(default=120, ge=1, le=_TEN_YEARS_DAYS)

    @field_validator("business_day_start", "business_day_end")
    @classmethod
    def _check_hhmm(cls, value: str) -> str:
        return _hhmm(value)

    @model_validator(mode="after")
    def _day_order(self) -> Timelines:
        if dt.time.fromisoformat(self.business_day_start) >= dt.time.fromisoformat(self.business_day_end):
            raise ValueError("business_day_start must be earlier than business_day_end")
        return self


class DeemedApprovalPolicy(_Section):
    """Whether an undecided request past its due time is affirmed (R3)."""

    enabled: bool = False
    includes_associated_services: bool = False


class PenaltyPolicy(_Section):
    """Money owed by the participant per missed timeline (R2)."""

    enforced: bool = False
    per_miss_usd: float = Field(default=500, ge=0)
    per_day_late_usd: float = Field(default=100, ge=0)
    max_per_miss_usd: float = Field(default=10_000, ge=0)


class ExemptionPolicy(_Section):
    """Time-sensitive care exemptions by diagnosis (R1). Prefixes are stored normalized (no dot)."""

    enabled: bool = False
    code_sets: dict[str, list[str]] = Field(
        default={
            "acute_pain": ["G89.11", "G89.12", "G89.18"],
            "cancer_pain": ["G89.3"],
            # C and D0-D4 span the neoplasm chapter C00-D49, benign D10-D36 included (see the profile YAML).
            "cancer": ["C", "D0", "D1", "D2", "D3", "D4"],
            "palliative": ["Z51.5"],
        },
        validate_default=True,  # so the default is normalized like YAML input
    )
    require_attestation: bool = True
    audit_sample_rate: float = Field(default=0.10, ge=0, le=1)

    @field_validator("code_sets", mode="after")
    @classmethod
    def _normalize(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {name: [normalize_icd10cm(p) for p in prefixes] for name, prefixes in value.items()}


class GoldCardPolicy(_Section):
    """Provider exemption for a service after a high affirmation rate (R4)."""

    enabled: bool = False
    min_affirmation_rate: float = Field(default=0.90, ge=0, le=1)
    min_requests: int = Field(default=5, ge=1)
    lookback_days: int = Field(default=365, ge=1, le=_TEN_YEARS_DAYS)
    validity_days: int = Field(default=365, ge=1, le=_TEN_YEARS_DAYS)
    deemed_counts_as: CountsAs = "excluded"
    exempt_counts_as: CountsAs = "excluded"
    withdrawn_counts_as: CountsAs = "excluded"
    rescission_sample_min: int = Field(default=5, ge=1)
    rescission_sample_max: int = Field(default=20, ge=1)
    rescission_threshold: float = Field(default=0.90, ge=0, le=1)

    @model_validator(mode="after")
    def _sample_order(self) -> GoldCardPolicy:
        if self.rescission_sample_min > self.rescission_sample_max:
            raise ValueError("rescission_sample_min must not exceed rescission_sample_max")
        return self


class SupportPolicy(_Section):
    """Technical-support response SLAs (R5)."""

    urgent: DurationSpec = DurationSpec(amount=24, unit="hours")
    standard: DurationSpec = DurationSpec(amount=72, unit="hours")
    # The ASA's examples of clinically urgent, time-sensitive needs (seed document, R5).
    urgent_triggers: list[str] = ["pain", "oncology", "post_operative"]


class PrepaymentReviewPolicy(_Section):
    """Claims billed without PA go to pre-payment review."""

    documentation_due: DurationSpec = DurationSpec(amount=45, unit="calendar_days")
    decision: DurationSpec = DurationSpec(amount=3, unit="calendar_days")
    deemed_payable_on_miss: bool = False


class ClaimsPolicy(_Section):
    """How associated services (anesthesia, imaging, facility) are paid."""

    associated_payable_when_primary_deemed_or_exempt: bool = False


class CompensationPolicy(_Section):
    """Participant pay: the current share-of-savings formula and the reform alternative (R7)."""

    current_share_of_savings: float = Field(default=0.10, ge=0, le=1)
    quality_adjustment_max: float = Field(default=0.10, ge=0, le=1)
    reform_fee_per_review_usd: float = Field(default=0, ge=0)
    timeliness_weight: float = Field(default=0.5, ge=0, le=1)
    accuracy_weight: float = Field(default=0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _weights(self) -> CompensationPolicy:
        if abs(self.timeliness_weight + self.accuracy_weight - 1.0) > 1e-9:
            raise ValueError("timeliness_weight + accuracy_weight must equal 1")
        return self


class PolicyProfile(BaseModel):
    """A complete, named policy: what every decision, deadline and report is computed under."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: str
    title: str
    description: str = ""
    extends: str | None = None
    timelines: Timelines = Timelines()
    deemed_approval: DeemedApprovalPolicy = DeemedApprovalPolicy()
    penalties: PenaltyPolicy = PenaltyPolicy()
    exemptions: ExemptionPolicy = ExemptionPolicy()
    gold_card: GoldCardPolicy = GoldCardPolicy()
    support: SupportPolicy = SupportPolicy()
    prepayment_review: PrepaymentReviewPolicy = PrepaymentReviewPolicy()
    claims: ClaimsPolicy = ClaimsPolicy()
    compensation: CompensationPolicy = CompensationPolicy()
    criteria_overrides: dict[str, dict[str, float | int | str | bool]] = {}


# --------------------------------------------------------------------------- loading


def _packaged_dir() -> Traversable:
    return files("wiserpa").joinpath("data", "profiles")


def _candidates(name: str, dirs: Iterable[Path | Traversable]) -> Iterator[Path | Traversable]:
    for d in dirs:
        for ext in (".yaml", ".yml"):
            yield d / f"{name}{ext}"


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``over`` replaces ``base``."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(where: Path | Traversable) -> dict[str, Any]:
    try:
        raw = load_yaml(where.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{where}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ProfileError(f"{where}: cannot read profile: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: a profile must be a mapping at the top level")
    if not raw.get("id"):
        raise ProfileError(f"{where}: field 'id' is required in every profile file")
    return raw


def _find(name: str, dirs: list[Path | Traversable]) -> Path | Traversable:
    for cand in _candidates(name, dirs):
        if cand.is_file():
            return cand
    searched = ", ".join(str(d) for d in dirs)
    raise ProfileError(f"profile {name!r} not found (searched: {searched})")


def _resolve(where: Path | Traversable, dirs: list[Path | Traversable], chain: list[str]) -> dict[str, Any]:
    raw = _read(where)
    key = str(raw["id"])
    if key in chain:
        raise ProfileError(f"{where}: field 'extends': circular extends: {' -> '.join([*chain, key])}")
    parent_name = raw.get("extends")
    if parent_name is None:
        return raw
    if not isinstance(parent_name, str):
        raise ProfileError(f"{where}: field 'extends': must be a profile name")
    # The parent is looked up beside the child first, so a copied pair of files works anywhere.
    here = [where.parent] if isinstance(where, Path) else []
    try:
        parent_path = _find(parent_name, [*here, *dirs])
    except ProfileError as exc:
        raise ProfileError(f"{where}: field 'extends': {exc}") from exc
    parent = _resolve(parent_path, dirs, [*chain, key])
    return _deep_merge(parent, raw)


def _is_path_like(value: str | Path) -> bool:
    if isinstance(value, Path):
        return True
    return value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value


def load_profile(name_or_path: str | Path, extra_dirs: Iterable[str | Path] = ()) -> PolicyProfile:
    """Load a profile by name (extra dirs first, then packaged) or by file path, resolving ``extends``."""
    dirs: list[Path | Traversable] = [Path(d) for d in extra_dirs]
    dirs.append(_packaged_dir())
    if _is_path_like(name_or_path):
        where: Path | Traversable = Path(name_or_path)
        if not where.is_file():
            raise ProfileError(f"{where}: profile file not found")
    else:
        where = _find(str(name_or_path), dirs)
    merged = _resolve(where, dirs, [])
    try:
        return PolicyProfile.model_validate(merged)
    except ValidationError as exc:
        parts = [f"field '{'.'.join(str(x) for x in e['loc'])}': {e['msg']}" for e in exc.errors()]
        raise ProfileError(f"{where}: invalid profile: " + "; ".join(parts)) from exc


def list_profiles(extra_dirs: Iterable[str | Path] = ()) -> list[str]:
    """Names of all profiles available in the packaged directory and ``extra_dirs``, sorted."""
    names: set[str] = set()
    dirs: list[Path | Traversable] = [_packaged_dir(), *(Path(d) for d in extra_dirs)]
    for d in dirs:
        if not d.is_dir():
            continue
        for entry in d.iterdir():
            if entry.is_file() and entry.name.endswith((".yaml", ".yml")):
                names.add(entry.name.rsplit(".", 1)[0])
    return sorted(names)


# --------------------------------------------------------------------------- using a profile


def timeline_for(profile: PolicyProfile, urgency: str, channel: str) -> Duration:
    """Review window for a request: expedited wins over channel; standard MAC-forwarded has its own window."""
    t = profile.timelines
    if urgency == "expedited":
        # The clinical need is the same however the request arrived, so urgency decides first.
        return t.expedited.to_duration()
    if urgency != "standard":
        raise ValueError(f"unknown urgency {urgency!r}")
    if channel == "mac_forwarded":
        return t.mac_forwarded.to_duration()
    return t.standard.to_duration()


def clock_start(
    profile: PolicyProfile, channel: str, received_at: dt.datetime, mac_received_at: dt.datetime | None
) -> dt.datetime:
    """When the review clock starts (aware UTC): MAC receipt for MAC-forwarded requests if so configured."""
    if (
        channel == "mac_forwarded"
        and profile.timelines.mac_forwarded_clock_start == "mac_receipt"
        and mac_received_at is not None
    ):
        # Never later than the participant's own receipt: a bad MAC timestamp must not extend the window.
        return min(ensure_utc(mac_received_at), ensure_utc(received_at))
    return ensure_utc(received_at)


def calendar_for(profile: PolicyProfile, timezone: str) -> BusinessCalendar:
    """The business calendar for a state's time zone with the profile's business hours."""
    t = profile.timelines
    return _calendar(timezone, t.business_day_start, t.business_day_end)


@lru_cache(maxsize=256)
def _calendar(timezone: str, day_start: str, day_end: str) -> BusinessCalendar:
    # Calendars are immutable, and building one (zone lookup, validation, time parsing) cost a tenth of
    # checking a submission; every submission asks for its state's.
    return BusinessCalendar(
        timezone, day_start=dt.time.fromisoformat(day_start), day_end=dt.time.fromisoformat(day_end)
    )
