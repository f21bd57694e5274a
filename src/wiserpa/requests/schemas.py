"""Wire shapes of a prior-authorization request: what REST, FHIR, the web form and the simulator submit."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator

from wiserpa.inbound import Strict
from wiserpa.policy.catalog import COVERAGE_TYPES
from wiserpa.policy.validation import (
    is_valid_icd10cm_shape,
    is_valid_mbi,
    is_valid_npi,
    normalize_icd10cm,
)


def _icd10(code: str) -> str:
    norm = normalize_icd10cm(code)
    if not is_valid_icd10cm_shape(norm):
        raise ValueError(f"{code!r} is not an ICD-10-CM code")
    return norm


def _modifier(mod: str) -> str:
    mod = mod.strip().upper()
    if len(mod) != 2 or not mod.isascii() or not mod.isalnum():
        raise ValueError(f"modifier {mod!r} is not two letters/digits")
    return mod


Icd10Code = Annotated[str, Field(max_length=8), AfterValidator(_icd10)]
Modifier = Annotated[str, Field(max_length=2), AfterValidator(_modifier)]


WITHDRAW_REASON_MAX = 1000  # characters of a withdrawal's reason, on the API and the web form alike


class Urgency(StrEnum):
    """How fast the requester needs an answer."""

    STANDARD = "standard"
    EXPEDITED = "expedited"


class Channel(StrEnum):
    """How the request reached the participant."""

    PORTAL = "portal"
    MAC_FORWARDED = "mac_forwarded"
    FHIR = "fhir"


class ProviderIn(Strict):
    """The requesting (ordering/rendering) provider."""

    npi: str = Field(description="10-digit NPI of the requesting clinician (Luhn check digit verified)")
    name: str | None = Field(default=None, max_length=200)

    @field_validator("npi")
    @classmethod
    def _npi(cls, value: str) -> str:
        if not is_valid_npi(value):
            raise ValueError("not a valid NPI (10 digits with a correct check digit)")
        return value


class BeneficiaryIn(Strict):
    """The Medicare beneficiary; only the MBI is needed."""

    mbi: str = Field(description="Medicare Beneficiary Identifier, 11 characters")
    birth_date: dt.date | None = None

    @field_validator("mbi")
    @classmethod
    def _mbi(cls, value: str) -> str:
        value = value.replace("-", "").upper()
        if not is_valid_mbi(value):
            raise ValueError("not a valid MBI (11 characters in the CMS MBI format)")
        return value


class ServiceLineIn(Strict):
    """One code on the request: the primary procedure, an add-on, or an associated service."""

    code: str = Field(min_length=4, max_length=5, description="CPT/HCPCS code")
    modifiers: list[Modifier] = Field(default_factory=list, max_length=4)
    units: int = Field(default=1, ge=1, le=99)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return value.upper()


class AttachmentIn(Strict):
    """Metadata of a document sent with the request (the document itself travels elsewhere)."""

    title: str = Field(max_length=200)
    content_type: str = Field(default="application/pdf", max_length=100)
    size_bytes: int | None = Field(default=None, ge=0, le=2**63 - 1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class SubmitRequestIn(Strict):
    """A prior-authorization request as a practice submits it."""

    state: str = Field(
        min_length=2, max_length=2, description="Two-letter state of the service (model state)"
    )
    provider: ProviderIn
    organization_npi: str | None = Field(default=None, description="Billing organization NPI, if different")
    beneficiary: BeneficiaryIn
    lines: list[ServiceLineIn] = Field(min_length=1, max_length=20)
    diagnosis_codes: list[Icd10Code] = Field(min_length=1, max_length=12, description="ICD-10-CM codes")
    place_of_service: str = Field(pattern=r"^\d{2}$", description="CMS place-of-service code")
    date_of_service: dt.date
    urgency: Urgency = Urgency.STANDARD
    channel: Channel = Channel.PORTAL
    mac_received_at: dt.datetime | None = Field(
        default=None,
        description="When the MAC received a MAC-forwarded request (clock start under some profiles)",
    )
    emergency: bool = False
    revenue_code: str | None = Field(default=None, pattern=r"^\d{4}$")
    coverage: str = Field(
        default="original_medicare", description="original_medicare | medicare_advantage | va | ihs"
    )
    time_sensitive_attestation: bool = Field(
        default=False, description="The ordering clinician attests that delay risks harm (R1 exemption)"
    )
    clinical_facts: dict[str, Any] = Field(
        default_factory=dict, description="Structured facts named by the criteria"
    )
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=50)
    notes: str | None = Field(default=None, max_length=4000)

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        return value.upper()

    @field_validator("organization_npi")
    @classmethod
    def _organization_npi(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_npi(value):
            raise ValueError("not a valid NPI (10 digits with a correct check digit)")
        return value

    @field_validator("coverage")
    @classmethod
    def _coverage(cls, value: str) -> str:
        if value not in COVERAGE_TYPES:
            raise ValueError(f"unknown coverage {value!r}; expected one of {', '.join(COVERAGE_TYPES)}")
        return value

    @field_validator("clinical_facts")
    @classmethod
    def _facts(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 200:
            raise ValueError("too many clinical facts (at most 200)")
        return value
