"""Coverage criteria from the governing NCDs/LCDs: data model, loader, evaluator and documentation checklist.

Requirement R6 ("no documentation or criteria beyond NCDs/LCDs") is enforced here, at load time: every
criterion, frequency limit and documentation item must cite a section of the file's own NCD or LCD, every
rule may only read facts the file declares, and every declared fact must be needed by something that cites
the policy. What a provider is asked to document (:func:`requirements`) is derived from those files alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from wiserpa.policy.rules import (
    RESERVED_NAMES,
    CompiledRule,
    FactSpec,
    ParamValue,
    RuleError,
    Truth,
    compile_rule,
)
from wiserpa.policy.yaml_text import load_yaml

__all__ = [
    "AFFIRMED_STATUSES",
    "Citation",
    "CompiledRule",
    "CriteriaLibrary",
    "CriteriaLoadError",
    "Criterion",
    "CriterionResult",
    "DocumentRequirement",
    "FactSpec",
    "FrequencyLimit",
    "HistoryItem",
    "PolicyCriteria",
    "Truth",
    "coerce_facts",
    "evaluate",
    "load_criteria",
    "load_file",
    "requirements",
    "validate_facts",
    "window_start",
]

Confidence = Literal["confirmed", "unconfirmed"]

# Statuses of earlier requests that count toward a frequency limit: every way a service can end up authorized.
AFFIRMED_STATUSES: tuple[str, ...] = ("affirmed", "exempt_affirmed", "gold_card_affirmed", "deemed_affirmed")

NCD_ID = re.compile(r"^NCD \d+(\.\d+)*$")
LCD_ID = re.compile(r"^L\d{5}$")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_CRITERION_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]*$")
_FACT_PATH = "clinical_facts"


class CriteriaLoadError(ValueError):
    """A criteria file (or an override) was refused; the message names the file and the criterion."""


# --------------------------------------------------------------------------------------------------------
# Public, immutable model


@dataclass(frozen=True, slots=True)
class Citation:
    """Where in an NCD/LCD a criterion comes from."""

    policy: str
    section: str

    def to_dict(self) -> dict[str, str]:
        """Plain-JSON form."""
        return {"policy": self.policy, "section": self.section}


@dataclass(frozen=True, slots=True)
class Criterion:
    """One coverage criterion: a cited statement plus the rule that checks it."""

    id: str
    statement: str
    citation: Citation
    facts: tuple[str, ...]
    rule: CompiledRule
    rule_text: str
    params: Mapping[str, ParamValue]
    confidence: Confidence
    note: str | None
    applies_when: CompiledRule | None
    satisfies_hint: str


@dataclass(frozen=True, slots=True)
class FrequencyLimit:
    """At most ``max_count`` services (this one included) per matching group in a rolling window."""

    id: str
    statement: str
    citation: Citation
    max_count: int
    window_days: int
    match_facts: tuple[str, ...]
    counts_statuses: tuple[str, ...]
    confidence: Confidence
    note: str | None = None
    satisfies_hint: str = ""


@dataclass(frozen=True, slots=True)
class DocumentRequirement:
    """A document the policy asks for, with its citation."""

    text: str
    citation: Citation


@dataclass(frozen=True, slots=True)
class PolicyCriteria:
    """Everything the engine applies for one NCD or LCD, loaded from one file."""

    policy_id: str
    kind: Literal["NCD", "LCD"]
    title: str
    contractor: str
    jurisdictions: tuple[str, ...]
    categories: tuple[str, ...]
    url: str | None
    attribution_confidence: Literal["high", "medium", "low", "national"]
    facts: dict[str, FactSpec]
    criteria: tuple[Criterion, ...]
    frequency_limits: tuple[FrequencyLimit, ...]
    documentation: tuple[DocumentRequirement, ...]
    source_file: str
    version: str
    attribution_note: str | None = None


@dataclass(frozen=True, slots=True)
class CriteriaLibrary:
    """All loaded policies, keyed by policy id (``"NCD 160.7"``, ``"L39240"``)."""

    policies: dict[str, PolicyCriteria]
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_policy(self, policy_id: str) -> PolicyCriteria | None:
        """The criteria of one policy, or None when no file governs it."""
        return self.policies.get(policy_id)

    def for_category(self, category: str) -> list[PolicyCriteria]:
        """Every policy that lists the category (one per MAC for LCD services)."""
        return [p for p in self.policies.values() if category in p.categories]

    def all_criteria(self) -> list[tuple[PolicyCriteria, Criterion | FrequencyLimit]]:
        """Every criterion and frequency limit with its policy, in file order."""
        out: list[tuple[PolicyCriteria, Criterion | FrequencyLimit]] = []
        for policy in self.policies.values():
            out.extend((policy, c) for c in policy.criteria)
            out.extend((policy, f) for f in policy.frequency_limits)
        return out

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> CriteriaLibrary:
        """A copy with criterion parameters replaced, e.g. ``{"esi.pain_duration": {"min_weeks": 6}}``.

        A key is a criterion or frequency-limit id (applied in every policy that has it) or
        ``"<policy id>:<criterion id>"`` for one policy. Unknown ids, unknown parameters and values of the
        wrong type are refused with CriteriaLoadError.
        """
        policies = dict(self.policies)
        for key, new_params in overrides.items():
            if not isinstance(new_params, Mapping):
                raise CriteriaLoadError(f"override {key!r}: expected a mapping of parameter to value")
            policy_filter, _, crit_id = key.rpartition(":")
            hit = False
            for pid, policy in policies.items():
                if policy_filter and pid != policy_filter:
                    continue
                updated = _override_policy(policy, crit_id, new_params, key)
                if updated is not None:
                    policies[pid] = updated
                    hit = True
            if not hit:
                raise CriteriaLoadError(f"override {key!r}: no such criterion or frequency limit")
        merged = {**self.overrides, **{k: dict(v) for k, v in overrides.items()}}
        return CriteriaLibrary(policies=policies, overrides=merged)


def _override_policy(
    policy: PolicyCriteria, crit_id: str, new_params: Mapping[str, Any], key: str
) -> PolicyCriteria | None:
    where = f"{policy.source_file}: override {key!r}"
    for i, crit in enumerate(policy.criteria):
        if crit.id != crit_id:
            continue
        params = dict(crit.params)
        for name, value in new_params.items():
            if name not in params:
                raise CriteriaLoadError(f"{where}: criterion {crit_id!r} has no parameter {name!r}")
            params[name] = _same_type(value, params[name], f"{where}: parameter {name!r}")
        try:
            rule = compile_rule(crit.rule_text, facts=policy.facts, params=params)
        except RuleError as exc:
            raise CriteriaLoadError(f"{where}: criterion {crit_id!r}: {exc}") from None
        criteria = list(policy.criteria)
        criteria[i] = replace(crit, rule=rule, params=params)
        return replace(policy, criteria=tuple(criteria))
    for i, lim in enumerate(policy.frequency_limits):
        if lim.id != crit_id:
            continue
        changes: dict[str, int] = {}
        for name, value in new_params.items():
            if name not in ("max_count", "window_days"):
                raise CriteriaLoadError(f"{where}: frequency limit {crit_id!r} has no parameter {name!r}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CriteriaLoadError(f"{where}: {name} must be a positive integer, got {value!r}")
            changes[name] = value
        limits = list(policy.frequency_limits)
        limits[i] = replace(lim, **changes)  # type: ignore[arg-type]
        return replace(policy, frequency_limits=tuple(limits))
    return None


def _same_type(value: Any, current: ParamValue, where: str) -> ParamValue:
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise CriteriaLoadError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(current, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CriteriaLoadError(f"{where}: expected a number, got {value!r}")
        return value
    if isinstance(current, str):
        if not isinstance(value, str):
            raise CriteriaLoadError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(current, list | tuple):
        if not isinstance(value, list | tuple) or not value:
            raise CriteriaLoadError(f"{where}: expected a non-empty list, got {value!r}")
        want_str = bool(current) and isinstance(current[0], str)
        for item in value:
            ok = (
                isinstance(item, str)
                if want_str
                else isinstance(item, int | float) and not isinstance(item, bool)
            )
            if not ok:
                raise CriteriaLoadError(f"{where}: list item {item!r} has the wrong type")
        return list(value)
    raise CriteriaLoadError(f"{where}: unsupported parameter type")  # pragma: no cover


# --------------------------------------------------------------------------------------------------------
# File schema (pydantic, unknown keys refused)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CitationIn(_Strict):
    policy: StrictStr
    section: StrictStr = Field(min_length=1)

    @field_validator("section")
    @classmethod
    def _section_named(cls, value: str) -> str:
        # A blank section is no citation: a reviewer could not find the passage the criterion rests on.
        if not value.strip():
            raise ValueError("is blank; name the NCD/LCD section the criterion comes from")
        return value


class _FactIn(_Strict):
    type: Literal["number", "integer", "boolean", "enum", "date", "codes", "string"]
    label: StrictStr = Field(min_length=1)
    unit: StrictStr | None = None
    values: list[StrictStr] | None = None
    help: StrictStr = ""
    minimum: StrictInt | StrictFloat | None = None
    maximum: StrictInt | StrictFloat | None = None


_ParamIn = StrictBool | StrictInt | StrictFloat | StrictStr | list[StrictStr] | list[StrictInt | StrictFloat]


class _CriterionIn(_Strict):
    id: StrictStr
    statement: StrictStr = Field(min_length=1)
    citation: _CitationIn | None = None  # optional here so the refusal can name the criterion
    facts: list[StrictStr]
    rule: StrictStr
    params: dict[str, _ParamIn] = Field(default_factory=dict)
    confidence: Literal["confirmed", "unconfirmed"]
    note: StrictStr | None = None
    applies_when: StrictStr | None = None
    satisfies_hint: StrictStr = Field(min_length=1)


class _FrequencyLimitIn(_Strict):
    id: StrictStr
    statement: StrictStr = Field(min_length=1)
    citation: _CitationIn | None = None
    max_count: StrictInt = Field(ge=1)
    window_days: StrictInt = Field(ge=1)
    match_facts: list[StrictStr] = Field(default_factory=list)
    counts_statuses: list[StrictStr] = Field(default_factory=lambda: list(AFFIRMED_STATUSES))
    confidence: Literal["confirmed", "unconfirmed"]
    note: StrictStr | None = None
    satisfies_hint: StrictStr = Field(min_length=1)


class _DocumentIn(_Strict):
    text: StrictStr = Field(min_length=1)
    citation: _CitationIn | None = None


class _PolicyIn(_Strict):
    id: StrictStr
    kind: Literal["NCD", "LCD"]
    title: StrictStr
    contractor: StrictStr
    jurisdictions: list[StrictStr]
    categories: list[StrictStr] = Field(min_length=1)
    url: StrictStr | None = None
    attribution_confidence: Literal["high", "medium", "low", "national"]
    attribution_note: StrictStr | None = None
    version: StrictStr


class _FileIn(_Strict):
    policy: _PolicyIn
    facts: dict[str, _FactIn]
    criteria: list[_CriterionIn] = Field(min_length=1)
    frequency_limits: list[_FrequencyLimitIn] = Field(default_factory=list)
    documentation: list[_DocumentIn] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------------------
# Loader


def load_criteria(directory: Path | None = None) -> CriteriaLibrary:
    """Load every ``*.yaml`` criteria file (default: the packaged ``wiserpa/data/criteria``)."""
    if directory is None:
        return _load_default()
    return _load_dir(Path(directory))


@functools.lru_cache(maxsize=1)
def _load_default() -> CriteriaLibrary:
    return _load_dir(resources.files("wiserpa") / "data" / "criteria")


def _load_dir(directory: Traversable) -> CriteriaLibrary:
    policies: dict[str, PolicyCriteria] = {}
    files = sorted(
        (f for f in directory.iterdir() if f.name.endswith((".yaml", ".yml"))), key=lambda f: f.name
    )
    for file in files:
        policy = load_file(file.name, file.read_text(encoding="utf-8"))
        if policy.policy_id in policies:
            other = policies[policy.policy_id].source_file
            raise CriteriaLoadError(f"{file.name}: policy {policy.policy_id!r} is already defined in {other}")
        policies[policy.policy_id] = policy
    return CriteriaLibrary(policies=policies)


def _expected_file_stem(policy_id: str) -> str:
    return "ncd-" + policy_id.removeprefix("NCD ") if policy_id.startswith("NCD ") else f"lcd-{policy_id}"


def load_file(name: str, text: str) -> PolicyCriteria:
    """Parse and check one criteria file; ``name`` is used in error messages and as ``source_file``."""
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise CriteriaLoadError(f"{name}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CriteriaLoadError(f"{name}: expected a mapping at the top level")
    try:
        doc = _FileIn.model_validate(raw)
    except ValidationError as exc:
        raise CriteriaLoadError(_describe_validation(name, raw, exc)) from None
    return _build_policy(name, doc)


def _describe_validation(name: str, raw: dict[str, Any], exc: ValidationError) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = err["loc"]
        where = ".".join(str(p) for p in loc)
        # Name the criterion by its id, not only its position, so the message points at the right entry.
        if len(loc) >= 2 and loc[0] in ("criteria", "frequency_limits") and isinstance(loc[1], int):
            items = raw.get(str(loc[0])) or []
            if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
                where = f"criterion {items[loc[1]].get('id')!r} ({where})"
        lines.append(f"{where}: {err['msg']}")
    return f"{name}: " + "; ".join(lines)


def _build_policy(name: str, doc: _FileIn) -> PolicyCriteria:
    pol = doc.policy
    pid = pol.id
    id_ok = NCD_ID.match(pid) if pol.kind == "NCD" else LCD_ID.match(pid)
    if not id_ok:
        raise CriteriaLoadError(f"{name}: policy id {pid!r} is not a valid {pol.kind} id")
    stem = name.rsplit(".", 1)[0]
    if stem != _expected_file_stem(pid):
        raise CriteriaLoadError(
            f"{name}: file for policy {pid!r} must be named {_expected_file_stem(pid)}.yaml"
        )
    for cat in pol.categories:
        if not _CATEGORY.match(cat):
            raise CriteriaLoadError(f"{name}: category {cat!r} is not a lower_snake_case key")

    facts = _build_facts(name, doc.facts)

    def cite(kind: str, ident: str, c: _CitationIn | None) -> Citation:
        if c is None:
            raise CriteriaLoadError(
                f"{name}: {kind} {ident!r} has no citation (R6: every rule cites its NCD/LCD)"
            )
        if not (NCD_ID.match(c.policy) or LCD_ID.match(c.policy)):
            raise CriteriaLoadError(
                f"{name}: {kind} {ident!r} cites {c.policy!r}, which is not an NCD (e.g. 'NCD 160.7') "
                "or LCD (e.g. 'L39240') id"
            )
        if c.policy != pid:
            raise CriteriaLoadError(
                f"{name}: {kind} {ident!r} cites {c.policy!r}, not this file's policy {pid!r}"
            )
        return Citation(policy=c.policy, section=c.section)

    seen: set[str] = set()
    used: set[str] = set()
    criteria: list[Criterion] = []
    for c in doc.criteria:
        if not _CRITERION_ID.match(c.id):
            raise CriteriaLoadError(f"{name}: criterion id {c.id!r} must look like 'service.name'")
        if c.id in seen:
            raise CriteriaLoadError(f"{name}: duplicate criterion id {c.id!r}")
        seen.add(c.id)
        citation = cite("criterion", c.id, c.citation)
        params: dict[str, ParamValue] = {
            k: (list(v) if isinstance(v, list) else v) for k, v in c.params.items()
        }
        for p in params:
            if not _IDENT.match(p):
                raise CriteriaLoadError(
                    f"{name}: criterion {c.id!r}: parameter name {p!r} is not lower_snake_case"
                )
        try:
            rule = compile_rule(c.rule, facts=facts, params=params)
            applies = compile_rule(c.applies_when, facts=facts, params=params) if c.applies_when else None
        except RuleError as exc:
            raise CriteriaLoadError(f"{name}: criterion {c.id!r}: {exc}") from None
        unused = set(params) - set(rule.params_used) - set(applies.params_used if applies else ())
        if unused:
            raise CriteriaLoadError(f"{name}: criterion {c.id!r}: parameters {sorted(unused)} are not used")
        needed = list(dict.fromkeys(rule.names + (applies.names if applies else ())))
        undeclared = [f for f in c.facts if f not in facts]
        if undeclared:
            raise CriteriaLoadError(f"{name}: criterion {c.id!r} lists undeclared facts {undeclared}")
        if set(c.facts) != set(needed):
            raise CriteriaLoadError(
                f"{name}: criterion {c.id!r}: 'facts' {sorted(c.facts)} differ from the facts its rule reads "
                f"{sorted(needed)}"
            )
        used.update(needed)
        criteria.append(
            Criterion(
                id=c.id,
                statement=c.statement.strip(),
                citation=citation,
                facts=tuple(c.facts),
                rule=rule,
                rule_text=c.rule,
                params=params,
                confidence=c.confidence,
                note=c.note.strip() if c.note else None,
                applies_when=applies,
                satisfies_hint=c.satisfies_hint.strip(),
            )
        )

    limits: list[FrequencyLimit] = []
    for f in doc.frequency_limits:
        if not _CRITERION_ID.match(f.id):
            raise CriteriaLoadError(f"{name}: frequency limit id {f.id!r} must look like 'service.name'")
        if f.id in seen:
            raise CriteriaLoadError(f"{name}: duplicate criterion id {f.id!r}")
        seen.add(f.id)
        citation = cite("frequency limit", f.id, f.citation)
        for m in f.match_facts:
            if m not in facts:
                raise CriteriaLoadError(f"{name}: frequency limit {f.id!r} matches on undeclared fact {m!r}")
            if facts[m].type in ("codes", "date", "boolean"):
                raise CriteriaLoadError(
                    f"{name}: frequency limit {f.id!r} matches on {m!r} of type {facts[m].type}; "
                    "use an enum, string or integer fact"
                )
        used.update(f.match_facts)
        limits.append(
            FrequencyLimit(
                id=f.id,
                statement=f.statement.strip(),
                citation=citation,
                max_count=f.max_count,
                window_days=f.window_days,
                match_facts=tuple(f.match_facts),
                counts_statuses=tuple(f.counts_statuses),
                confidence=f.confidence,
                note=f.note.strip() if f.note else None,
                satisfies_hint=f.satisfies_hint.strip(),
            )
        )

    docs = [
        DocumentRequirement(text=d.text.strip(), citation=cite("documentation item", d.text[:40], d.citation))
        for d in doc.documentation
    ]

    # R6 again: a fact no cited rule needs would be documentation beyond the NCD/LCD.
    orphans = sorted(set(facts) - used)
    if orphans:
        raise CriteriaLoadError(f"{name}: facts {orphans} are declared but no criterion or limit uses them")

    return PolicyCriteria(
        policy_id=pid,
        kind=pol.kind,
        title=pol.title,
        contractor=pol.contractor,
        jurisdictions=tuple(pol.jurisdictions),
        categories=tuple(pol.categories),
        url=pol.url,
        attribution_confidence=pol.attribution_confidence,
        facts=facts,
        criteria=tuple(criteria),
        frequency_limits=tuple(limits),
        documentation=tuple(docs),
        source_file=name,
        version=pol.version,
        attribution_note=pol.attribution_note,
    )


def _build_facts(name: str, raw: Mapping[str, _FactIn]) -> dict[str, FactSpec]:
    facts: dict[str, FactSpec] = {}
    for fname, f in raw.items():
        if not _IDENT.match(fname) or fname in RESERVED_NAMES:
            raise CriteriaLoadError(f"{name}: fact name {fname!r} must be lower_snake_case and not reserved")
        if f.type == "enum" and not f.values:
            raise CriteriaLoadError(f"{name}: enum fact {fname!r} needs 'values'")
        if f.type != "enum" and f.values is not None:
            raise CriteriaLoadError(f"{name}: fact {fname!r} of type {f.type} cannot have 'values'")
        if f.type in ("number", "integer") and not f.unit:
            raise CriteriaLoadError(f"{name}: numeric fact {fname!r} needs a unit")
        if (f.minimum is not None or f.maximum is not None) and f.type not in ("number", "integer"):
            raise CriteriaLoadError(f"{name}: fact {fname!r}: minimum/maximum only apply to numbers")
        facts[fname] = FactSpec(
            name=fname,
            type=f.type,
            unit=f.unit,
            values=tuple(f.values) if f.values is not None else None,
            label=f.label,
            help=f.help,
            minimum=f.minimum,
            maximum=f.maximum,
        )
    return facts


# --------------------------------------------------------------------------------------------------------
# Fact validation and coercion


# Facts are stored as JSON whose encoder (orjson) takes integers of at most 64 bits.
_INT64 = 2**63


def _check_fact(spec: FactSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``spec``, or None when it is."""
    t = spec.type
    if t == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if t in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if t == "integer" and not isinstance(value, int):
            return "must be a whole number"
        if not math.isfinite(value):
            return "must be a finite number"
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            return "is out of range (a whole number must fit in 64 bits)"
        if spec.minimum is not None and value < spec.minimum:
            return f"must be at least {spec.minimum:g}"
        if spec.maximum is not None and value > spec.maximum:
            return f"must be at most {spec.maximum:g}"
        return None
    if t == "enum":
        if isinstance(value, str) and spec.values and value in spec.values:
            return None
        return f"must be one of {list(spec.values or ())}"
    if t == "string":
        return None if isinstance(value, str) and value.strip() else "must be a non-empty string"
    if t == "date":
        if isinstance(value, dt.datetime):
            return "must be a date (YYYY-MM-DD), not a date-time"
        if isinstance(value, dt.date):
            return None
        if isinstance(value, str):
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                return "must be an ISO date (YYYY-MM-DD)"
            return None
        return "must be an ISO date (YYYY-MM-DD)"
    if t == "codes":
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return None
        return "must be a list of code strings"
    return f"unsupported type {t}"  # pragma: no cover


def validate_facts(policy: PolicyCriteria, facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems with submitted facts as ``(field path, message)``; a ``None`` value means "not provided"."""
    problems: list[tuple[str, str]] = []
    for name, value in facts.items():
        spec = policy.facts.get(name)
        if spec is None:
            problems.append((f"{_FACT_PATH}.{name}", f"not a fact {policy.policy_id} asks for"))
            continue
        if value is None:
            continue
        why = _check_fact(spec, value)
        if why:
            problems.append((f"{_FACT_PATH}.{name}", why))
    return problems


def coerce_facts(policy: PolicyCriteria, facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts in evaluation form: ISO dates parsed, code lists as tuples, unknown names dropped.

    Assumes :func:`validate_facts` found nothing; a value it cannot coerce is dropped (and so is unknown).
    """
    out: dict[str, Any] = {}
    for name, value in facts.items():
        spec = policy.facts.get(name)
        if spec is None or value is None:
            continue
        if spec.type == "date" and isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                continue
        elif spec.type == "codes" and isinstance(value, list | tuple):
            value = tuple(value)
        out[name] = value
    return out


# --------------------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """An earlier request for the same beneficiary, as frequency limits see it."""

    date_of_service: dt.date
    category: str
    policy_id: str
    facts: Mapping[str, Any]
    status: str


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """The outcome of one criterion or frequency limit for one request."""

    criterion_id: str
    kind: Literal["criterion", "frequency_limit"]
    result: Truth
    statement: str
    citation: Citation
    missing_facts: tuple[str, ...]
    confidence: Confidence
    satisfies_hint: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for the decision record and the API)."""
        return {
            "criterion_id": self.criterion_id,
            "kind": self.kind,
            "result": self.result.value,
            "statement": self.statement,
            # Citation.to_dict inlined: this runs for every criterion of every decision (7 a submission).
            "citation": {"policy": self.citation.policy, "section": self.citation.section},
            "missing_facts": list(self.missing_facts),
            "confidence": self.confidence,
            "satisfies_hint": self.satisfies_hint,
        }


def _missing(names: Iterable[str], facts: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(n for n in names if facts.get(n) is None)


def window_start(date_of_service: dt.date, window_days: int) -> dt.date:
    """First date a prior service counts in a rolling window of ``window_days`` days ending on the service.

    The window is ``window_days`` calendar days long *including* the date of service: for 365 days, a prior
    service 364 days earlier counts and one 365 days earlier does not.
    """
    return date_of_service - dt.timedelta(days=window_days - 1)


def evaluate(
    policy: PolicyCriteria,
    facts: Mapping[str, Any],
    *,
    date_of_service: dt.date,
    category: str,
    history: Sequence[HistoryItem] = (),
) -> list[CriterionResult]:
    """Evaluate every applicable criterion and frequency limit of ``policy`` against coerced facts."""
    results: list[CriterionResult] = []
    for crit in policy.criteria:
        applies: bool | None = True
        if crit.applies_when is not None:
            applies = crit.applies_when.evaluate_raw(facts)
            if applies is False:
                continue  # not applicable to this request: omitted
        value = crit.rule.evaluate_raw(facts)
        if applies is None and value is not True:
            # Whether the criterion applies is unknown; a rule that is met settles it either way,
            # anything else cannot be decided.
            value = None
        results.append(
            CriterionResult(
                criterion_id=crit.id,
                kind="criterion",
                result=Truth.of(value),
                statement=crit.statement,
                citation=crit.citation,
                missing_facts=_missing(crit.facts, facts) if value is None else (),
                confidence=crit.confidence,
                satisfies_hint=crit.satisfies_hint,
            )
        )
    for lim in policy.frequency_limits:
        value = _frequency(lim, policy.policy_id, facts, date_of_service, category, history)
        results.append(
            CriterionResult(
                criterion_id=lim.id,
                kind="frequency_limit",
                result=Truth.of(value),
                statement=lim.statement,
                citation=lim.citation,
                missing_facts=_missing(lim.match_facts, facts) if value is None else (),
                confidence=lim.confidence,
                satisfies_hint=lim.satisfies_hint,
            )
        )
    return results


def _frequency(
    lim: FrequencyLimit,
    policy_id: str,
    facts: Mapping[str, Any],
    dos: dt.date,
    category: str,
    history: Sequence[HistoryItem],
) -> bool | None:
    """Count matching prior services; MET when this one still fits under ``max_count``.

    Prior services count when they have the same category and policy, an authorized status, a date of
    service in ``[dos - (window_days - 1), dos]``, and equal values for every match fact. A prior item that
    lacks a match fact might or might not match: it is counted as "maybe", so the answer is UNKNOWN only if
    those maybes could push the total over the limit.
    """
    keys = [facts.get(m) for m in lim.match_facts]
    if any(k is None for k in keys):
        return None
    start = window_start(dos, lim.window_days)
    statuses = lim.counts_statuses
    sure = maybe = 0
    for item in history:
        if not (start <= item.date_of_service <= dos):
            continue
        if item.category != category or item.policy_id != policy_id or item.status not in statuses:
            continue
        match: bool | None = True
        for m, want in zip(lim.match_facts, keys, strict=True):
            got = item.facts.get(m)
            if got is None:
                match = None
            elif got != want:
                match = False
                break
        if match is True:
            sure += 1
        elif match is None:
            maybe += 1
    if sure + 1 > lim.max_count:
        return False
    if sure + maybe + 1 > lim.max_count:
        return None
    return True


# --------------------------------------------------------------------------------------------------------
# Documentation checklist


def requirements(policy: PolicyCriteria) -> list[dict[str, Any]]:
    """The documentation checklist: each fact with the cited criteria needing it, then document items."""
    needed_by: dict[str, list[dict[str, str]]] = {name: [] for name in policy.facts}
    for crit in policy.criteria:
        for name in crit.facts:
            needed_by[name].append({"criterion_id": crit.id, **crit.citation.to_dict()})
    for lim in policy.frequency_limits:
        for name in lim.match_facts:
            needed_by[name].append({"criterion_id": lim.id, **lim.citation.to_dict()})
    out: list[dict[str, Any]] = []
    for name, spec in policy.facts.items():
        out.append(
            {
                "kind": "fact",
                "name": name,
                "field": f"{_FACT_PATH}.{name}",
                "type": spec.type,
                "unit": spec.unit,
                "values": list(spec.values) if spec.values is not None else None,
                "label": spec.label,
                "help": spec.help,
                "minimum": spec.minimum,
                "maximum": spec.maximum,
                "citations": needed_by[name],
            }
        )
    for doc in policy.documentation:
        out.append({"kind": "document", "text": doc.text, "citations": [doc.citation.to_dict()]})
    return out
