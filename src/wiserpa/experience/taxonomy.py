"""Controlled vocabularies for experience reports (R9): obstacles, patient impact, support-ticket categories.

The values are stable machine keys (stored in the database and used in exports); the human labels are what
forms, dashboards and evidence briefs show. Keep the values stable: reports filed months apart must stay
comparable, so add new members rather than renaming old ones.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Obstacle", "PatientImpact", "TicketCategory", "humanize", "labels"]


class Obstacle(StrEnum):
    """What got in the way of a WISeR prior-authorization request."""

    PORTAL_OUTAGE = "portal_outage"
    LOST_DOCUMENTS = "lost_documents"
    REPEATED_DOCUMENTATION_REQUESTS = "repeated_documentation_requests"
    CRITERIA_BEYOND_LCD = "criteria_beyond_lcd"
    WRONG_DENIAL_REASON = "wrong_denial_reason"
    ANESTHESIA_CLAIM_DENIED = "anesthesia_claim_denied"
    NO_RESPONSE = "no_response"
    PEER_TO_PEER_UNAVAILABLE = "peer_to_peer_unavailable"
    OTHER = "other"

    @property
    def label(self) -> str:
        """Human-readable label."""
        return _OBSTACLE_LABELS[self]


class PatientImpact(StrEnum):
    """The worst effect on the patient that the reporter knows of."""

    NONE = "none"
    DELAYED_CARE = "delayed_care"
    ABANDONED_CARE = "abandoned_care"
    EMERGENCY_VISIT = "emergency_visit"
    HARM = "harm"

    @property
    def label(self) -> str:
        """Human-readable label."""
        return _IMPACT_LABELS[self]


class TicketCategory(StrEnum):
    """Category of a technical-support ticket raised with a participant (R5)."""

    PORTAL_ACCESS = "portal_access"
    UPLOAD_FAILURE = "upload_failure"
    STATUS_UNCLEAR = "status_unclear"
    UTN_PROBLEM = "utn_problem"
    OTHER = "other"

    @property
    def label(self) -> str:
        """Human-readable label."""
        return _TICKET_LABELS[self]


_OBSTACLE_LABELS: dict[Obstacle, str] = {
    Obstacle.PORTAL_OUTAGE: "Participant portal unavailable",
    Obstacle.LOST_DOCUMENTS: "Submitted documents lost",
    Obstacle.REPEATED_DOCUMENTATION_REQUESTS: "Repeated requests for the same documentation",
    Obstacle.CRITERIA_BEYOND_LCD: "Criteria or documentation beyond the NCD/LCD",
    Obstacle.WRONG_DENIAL_REASON: "Denial reason wrong or not applicable",
    Obstacle.ANESTHESIA_CLAIM_DENIED: "Anesthesia claim denied",
    Obstacle.NO_RESPONSE: "No response within the review timeline",
    Obstacle.PEER_TO_PEER_UNAVAILABLE: "Peer-to-peer discussion unavailable",
    Obstacle.OTHER: "Other obstacle",
}

_IMPACT_LABELS: dict[PatientImpact, str] = {
    PatientImpact.NONE: "No known impact",
    PatientImpact.DELAYED_CARE: "Care delayed",
    PatientImpact.ABANDONED_CARE: "Care abandoned",
    PatientImpact.EMERGENCY_VISIT: "Emergency visit",
    PatientImpact.HARM: "Patient harm",
}

_TICKET_LABELS: dict[TicketCategory, str] = {
    TicketCategory.PORTAL_ACCESS: "Portal access",
    TicketCategory.UPLOAD_FAILURE: "Upload failure",
    TicketCategory.STATUS_UNCLEAR: "Request status unclear",
    TicketCategory.UTN_PROBLEM: "UTN problem",
    TicketCategory.OTHER: "Other",
}


def labels(enum_cls: type[Obstacle] | type[PatientImpact] | type[TicketCategory]) -> dict[str, str]:
    """Map each value of ``enum_cls`` to its label, in declaration order (for form choices)."""
    return {member.value: member.label for member in enum_cls}


def humanize(value: str) -> str:
    """Label for a taxonomy value, or the value itself when it belongs to no vocabulary."""
    # Obstacle and TicketCategory share "other"; the obstacle reading is the common one in briefs.
    for enum_cls in (Obstacle, PatientImpact, TicketCategory):
        try:
            return enum_cls(value).label
        except ValueError:
            continue
    return value
