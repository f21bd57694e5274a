"""Generate the requirement matrix of docs/fhir-conformance.md from the IGs' Requirements-fromNarrative.json.

Lists every numbered PAS statement whose actor includes the payer/intermediary and every CRD statement whose
actor includes the CRD server, with the test that covers it or why it does not apply (``COVERAGE`` below, filled
by hand). Unmapped statements are printed as "not yet mapped" so gaps stay visible.

    python docs/tools/conformance_matrix.py > /tmp/matrix.md
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "tests" / "fixtures" / "davinci"
P = "tests/fhir/test_pas_api.py"
S = "tests/fhir/test_subscriptions_api.py"
C = "tests/fhir/test_crd_api.py"
D = "tests/fhir/test_dtr_api.py"
E = "tests/fhir/test_e2e_api.py"
R = "tests/fhir/test_pas_response.py"
PP = "tests/fhir/test_pas_parse.py"
NA_X12 = "N/A: FHIR-native processing under CMS's Feb-2024 enforcement discretion; no X12 278/275 is produced"
NA_DISCOVERY = (
    "N/A: one endpoint per version for all coverage (Original Medicare only); no endpoint discovery"
)

COVERAGE: dict[str, str] = {
    # --- PAS (payer / intermediary)
    "ainfo-1": f"DTR asks every policy fact up front: {D}::test_package_for_an_order_in_the_callers_state",
    "ainfo-2": "Not used: pended requests go to a clinician; no X12 additional-information requests",
    "ainfo-3": NA_X12,
    "conf-1": "Single version (2.2.1) at /fhir; CapabilityStatement lists it: "
    f"{P}::test_metadata_lists_operations",
    "conf-2": NA_DISCOVERY,
    "conf-3": NA_DISCOVERY,
    "conf-4": f"IG/Inferno must-support bundles are processed without error: {P}::test_every_fixture_gets_a_clean_answer_never_5xx",
    "conf-5": f"{P}::test_every_fixture_gets_a_clean_answer_never_5xx (never a 5xx)",
    "conf-6": f"{R} (every response kind); {P}::test_submit_affirms_with_utn_and_keeps_the_bundle",
    "conf-10": "Elements the engine does not use are ignored (kept in the stored Bundle)",
    "conf-11": f"Only elements WISeR needs are required; missing ones are named: {PP}",
    "conf-12": f"{PP} (item.category omitted by Inferno is a warning, not an error)",
    "conf-13": "Informative",
    "conf-14": f"{PP}",
    "conf-15": "Non-standard data only in wiserpa-namespaced extensions (affirmation basis)",
    "conf-16": "Informative (publishing guidance)",
    "metric-1": "Every call is audited and the Bundle stored (fhir_bundles): metrics can be derived",
    "metric-2": f"{P}::test_submit_affirms_with_utn_and_keeps_the_bundle (raw Bundle stored with the request)",
    "priv-2": NA_X12,
    "priv-3": "Bearer API keys over TLS (deployment); OAuth client-credentials not implemented",
    "prof-2": f"Quantities read as whole units or refused: {PP}",
    "prof-3": NA_X12,
    "prof-ben-1": NA_X12,
    "prof-sub-1": NA_X12,
    "spec-1": "US Core resources parsed with fhir.resources.R4B; profiles not validated (no profile validator in Python)",
    "spec-2": "Informative",
    "spec-3": f"CRD implemented: {C}",
    "spec-4": "Bearer keys, audit log, scoped access; TLS at the deployment edge",
    "spec-5": NA_DISCOVERY,
    "spec-6": NA_DISCOVERY,
    "spec-7": f"Synchronous answer; p99 figures below (bench/bench_fhir.py); {E}::test_crd_dtr_pas_with_fhirclient",
    "spec-9": f"$inquire served but submitters are notified by subscription: {E}",
    "spec-10": "N/A: client-side",
    "spec-11": f"JSON only, XML → 415: {P}::test_bodies_that_are_not_json_bundles",
    "spec-12": f"ClaimFirst checked: {P}::test_inferno_negatives_are_4xx[invalid_first_entry_response_bundle.json]",
    "spec-13": f"{P}::test_inferno_negatives_are_4xx[missing_referenced_resource_request_bundle.json]",
    "spec-14": f"Duplicate fullUrl refused: {PP}",
    "spec-15": "Client-side (SHOULD)",
    "spec-16": f"{PP} (RESTful and urn:uuid fullUrls: standard vs expedited fixtures)",
    "spec-17": f"Reused Bundle.identifier with another body → 409: {P}::test_same_bundle_identifier_replays_and_another_body_is_409",
    "spec-18": f"{PP}",
    "spec-19": "Base R4 structure validated; US Core profile rules not validated",
    "spec-20": f"QuestionnaireResponse/DocumentReference read via supportingInfo and entries: {PP}",
    "spec-21": f"DocumentReference attachments mapped: {PP}",
    "spec-22": "Not checked (sequence uniqueness is not used by the engine)",
    "spec-23": "Partially: base R4 + PAS required elements/invariants (fhir.resources.R4B + fhirpathpy)",
    "spec-24": "Informative",
    "spec-25": f"Unsupported elements ignored: {P}::test_every_fixture_gets_a_clean_answer_never_5xx",
    "spec-26": f"The whole Bundle is stored for the reviewer: {P}::test_submit_affirms_with_utn_and_keeps_the_bundle",
    "spec-27": NA_X12,
    "spec-28": NA_X12,
    "spec-29": NA_X12,
    "spec-30": f"ClaimResponse first: {P} (assert_valid_response on every 200)",
    "spec-31": f"{R}",
    "spec-32": f"{R}",
    "spec-33": f"Echoed resources keep fullUrl/ids: validate_response_bundle(request_bundle=…) in {P}",
    "spec-34": f"{R} (itemSequence echoes Claim.item.sequence)",
    "spec-36": "N/A: WISeR affirms or non-affirms as requested; no modified (A6) authorizations",
    "spec-37": "N/A: no modified authorizations (see spec-36)",
    "spec-38": f"{P}::test_every_fixture_gets_a_clean_answer_never_5xx",
    "spec-39": f"4xx with one OperationOutcome naming elements; 5xx never carries one: {P}",
    "spec-41": "OperationOutcome diagnostics are technical (FHIRPath); shown to staff, not patients",
    "spec-43": f"'not-applicable' = any service in $inquire: {P}::test_ig_inquiry_examples_answer_parameters",
    "spec-44": f"Inquiry ClaimResponse.request carries the Claim identifier: {P}::test_unmet_criteria_pend_a4_then_clinician_non_affirms_a3_citing_criteria",
    "spec-45": "Not done: the Claim is not returned in inquiry responses",
    "spec-46": f"Current state of every item: {P}::test_unmet_criteria_pend_a4_then_clinician_non_affirms_a3_citing_criteria",
    "spec-47": "Replaced requests are followed to their successor (service._current_version); "
    f"{P}::test_update_of_a_pended_request_replaces_it",
    "spec-48": "As spec-47",
    "spec-49": "Not used: nothing is withheld inside the caller's scope",
    "spec-50": "Not used (see spec-49)",
    "spec-51": f"{E}::test_pended_then_reviewer_affirms_is_notified",
    "spec-53": "Scope is the submitting organization (API key); other-party NPI matching not implemented",
    "spec-54": f"R4 backport Subscription/notification shapes: {S}",
    "spec-55": f"{P}::test_metadata_lists_operations",
    "spec-56": f"Only rest-hook: {S}::test_inferno_bad_subscriptions_are_refused",
    "spec-57": f"{S}::test_create_read_search_delete (PAS and Inferno examples accepted)",
    "spec-58": f"org-identifier and orgIdentifier: {S}::test_both_filter_spellings",
    "spec-59": f"Subscriptions belong to the key's organization: {S}::test_create_read_search_delete, test_only_providers_manage_subscriptions",
    "spec-60": f"Notification on each decision after a pend: {E}::test_pended_then_reviewer_affirms_is_notified, test_deemed_approval_is_notified",
    "spec-61": f"Full PAS response Bundle in the notification: {S}::test_decision_enqueues_in_its_transaction_and_delivery_is_signed",
    "spec-62": f"id-only refused: {S}::test_inferno_bad_subscriptions_are_refused[PAS_Subscription_example_id_only.json]",
    "spec-64": f"Updates of affirmed requests refused (422): {P}::test_update_of_an_affirmed_request_is_refused",
    "spec-65": f"{P}::test_update_of_a_pended_request_replaces_it (Claim.related prior)",
    "spec-66": f"{PP}",
    "spec-67": f"{PP}",
    "spec-69": f"Cancel via infoCancelled / certificationType 3: {P}::test_cancel_withdraws_the_request",
    "spec-70": f"{P}::test_cancel_withdraws_the_request",
    "spec-71": "infoChanged read (parse_update_or_cancel); the update is re-reviewed in full",
    "spec-72": "As spec-71",
    "spec-73": "Requests are never deleted (audit-chained storage); $inquire finds them at any age",
    "use-1": f"{P}",
    "use-2": NA_X12,
    "use-3": NA_X12,
    "use-6": "HIPAA: deployment concern; least data, audit log",
    # --- CRD (server)
    "billopt-3": "Not used: billing-options codes are not read (the order code is assessed)",
    "crd:conf-2": "US Core versions: only the elements used (code, address, identifier) are read; version-agnostic",
    "crd:conf-4": f"{C}::test_wiser_service_in_tx_needs_auth_with_policy_and_questionnaire",
    "crd:conf-5": f"{C}::test_wiser_service_in_tx_needs_auth_with_policy_and_questionnaire",
    "crd:conf-13": "wiserpa-specific reasons use their own code system (crd-reason)",
    "dev-1": f"davinci-crd.version in discovery: {C}::test_discovery_lists_the_hooks",
    "dev-2": "One version (2.2.1)",
    "dev-4": "Configuration option 'coverage' has code, type, name, description",
    "dev-5": "Only coverage-information is returned; its option is declared",
    "dev-6": "Configuration is ignored gracefully",
    "dev-7": "'coverage' is a valid JSON property name",
    "dev-8": "Single option",
    "dev-14": "Not implemented: coverage information is always returned",
    "dev-17": f"Unknown configuration ignored: {C}::test_published_hook_requests_are_answered",
    "dev-20": "N/A: questionnaires are referenced by canonical, not sent in cards",
    "dev-24": "N/A: no cards",
    "found-2": f"In-process, far under 5 s; fetch budget 3 s: {C}::test_wiser_service_in_tx_needs_auth_with_policy_and_questionnaire",
    "found-9": "Same catalog/exemption/gold-card rules as PAS submission (one engine)",
    "found-11": "Not implemented: CRD assertions are not stored (coverage-assertion-id is deterministic)",
    "found-13": "Only systemActions, no cards",
    "found-14": NA_DISCOVERY,
    "found-15": "One CRD endpoint (/cds-services)",
    "found-24": f"Prefetch honoured: {C}::test_wiser_service_in_tx_needs_auth_with_policy_and_questionnaire",
    "found-29": f"{C}::test_fetches_missing_prefetch_from_the_hooks_fhir_server_only",
    "found-33": f"{C}::test_published_hook_requests_are_answered",
    "found-34": f"Degrades to the organization's state when the EHR is slow: {C}::test_a_slow_ehr_server_does_not_break_the_hook",
    "found-37": "Not implemented: hook calls are not logged beyond the access log",
    "found-38": "Organizational",
    "hook-4": f"Services for order-sign/select/dispatch, appointment-book, encounter-start: {C}::test_discovery_lists_the_hooks",
    "hook-9": f"{C}::test_bad_hook_calls",
    "hook-10": f"Errors are OperationOutcomes: {C}::test_bad_hook_calls",
    "hook-13": f"400 malformed, 404 unknown service, 412 orders not fetchable: {C}::test_bad_hook_calls",
    "hook-16": f"{C}::test_published_hook_requests_are_answered",
    "hook-23": f"{C}::test_published_hook_requests_are_answered (Inferno's older order-dispatch names)",
    "hook-26": f"{C}",
    "hook-33": f"{C}",
    "hook-39": f"{C}",
    "impl-3": "Single component",
    "resp-3": "N/A: no cards or suggestions",
    "resp-4": "N/A: no cards",
    "resp-5": "N/A: no cards",
    "resp-13": f"{C} (cards: [], systemActions)",
    "resp-14": f"{C}",
    "resp-18": "N/A: no cards",
    "resp-19": "N/A: no cards",
    "resp-22": "N/A: not used",
    "resp-24": "N/A: not used",
    "resp-26": f"{C}::test_published_hook_requests_are_answered",
    "resp-28": f"{C}",
    "resp-29": f"One systemAction per order: {C}::test_out_of_scope_is_no_auth_with_the_reason",
    "resp-30": "Qualifiers as detail 'instructions'",
    "resp-32": "Single coverage-information per order (replaced, not duplicated)",
    "resp-43": "indeterminate + technical when the EHR fails and nothing else is known (crd._coverage_information)",
    "resp-44": "Not implemented: Medicare enrolment is not checked (no member lookup)",
    "resp-45": "Not implemented (see resp-44)",
    "resp-47": f"Updated order parses with R4B, only the extension changes: {C}::test_wiser_service_in_tx_needs_auth_with_policy_and_questionnaire",
    "resp-48": f"{C}",
    "resp-52": f"{C}",
    "resp-55": "N/A: not used",
    "resp-56": "N/A: not used",
    "resp-57": "N/A: not used",
    "resp-58": "N/A: not used",
    "resp-62": "N/A: not used",
    "resp-65": "N/A: not used",
    "resp-71": "N/A: not used",
    "resp-72": "N/A: not used",
    "sec-1": "Bearer keys, audit; deployment TLS",
    "sec-2": "TLS at the deployment edge",
    "sec-5": "Hook data is not stored",
    "sec-6": "Hook data is not stored (read-only transaction, rolled back)",
    "billopt-2": "billing-options is never required",
    "conf-7": "Only Patient/Coverage/orders/Practitioner are read, all optional",
    "conf-8": f"Missing optional data degrades the answer, never fails it: {C}::test_a_slow_ehr_server_does_not_break_the_hook",
    "dev-15": "Configuration is never required",
    "found-32": "412 only for order-dispatch when the orders were neither sent nor fetchable (crd.handle)",
    "hook-19": f"order-select / encounter-start carry no doc-needed or questionnaire: {C}::test_unchanged_coverage_information_is_not_sent_again_and_supporting_hooks_ask_no_documents",
    "hook-22": "As conf-7",
    "resp-17": "N/A: no cards",
    "resp-23": "N/A: no cards",
    "resp-25": f"Coverage information only as systemActions (cards: []): {C}",
    "resp-35": f"{C}::test_unchanged_coverage_information_is_not_sent_again_and_supporting_hooks_ask_no_documents",
    "resp-37": f"{C}::test_wiser_service_in_tx_needs_auth_with_policy_and_questionnaire (order unchanged but the extension)",
    "resp-38": "The DTR questionnaire canonical is included with doc-needed",
    "resp-59": "N/A: not used (DTR is used instead)",
    "resp-69": "N/A: not used",
    "found-5": f"{C}::test_fetches_missing_prefetch_from_the_hooks_fhir_server_only",
    "ops-1": f"encounter-start and order-select supported: {C}::test_discovery_lists_the_hooks",
    "resp-1": "N/A: no cards",
    "resp-2": "N/A: no cards",
    "resp-12": "No cards duplicate the systemActions",
    "resp-27": "Supported for order-select and encounter-start",
}
# SHOULD/MAY statements not listed above are not claimed.
DEFAULT_SOFT = "SHOULD/MAY: not claimed"


def _rows(ig: str, actor_prefix: str) -> list[tuple[str, str, str, str]]:
    data = json.loads((REQ / ig / "requirements" / "Requirements-fromNarrative.json").read_text())
    rows = []
    for st in data["statement"]:
        actors = [
            e.get("valueId", "") for e in st.get("extension", []) if e["url"].endswith("statementactor")
        ]
        if not any(a.startswith(actor_prefix) for a in actors):
            continue
        text = " ".join(st["requirement"].replace("**", "").split())
        text = text if len(text) <= 140 else text[:137] + "…"
        key = st["key"]
        level = "/".join(st.get("conformance", []))
        soft = level and "SHALL" not in level
        cover = (
            COVERAGE.get(f"{ig}:{key}") or COVERAGE.get(key) or (DEFAULT_SOFT if soft else "not yet mapped")
        )
        rows.append(
            (
                key,
                "/".join(st.get("conformance", [])) or "—",
                text.replace("|", "\\|"),
                cover.replace("|", "\\|"),
            )
        )
    return rows


def main() -> None:
    """Print the two tables as Markdown."""
    for ig, actor, title in (
        ("pas", "payer", "PAS 2.2.1 (payer / intermediary)"),
        ("crd", "crd-server", "CRD 2.2.1 (CRD server)"),
    ):
        rows = _rows(ig, actor)
        print(f"### {title}: {len(rows)} statements\n")
        print("| key | level | requirement | covered by / why not |")
        print("|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()


if __name__ == "__main__":
    main()
