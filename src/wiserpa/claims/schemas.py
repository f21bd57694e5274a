"""Wire shapes of claims, pre-payment review documentation, reviewer decisions and appeals."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator

from wiserpa.inbound import Strict
from wiserpa.policy.utn import is_valid_utn
from wiserpa.policy.validation import is_valid_npi
from wiserpa.requests.schemas import AttachmentIn, BeneficiaryIn, Icd10Code, Modifier, ProviderIn

# CPT (five digits, or four digits and F/T/U for category II/III and PLA codes) or HCPCS Level II (a letter
# A-V and four digits). Anything else is not a procedure code.
_CODE_RE = re.compile(r"^(\d{4}[0-9FTU]|[A-V]\d{4})$")


class ClaimType(StrEnum):
    """The claim form: professional (837P / CMS-1500) or institutional (837I / UB-04)."""

    PROFESSIONAL = "professional"
    INSTITUTIONAL = "institutional"


class LineOutcome(StrEnum):
    """What a claim line became."""

    PAYABLE = "payable"
    DENIED = "denied"
    SUSPENDED = "suspended"
    NOT_SUBJECT = "not_subject"


class ClaimLineIn(Strict):
    """One billed service line."""

    code: str = Field(min_length=5, max_length=5, description="CPT/HCPCS code")
    modifiers: list[Modifier] = Field(default_factory=list, max_length=4)
    units: int = Field(
        default=1, ge=1, le=9999, description="Units; anesthesia lines carry minutes, as Medicare bills them"
    )
    date_of_service: dt.date
    rendering_npi: str = Field(description="NPI of the clinician who rendered the service")
    place_of_service: str = Field(pattern=r"^\d{2}$", description="CMS place-of-service code")
    revenue_code: str | None = Field(default=None, pattern=r"^\d{4}$", description="Institutional claims")
    utn: str | None = Field(default=None, description="UTN of the authorization, when the biller has it")

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        value = value.upper()
        if not _CODE_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a CPT or HCPCS code")
        return value

    @field_validator("rendering_npi")
    @classmethod
    def _npi(cls, value: str) -> str:
        if not is_valid_npi(value):
            raise ValueError("not a valid NPI (10 digits with a correct check digit)")
        return value

    @field_validator("utn")
    @classmethod
    def _utn(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().upper()
        if not is_valid_utn(value):
            raise ValueError("not a UTN (14 characters: 2 letters/digits, A or H, 11 digits)")
        return value


class SubmitClaimIn(Strict):
    """A claim as a biller submits it."""

    state: str = Field(min_length=2, max_length=2, description="Two-letter state of the service")
    claim_type: ClaimType
    billing_provider: ProviderIn
    beneficiary: BeneficiaryIn
    diagnosis_codes: list[Icd10Code] = Field(default_factory=list, max_length=12)
    lines: list[ClaimLineIn] = Field(min_length=1, max_length=50)
    coverage: Literal["original_medicare", "medicare_advantage", "va", "ihs"] = "original_medicare"
    patient_control_number: str | None = Field(default=None, max_length=38)

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        return value.upper()


class DocumentsIn(Strict):
    """Documentation sent in answer to a pre-payment review's additional-documentation request."""

    clinical_facts: dict[str, Any] = Field(default_factory=dict)
    diagnosis_codes: list[Icd10Code] = Field(default_factory=list, max_length=12)
    time_sensitive_attestation: bool = False
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=50)
    note: str | None = Field(default=None, max_length=4000)


class ReviewDecisionIn(Strict):
    """A clinician's pre-payment review decision; a non-affirmation cites unmet criteria."""

    decision: Literal["affirm", "non_affirm"]
    reasons: list[str] = Field(default_factory=list, max_length=50)
    note: str | None = Field(default=None, max_length=4000)


class AppealIn(Strict):
    """A redetermination request for a denied line."""

    reason: str | None = Field(default=None, max_length=4000)


class AppealOutcomeIn(Strict):
    """The recorded result of a redetermination."""

    outcome: Literal["upheld", "overturned"]
    decided_on: dt.date
    note: str | None = Field(default=None, max_length=4000)
