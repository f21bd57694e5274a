"""The CapabilityStatement at `/fhir/metadata`: what this PAS/DTR server and its subscriptions support."""

from __future__ import annotations

from typing import Any

from wiserpa import __version__
from wiserpa.fhir.subscriptions import PAS_TOPIC

__all__ = ["capability_statement"]

PAS_IG = "http://hl7.org/fhir/us/davinci-pas/ImplementationGuide/hl7.fhir.us.davinci-pas"
DTR_IG = "http://hl7.org/fhir/us/davinci-dtr/ImplementationGuide/hl7.fhir.us.davinci-dtr"
BACKPORT_IG = (
    "http://hl7.org/fhir/uv/subscriptions-backport/ImplementationGuide/hl7.fhir.uv.subscriptions-backport"
)


def capability_statement(*, base_url: str, date: str) -> dict[str, Any]:
    """The server's CapabilityStatement (R4, JSON only; PAS spec-11, spec-55)."""
    return {
        "resourceType": "CapabilityStatement",
        "id": "wiserpa",
        "url": f"{base_url}/metadata",
        "version": __version__,
        "name": "WiserpaPasServer",
        "title": "wiserpa: Da Vinci PAS 2.2.1, DTR 2.2.0 and Subscriptions for Medicare WISeR",
        "status": "active",
        "date": date,
        "publisher": "wiserpa",
        "kind": "instance",
        "instantiates": [
            "http://hl7.org/fhir/us/davinci-pas/CapabilityStatement/IntermediaryCapabilities",
        ],
        "software": {"name": "wiserpa", "version": __version__},
        "implementation": {"description": "WISeR prior authorization", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "implementationGuide": [f"{PAS_IG}|2.2.1", f"{DTR_IG}|2.2.0", f"{BACKPORT_IG}|1.1.0"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Authenticate with Authorization: Bearer <API key> of a provider "
                "organization. "
                "CDS Hooks (CRD 2.2.1) discovery is at /cds-services.",
                "security": {
                    "cors": False,
                    "description": "Bearer API keys; requests are scoped to the key's organization",
                },
                "resource": [
                    {
                        "type": "Claim",
                        "documentation": "POST /fhir/Claim (create) files a Medicare claim for payment "
                        "(matched to its prior authorization); $submit and $inquire are PAS.",
                        "supportedProfile": [
                            "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim",
                            "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-update",
                            "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-inquiry",
                        ],
                        "interaction": [{"code": "create"}],
                        "operation": [
                            {
                                "name": "submit",
                                "definition": "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit",
                            },
                            {
                                "name": "inquire",
                                "definition": "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-inquiry",
                            },
                        ],
                    },
                    {
                        "type": "Subscription",
                        "supportedProfile": [
                            "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription",
                            "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription",
                        ],
                        "extension": [
                            {
                                "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                                "capabilitystatement-subscriptiontopic-canonical",
                                "valueCanonical": PAS_TOPIC,
                            }
                        ],
                        "interaction": [
                            {"code": "create"},
                            {"code": "read"},
                            {"code": "delete"},
                            {"code": "search-type"},
                        ],
                        "operation": [
                            {
                                "name": "status",
                                "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
                                "backport-subscription-status",
                            }
                        ],
                    },
                    {
                        "type": "Questionnaire",
                        "supportedProfile": [
                            "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-std-questionnaire"
                        ],
                        "interaction": [{"code": "read"}],
                        "operation": [
                            {
                                "name": "questionnaire-package",
                                "definition": "http://hl7.org/fhir/us/davinci-dtr/OperationDefinition/"
                                "questionnaire-package",
                            }
                        ],
                    },
                ],
            }
        ],
    }
