"""The versioned WISeR catalog: states, covered codes, governing policies, associated services and exclusions.

The data lives in ``wiserpa/data/catalog/*.yaml``; this module validates it (pydantic) and answers the one
question the rest of the system asks: does this code, in this state, on this date, at this place, need PA?
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wiserpa.policy.validation import normalize_icd10cm
from wiserpa.policy.yaml_text import load_yaml

__all__ = [
    "AssociatedCode",
    "Catalog",
    "CatalogError",
    "CodeCondition",
    "CodeInfo",
    "PaRequirement",
    "ServiceCategory",
    "StateInfo",
    "load_catalog",
]

COVERAGE_TYPES = ("original_medicare", "medicare_advantage", "va", "ihs")
AssociatedKind = Literal["anesthesia", "imaging", "facility", "procedure"]
ConditionKind = Literal["requires_codes", "excluded_diagnoses", "diagnoses_any"]


class CatalogError(ValueError):
    """The catalog file is missing or invalid; the message names the file and the field."""


# --------------------------------------------------------------------------- public value types


@dataclass(frozen=True)
class StateInfo:
    """A model state, its participant and its Medicare Administrative Contractor."""

    code: str
    participant: str
    utn_prefix: str
    mac: str
    jurisdiction: str
    timezone: str


@dataclass(frozen=True)
class AssociatedCode:
    """A service tied to a WISeR service (anesthesia, imaging, facility) that may be denied with it."""

    code: str
    kind: str
    confirmed: bool
    note: str


@dataclass(frozen=True)
class CodeCondition:
    """A scope condition on a code: requires_codes (other codes billed), excluded_diagnoses, diagnoses_any."""

    kind: str
    codes: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class CodeInfo:
    """One WISeR code and how it is in scope."""

    code: str
    category: str
    add_on: bool
    effective_from: dt.date | None
    conditions: tuple[CodeCondition, ...]
    confirmed: bool = True


@dataclass(frozen=True)
class ServiceCategory:
    """A WISeR service category with its codes, governing policy and associated services."""

    key: str
    title: str
    active: bool
    codes: tuple[str, ...]
    add_on_codes: tuple[str, ...]
    national_policy: str | None
    lcd_by_jurisdiction: Mapping[str, str | None]
    associated: tuple[AssociatedCode, ...]
    lcd_confidence: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaRequirement:
    """The answer to "does this need prior authorization?", with a machine reason code and a sentence."""

    required: bool
    reason_code: str
    reason: str
    category: str | None = None
    policy: str | None = None
    state: str | None = None


# --------------------------------------------------------------------------- file schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StateModel(_Strict):
    participant: str
    utn_prefix: str = Field(pattern=r"^[A-Z0-9]{2}$")
    mac: str
    jurisdiction: Literal["JF", "JH", "JL", "J15"]
    timezone: str
    sources: list[str] = []

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class _ConditionModel(_Strict):
    kind: ConditionKind
    codes: list[str] = []
    code_set: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> _ConditionModel:
        if bool(self.codes) == bool(self.code_set):
            raise ValueError("give exactly one of 'codes' or 'code_set'")
        return self


class _CodeModel(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{5}$")
    add_on: bool = False
    effective_from: dt.date | None = None
    confirmed: bool = True
    conditions: list[_ConditionModel] = []


class _LcdModel(_Strict):
    lcd: str | None = Field(pattern=r"^L\d{5}$")
    attribution_confidence: Literal["high", "medium", "low", "none"]
    note: str = ""


class _AssociatedModel(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{5}$")
    kind: AssociatedKind
    confirmed: bool
    note: str


class _CategoryModel(_Strict):
    title: str
    active: bool
    national_policy: str | None = Field(default=None, pattern=r"^NCD \d+\.\d+$")
    lcd_by_jurisdiction: dict[str, _LcdModel] = {}
    codes: list[_CodeModel] = Field(min_length=1)
    associated: list[_AssociatedModel] = []

    @model_validator(mode="after")
    def _one_policy(self) -> _CategoryModel:
        if bool(self.national_policy) == bool(self.lcd_by_jurisdiction):
            raise ValueError("give exactly one of 'national_policy' or 'lcd_by_jurisdiction'")
        if self.lcd_by_jurisdiction and set(self.lcd_by_jurisdiction) != {"JF", "JH", "JL", "J15"}:
            raise ValueError("lcd_by_jurisdiction must name JF, JH, JL and J15")
        return self


class _DatesModel(_Strict):
    model_start: dt.date
    requests_from: dt.date
    services_from: dt.date
    model_end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> _DatesModel:
        if not self.model_start <= self.requests_from <= self.services_from <= self.model_end:
            raise ValueError("dates must satisfy model_start <= requests_from <= services_from <= model_end")
        return self


class _RevenueRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    start: str = Field(alias="from", pattern=r"^\d{4}$")
    end: str = Field(alias="to", pattern=r"^\d{4}$")


class _ExclusionsModel(_Strict):
    coverage: list[Literal["medicare_advantage", "va", "ihs"]]
    emergency: bool = True
    emergency_places_of_service: list[str] = []
    inpatient_places_of_service: list[str] = []
    ed_revenue_codes: _RevenueRange
    modifiers: list[str] = []


class _CatalogModel(_Strict):
    version: str = Field(min_length=1)
    model: str
    sources: dict[str, str]
    model_dates: _DatesModel
    states: dict[str, _StateModel]
    places_of_service: dict[str, str]
    exclusions: _ExclusionsModel
    code_sets: dict[str, list[str]] = {}
    categories: dict[str, _CategoryModel]

    @model_validator(mode="after")
    def _cross_checks(self) -> _CatalogModel:
        seen: dict[str, str] = {}
        for key, cat in self.categories.items():
            for c in cat.codes:
                if c.code in seen:
                    raise ValueError(f"code {c.code} is listed in both {seen[c.code]} and {key}")
                seen[c.code] = key
                for cond in c.conditions:
                    if cond.code_set and cond.code_set not in self.code_sets:
                        raise ValueError(
                            f"categories.{key}: code {c.code}: unknown code_set {cond.code_set!r}"
                        )
        for key, cat in self.categories.items():
            for a in cat.associated:
                if a.code in seen:
                    raise ValueError(f"categories.{key}: associated code {a.code} is itself a WISeR code")
        return self


# --------------------------------------------------------------------------- the catalog


def _norm_code(code: str) -> str:
    return code.strip().upper()


def _norm_pos(pos: str | int) -> str:
    return str(pos).strip().zfill(2)


class Catalog:
    """Read-only view of one catalog version."""

    def __init__(self, data: _CatalogModel, *, source: str = "<memory>") -> None:
        self.source = source
        self.version: str = data.version
        dates = data.model_dates
        self.model_start: dt.date = dates.model_start
        self.requests_from: dt.date = dates.requests_from
        self.services_from: dt.date = dates.services_from
        self.model_end: dt.date = dates.model_end
        self.sources: Mapping[str, str] = MappingProxyType(dict(data.sources))
        self.places_of_service: Mapping[str, str] = MappingProxyType(dict(data.places_of_service))
        self._excl = data.exclusions
        self.states: dict[str, StateInfo] = {
            code: StateInfo(code, s.participant, s.utn_prefix, s.mac, s.jurisdiction, s.timezone)
            for code, s in data.states.items()
        }
        code_sets = {k: tuple(normalize_icd10cm(v) for v in vs) for k, vs in data.code_sets.items()}
        self.categories: dict[str, ServiceCategory] = {}
        self._codes: dict[str, CodeInfo] = {}
        self._assoc_index: dict[str, list[str]] = {}
        for key, cat in data.categories.items():
            for c in cat.codes:
                conds = tuple(
                    CodeCondition(
                        kind=cond.kind,
                        codes=(
                            code_sets[cond.code_set]
                            if cond.code_set
                            else tuple(
                                _norm_code(x) if cond.kind == "requires_codes" else normalize_icd10cm(x)
                                for x in cond.codes
                            )
                        ),
                        note=cond.note or (f"code set {cond.code_set}" if cond.code_set else ""),
                    )
                    for cond in c.conditions
                )
                self._codes[c.code] = CodeInfo(c.code, key, c.add_on, c.effective_from, conds, c.confirmed)
            associated = tuple(AssociatedCode(a.code, a.kind, a.confirmed, a.note) for a in cat.associated)
            for a in associated:
                self._assoc_index.setdefault(a.code, []).append(key)
            self.categories[key] = ServiceCategory(
                key=key,
                title=cat.title,
                active=cat.active,
                codes=tuple(c.code for c in cat.codes),
                add_on_codes=tuple(c.code for c in cat.codes if c.add_on),
                national_policy=cat.national_policy,
                lcd_by_jurisdiction=MappingProxyType({j: v.lcd for j, v in cat.lcd_by_jurisdiction.items()}),
                associated=associated,
                lcd_confidence=MappingProxyType(
                    {j: v.attribution_confidence for j, v in cat.lcd_by_jurisdiction.items()}
                ),
            )

    def __repr__(self) -> str:
        return f"Catalog(version={self.version!r}, source={self.source!r})"

    # ---- lookups

    def state(self, code: str) -> StateInfo | None:
        """The model state with this two-letter code, or None when the state is not in the model."""
        return self.states.get(code.strip().upper())

    def code_info(self, code: str) -> CodeInfo | None:
        """The WISeR code entry (active or postponed category), or None."""
        return self._codes.get(_norm_code(code))

    def category_for_code(self, code: str) -> ServiceCategory | None:
        """The category a WISeR code belongs to, or None."""
        info = self.code_info(code)
        return self.categories[info.category] if info else None

    def governing_policy(self, category_key: str, state_code: str) -> str | None:
        """'NCD x.y' for national categories, the state's MAC LCD id for LCD ones, None when there is none."""
        cat = self.categories.get(category_key)
        if cat is None:
            return None
        if cat.national_policy:
            return cat.national_policy
        st = self.state(state_code)
        if st is None:
            return None
        return cat.lcd_by_jurisdiction.get(st.jurisdiction)

    def associated_codes(self, category_key: str) -> list[AssociatedCode]:
        """Associated (anesthesia/imaging/facility) services of a category; empty for an unknown key."""
        cat = self.categories.get(category_key)
        return list(cat.associated) if cat else []

    def categories_for_associated(self, code: str, *, include_inactive: bool = False) -> list[str]:
        """Keys of the (active, unless asked) categories that list ``code`` as an associated service."""
        keys = self._assoc_index.get(_norm_code(code), [])
        return [k for k in keys if include_inactive or self.categories[k].active]

    def is_associated(self, code: str) -> bool:
        """True when ``code`` is an associated service of an active category."""
        return bool(self.categories_for_associated(code))

    # ---- the scope question

    def requires_pa(
        self,
        *,
        code: str,
        state: str,
        date_of_service: dt.date,
        place_of_service: str | int,
        request_date: dt.date | None = None,
        coverage: str = "original_medicare",
        emergency: bool = False,
        revenue_code: str | None = None,
        modifiers: Iterable[str] = (),
        diagnosis_codes: Iterable[str] = (),
        other_codes: Iterable[str] = (),
        inpatient_only: bool = False,
    ) -> PaRequirement:
        """Does this code, in this state, on this date of service, at this place of service, need WISeR PA?

        Checks run in a fixed order and the first that applies answers: state, code (or associated
        service), postponed category, model dates, code effective date, coverage, emergency / ED / ET,
        inpatient, place of service, code conditions. ``other_codes`` are the other procedure codes on the
        same request or claim.
        """
        if coverage not in COVERAGE_TYPES:
            raise ValueError(f"unknown coverage {coverage!r}; expected one of {COVERAGE_TYPES}")
        code_n = _norm_code(code)
        st = self.state(state)
        if st is None:
            return PaRequirement(
                False, "not_model_state", f"{state} is not a WISeR model state.", state=state
            )
        sc = st.code
        info = self._codes.get(code_n)
        if info is None:
            cats = self.categories_for_associated(code_n)
            if cats:
                names = ", ".join(cats)
                return PaRequirement(
                    False,
                    "associated_service",
                    f"{code_n} needs no PA of its own but is associated with {names}; it may be denied "
                    "if that primary service is not authorized.",
                    category=cats[0],
                    policy=self.governing_policy(cats[0], sc),
                    state=sc,
                )
            return PaRequirement(
                False, "not_wiser_code", f"{code_n} is not on the WISeR service list.", state=sc
            )

        cat = self.categories[info.category]
        policy = self.governing_policy(cat.key, sc)

        def no(reason_code: str, reason: str) -> PaRequirement:
            return PaRequirement(False, reason_code, reason, category=cat.key, policy=policy, state=sc)

        if not cat.active:
            return no("postponed", f"{cat.title} ({code_n}) is postponed and not subject to WISeR PA.")
        if request_date is not None and request_date < self.requests_from:
            return no(
                "before_model_requests",
                f"WISeR accepts PA requests from {self.requests_from.isoformat()}; this one is dated "
                f"{request_date.isoformat()}.",
            )
        if date_of_service < self.services_from:
            return no(
                "before_model_services",
                f"WISeR PA applies to services on or after {self.services_from.isoformat()}.",
            )
        if date_of_service > self.model_end:
            return no("after_model_end", f"The WISeR model ends on {self.model_end.isoformat()}.")
        if info.effective_from is not None and date_of_service < info.effective_from:
            return no(
                "not_yet_effective",
                f"{code_n} is in WISeR only for services on or after {info.effective_from.isoformat()}.",
            )
        if coverage in self._excl.coverage:
            label = {"medicare_advantage": "Medicare Advantage", "va": "VA", "ihs": "IHS"}[coverage]
            return no(
                f"excluded_coverage_{coverage}",
                f"{label} coverage is outside WISeR (Original Medicare only).",
            )
        pos = _norm_pos(place_of_service)
        if self._excl.emergency and (emergency or pos in self._excl.emergency_places_of_service):
            return no("excluded_emergency", "Emergency services are excluded from WISeR PA.")
        if revenue_code is not None:
            rc = revenue_code.strip().zfill(4)
            rng = self._excl.ed_revenue_codes
            if rc.isdigit() and rng.start <= rc <= rng.end:
                return no("excluded_ed_revenue_code", f"Emergency department revenue code {rc} is excluded.")
        # Most lines carry no modifier, and most codes no condition: the sets and normalized diagnoses below
        # are built only when there is something to compare (requires_pa runs for every submitted line).
        if modifiers:
            excluded_mods = {m.upper() for m in self._excl.modifiers}
            hit = sorted(excluded_mods & {m.strip().upper() for m in modifiers})
            if hit:
                return no(
                    f"excluded_modifier_{hit[0].lower()}", f"Modifier {hit[0]} marks an emergency service."
                )
        if inpatient_only or pos in self._excl.inpatient_places_of_service:
            return no("excluded_inpatient", "Inpatient services are excluded from WISeR PA.")
        if pos not in self.places_of_service:
            allowed = ", ".join(sorted(self.places_of_service))
            return no(
                "excluded_place_of_service",
                f"Place of service {pos} is not a WISeR setting (in scope: {allowed}).",
            )
        if info.conditions:
            diags = tuple(normalize_icd10cm(d) for d in diagnosis_codes)
            others = {_norm_code(c) for c in other_codes}
            for cond in info.conditions:
                unmet = _condition_unmet(cond, diags, others)
                if unmet:
                    return no("condition_not_met", f"{code_n} is in WISeR only {unmet}.")
        return PaRequirement(
            True,
            "in_scope",
            f"{code_n} ({cat.title}) needs WISeR prior authorization in {sc}"
            + (
                f" under {policy}." if policy else " (no LCD for this MAC; general medical necessity review)."
            ),
            category=cat.key,
            policy=policy,
            state=sc,
        )


def _condition_unmet(cond: CodeCondition, diags: tuple[str, ...], others: set[str]) -> str | None:
    """None when the condition holds (or cannot be judged), else the phrase saying what is required."""
    if cond.kind == "requires_codes":
        if not others & set(cond.codes):
            return f"when billed with {' or '.join(cond.codes)}"
    elif cond.kind == "excluded_diagnoses":
        if any(d.startswith(p) for d in diags for p in cond.codes):
            return f"when not billed with diagnosis {', '.join(cond.codes)}"
    elif (
        cond.kind == "diagnoses_any" and diags and not any(d.startswith(p) for d in diags for p in cond.codes)
    ):
        # No diagnosis at all keeps PA required: scope must not be escaped by leaving the field blank.
        return f"for these diagnoses ({cond.note or 'listed code set'})"
    return None


# --------------------------------------------------------------------------- loading


def _format_validation_error(where: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    return f"{where}: invalid catalog: " + "; ".join(parts)


def _parse(text: str, where: str) -> Catalog:
    try:
        raw: Any = load_yaml(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: the catalog must be a mapping at the top level")
    try:
        model = _CatalogModel.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(_format_validation_error(where, exc)) from exc
    return Catalog(model, source=where)


@lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    res = files("wiserpa").joinpath("data", "catalog", "wiser-2026.yaml")
    return _parse(res.read_text(encoding="utf-8"), str(res))


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate a catalog file; without a path, the packaged WISeR 2026 catalog (cached)."""
    if path is None:
        return _default_catalog()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{p}: cannot read catalog: {exc}") from exc
    return _parse(text, str(p))
