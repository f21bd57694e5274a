"""Provider pages: the request form with its documentation checklist, the request list and request page."""

from __future__ import annotations

import datetime as dt
import math
import secrets
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import ApiError, FieldError, Invalid
from wiserpa.http import IdPath, RuntimeDep, SessionDep
from wiserpa.ids import parse_id
from wiserpa.policy import views as policy_views
from wiserpa.requests import service as requests
from wiserpa.requests.schemas import WITHDRAW_REASON_MAX, SubmitRequestIn
from wiserpa.requests.status import OPEN, TRANSITIONS, Status
from wiserpa.reviews import workflow
from wiserpa.runtime import Runtime
from wiserpa.store.idempotency import IdempotencyConflict, Outcome, fingerprint, run_once
from wiserpa.web.auth import WebPrincipal, csrf_form, page_roles
from wiserpa.web.views import page_router, redirect, register_nav, render

router = page_router()

register_nav(
    "New request",
    "/requests/new",
    "Submit a prior-authorization request against the checklist Medicare's own coverage policy sets.",
    roles=(Role.PROVIDER,),
    order=10,
)
register_nav(
    "Requests",
    "/requests",
    "Requests in your scope: status, due time, decision and reasons with citations.",
    roles=(Role.PROVIDER, Role.OVERSIGHT, Role.ADMIN),
    order=20,
)

ProviderPrincipal = Annotated[Principal, Depends(page_roles(Role.PROVIDER))]
FACT_PREFIX = "clinical_facts."
MAX_FORM_TOKEN = 200  # the idempotency store's key length


# ---------------------------------------------------------------------------------------------- checklist


def code_groups(rt: Runtime) -> list[dict[str, Any]]:
    """Active categories with their primary and add-on codes, for the grouped code select."""
    return [
        {
            "key": c.key,
            "title": c.title,
            "codes": [x for x in c.codes if x not in c.add_on_codes],
            "add_on": list(c.add_on_codes),
        }
        for c in rt.catalog.categories.values()
        if c.active
    ]


def checklist(
    rt: Runtime, *, code: str, state: str, date_of_service: dt.date, place_of_service: str
) -> dict[str, Any]:
    """The documentation checklist, from the same function as GET /api/v1/requirements, plus confidence."""
    answer = policy_views.requirements(
        rt, code=code, state=state, date_of_service=date_of_service, place_of_service=place_of_service
    )
    policy = rt.criteria.for_policy(answer["policy_id"]) if answer["policy_id"] else None
    confidence: dict[str, str] = {}
    if policy is not None:
        confidence.update({c.id: c.confidence for c in policy.criteria})
        confidence.update({f.id: f.confidence for f in policy.frequency_limits})
    for item in answer["items"]:
        levels = [confidence.get(c["criterion_id"], "") for c in item["citations"] if "criterion_id" in c]
        # The weakest confidence of the criteria that need this fact is the one a provider should see.
        item["confidence"] = next(
            (lv for lv in levels if lv and lv != "confirmed"), levels[0] if levels else None
        )
    answer["attribution_confidence"] = policy.attribution_confidence if policy else None
    return answer


# ---------------------------------------------------------------------------------------------- form parsing


def _parse_fact(item: dict[str, Any], raw: str) -> tuple[Any, str | None]:
    """A form string as the fact's typed value (None = not documented), or an error message."""
    raw = raw.strip()
    if raw == "":
        return None, None
    t = item["type"]
    if t == "boolean":
        if raw in ("true", "false"):
            return raw == "true", None
        return None, "choose yes or no"
    if t in ("number", "integer"):
        try:
            value = float(raw)
        except ValueError:
            return None, "enter a number"
        if not math.isfinite(value):
            return None, "enter a number"
        if t == "integer" or value.is_integer():
            if not value.is_integer():
                return None, "enter a whole number"
            return int(value), None
        return value, None
    if t == "codes":
        return [c.strip().upper() for c in raw.replace(";", ",").split(",") if c.strip()], None
    return raw, None  # enum, date and string: the service checks values and formats


def _codes(raw: str) -> list[str]:
    return [c.strip().upper() for c in raw.replace(";", ",").replace(" ", ",").split(",") if c.strip()]


def _field_for(path: str, *, additional: bool = False) -> str:
    """Where a service error about `path` is shown on the form (`additional`: add-on codes were typed)."""
    if path.startswith(FACT_PREFIX):
        return path
    if path == "lines":
        # About the set of codes (too many, mixed services): shown where the extra codes were typed.
        return "additional_codes" if additional else "code"
    if path.startswith("lines[0]"):
        return "code"
    if path.startswith("lines"):
        return "additional_codes"
    if path.startswith("diagnosis_codes"):
        return "diagnosis_codes"
    return {"provider.npi": "provider_npi", "beneficiary.mbi": "beneficiary_mbi"}.get(path, path)


def _pydantic_fields(exc: ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        path = ""
        for p in parts:
            path += f"[{p}]" if p.isdigit() else (f".{p}" if path else p)
        out.append(FieldError(path or "body", str(err["msg"]).removeprefix("Value error, ")))
    return out


def _values(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


NUL_MESSAGE = "remove the NUL character (pasted from another program?)"


def _nul_errors(values: dict[str, str]) -> dict[str, str]:
    """Fields holding a NUL character, which no database text column stores (PostgreSQL refuses it)."""
    return {("form" if k == "idempotency_key" else k): NUL_MESSAGE for k, v in values.items() if "\x00" in v}


def _defaults(rt: Runtime) -> dict[str, str]:
    state = sorted(rt.catalog.states)[0] if rt.catalog.states else ""
    today = rt.clock.now().date()
    return {
        "state": state,
        "code": "",
        "date_of_service": (max(today, rt.catalog.services_from) + dt.timedelta(days=14)).isoformat(),
        "place_of_service": "22",
        "urgency": "standard",
    }


def _render_form(
    request: Request,
    rt: Runtime,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    errors = dict(errors or {})
    checklist_data = None
    if values.get("code") and values.get("state") and values.get("date_of_service"):
        try:
            dos = dt.date.fromisoformat(values["date_of_service"])
        except ValueError:
            errors.setdefault("date_of_service", "enter a date (YYYY-MM-DD)")
        else:
            try:
                checklist_data = checklist(
                    rt,
                    code=values["code"],
                    state=values["state"],
                    date_of_service=dos,
                    place_of_service=values.get("place_of_service") or "22",
                )
            except Invalid as exc:
                errors.setdefault("code", exc.message)
    values.setdefault("idempotency_key", secrets.token_urlsafe(16))
    return render(
        request,
        "requests/new.html",
        status_code=status_code,
        values=values,
        errors=errors,
        checklist=checklist_data,
        groups=code_groups(rt),
        states=sorted(rt.catalog.states.values(), key=lambda s: s.code),
        places=rt.catalog.places_of_service,
    )


@router.get("/requests/new", response_class=HTMLResponse)
def new_request(
    request: Request,
    rt: RuntimeDep,
    principal: ProviderPrincipal,
    state: Annotated[str | None, Query(max_length=2)] = None,
    code: Annotated[str | None, Query(max_length=5)] = None,
    date_of_service: Annotated[str | None, Query(max_length=10)] = None,
    place_of_service: Annotated[str | None, Query(max_length=2)] = None,
) -> HTMLResponse:
    """The request form; with state/code chosen it shows the policy's checklist as typed fields."""
    values = _defaults(rt)
    for name, value in (
        ("state", state),
        ("code", code),
        ("date_of_service", date_of_service),
        ("place_of_service", place_of_service),
    ):
        if value:
            values[name] = value.upper() if name in ("state", "code") else value
    return _render_form(request, rt, values)


@router.post("/requests/new", response_class=HTMLResponse)
def post_request(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ProviderPrincipal,
    form: Annotated[FormData, Depends(csrf_form("request-new"))],
) -> Response:
    """'Show checklist' re-renders with the checklist; 'Submit' submits through requests.service.submit."""
    values = _values(form)
    values["state"] = values.get("state", "").upper()
    values["code"] = values.get("code", "").upper()
    if values.get("action") != "submit":
        return _render_form(request, rt, values)
    if len(values.get("idempotency_key", "")) > MAX_FORM_TOKEN:
        # A tampered token the store cannot hold: give a fresh one rather than fail on save.
        values.pop("idempotency_key")
        return _render_form(
            request, rt, values, {"form": "This form's token is not valid; review it and submit again."}, 422
        )
    body, errors = _submission(rt, values)
    errors = {**errors, **_nul_errors(values)}
    if errors:
        return _render_form(request, rt, values, errors, 422)
    extra = len(body["lines"]) > 1
    try:
        data = SubmitRequestIn.model_validate(body)
    except ValidationError as exc:
        return _render_form(
            request,
            rt,
            values,
            {_field_for(f.field, additional=extra): f.message for f in _pydantic_fields(exc)},
            422,
        )

    def work() -> Outcome:
        req = requests.submit(session, rt, principal=principal, data=data, raw=body)
        return Outcome(201, {"id": req.id})

    try:
        # A double click re-sends the same form token: the first submission is answered again.
        outcome = run_once(
            session,
            scope=f"org:{principal.organization_id}:web-submit",
            key=values.get("idempotency_key") or None,
            fingerprint_=fingerprint("POST", "/requests/new", body),
            now=rt.clock.now(),
            work=work,
        )
    except Invalid as exc:
        session.rollback()
        found = {_field_for(f.field, additional=extra): f.message for f in exc.fields} or {
            "form": exc.message
        }
        return _render_form(request, rt, values, found, 422)
    except IdempotencyConflict:
        session.rollback()
        values.pop("idempotency_key", None)
        return _render_form(
            request,
            rt,
            values,
            {"form": "This form was already submitted with other values; review it and submit again."},
            409,
        )
    return redirect(f"/requests/{outcome.body['id']}", notice="Request submitted.")


def _submission(rt: Runtime, values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON body the API would receive, built from the form; typed-fact errors by field."""
    errors: dict[str, str] = {}
    for name, label in (
        ("state", "choose a state"),
        ("code", "choose a service code"),
        ("date_of_service", "enter the date of service"),
        ("place_of_service", "choose the place of service"),
        ("provider_npi", "enter the requesting clinician's NPI"),
        ("beneficiary_mbi", "enter the beneficiary's MBI"),
        ("diagnosis_codes", "enter at least one ICD-10-CM code"),
    ):
        if not values.get(name, "").strip():
            errors[name] = label
    facts: dict[str, Any] = {}
    if not errors:
        try:
            info = checklist(
                rt,
                code=values["code"],
                state=values["state"],
                date_of_service=dt.date.fromisoformat(values["date_of_service"]),
                place_of_service=values["place_of_service"],
            )
        except (Invalid, ValueError):
            info = {"items": []}  # the service names the field at fault on submit
        for item in info["items"]:
            if item["kind"] != "fact":
                continue
            value, err = _parse_fact(item, values.get(item["field"], ""))
            if err:
                errors[item["field"]] = err
            elif value is not None:
                facts[item["name"]] = value
    lines = [{"code": values.get("code", "")}] + [
        {"code": c} for c in _codes(values.get("additional_codes", ""))
    ]
    body: dict[str, Any] = {
        "state": values.get("state", ""),
        "provider": {"npi": values.get("provider_npi", "").strip()},
        "beneficiary": {"mbi": values.get("beneficiary_mbi", "").strip()},
        "lines": lines,
        "diagnosis_codes": _codes(values.get("diagnosis_codes", "")),
        "place_of_service": values.get("place_of_service", ""),
        "date_of_service": values.get("date_of_service", ""),
        "urgency": values.get("urgency") or "standard",
        "time_sensitive_attestation": values.get("time_sensitive_attestation") == "on",
        "clinical_facts": facts,
    }
    if values.get("notes", "").strip():
        body["notes"] = values["notes"].strip()
    return body, errors


# ---------------------------------------------------------------------------------------------- list and page


@router.get("/requests", response_class=HTMLResponse)
def list_page(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    principal: WebPrincipal,
    status: Annotated[Status | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HTMLResponse:
    """Requests in the caller's scope, newest first."""
    page = requests.list_requests(
        session, rt, principal=principal, status=status.value if status else None, limit=50, offset=offset
    )
    session.commit()
    now = rt.clock.now()
    items = [requests.request_view(rt, r, now=now) for r in page.items]
    return render(
        request,
        "requests/list.html",
        items=items,
        total=page.total,
        offset=offset,
        limit=50,
        status=status.value if status else "",
        statuses=[s.value for s in Status],
    )


def _reasons(view: dict[str, Any]) -> list[dict[str, Any]]:
    effective = [d for d in view["decisions"] if d["effective"] and d["kind"] == "clinician_non_affirm"]
    return effective[-1]["reasons"] if effective else []


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_page(
    request: Request, request_id: IdPath, session: SessionDep, rt: RuntimeDep, principal: WebPrincipal
) -> HTMLResponse:
    """One request: status, UTN, due time, decision, reasons with citations, criteria, history, workflow."""
    req = requests.get(session, rt, principal=principal, request_id=request_id)
    view = requests.request_view(rt, req, now=rt.clock.now())
    wf = workflow.workflow_view(session, req)
    session.commit()
    fields: list[dict[str, Any]] = []
    if principal.role is Role.PROVIDER and view["status"] == Status.NON_AFFIRMED.value and req.policy_id:
        fields = _resubmit_fields(rt, req)
    return render(
        request,
        "requests/detail.html",
        r=view,
        reasons=_reasons(view),
        workflow=wf,
        is_open=view["status"] in {s.value for s in OPEN},
        resubmit_fields=fields,
        can_resubmit=principal.role is Role.PROVIDER
        and view["status"] in (Status.NON_AFFIRMED.value, Status.WITHDRAWN.value),
        can_withdraw=_can_withdraw(principal, view["status"]),
        errors={},
        values={},
    )


def _can_withdraw(principal: Principal, status: str) -> bool:
    """Whether the page offers the practice a withdrawal: any status that may still become withdrawn."""
    return principal.role is Role.PROVIDER and Status.WITHDRAWN in TRANSITIONS[Status(status)]


def _resubmit_fields(rt: Runtime, req: Any) -> list[dict[str, Any]]:
    policy = rt.criteria.for_policy(req.policy_id)
    if policy is None:
        return []
    from wiserpa.policy.criteria import requirements as policy_requirements

    return [i for i in policy_requirements(policy) if i["kind"] == "fact"]


@router.post("/requests/{request_id}/resubmit", response_class=HTMLResponse)
def resubmit_page(
    request: Request,
    request_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ProviderPrincipal,
    form: Annotated[FormData, Depends(csrf_form("request-resubmit"))],
) -> Response:
    """Resubmit with added or corrected facts: the pipeline runs again and the new request links back."""
    req = requests.get(session, rt, principal=principal, request_id=request_id)
    values = _values(form)
    errors: dict[str, str] = {}
    facts: dict[str, Any] = {}
    for item in _resubmit_fields(rt, req) if req.policy_id else []:
        value, err = _parse_fact(item, values.get(item["field"], ""))
        if err:
            errors[item["field"]] = err
        elif value is not None:
            facts[item["name"]] = value
    errors.update(_nul_errors(values))
    changes: dict[str, Any] = {"clinical_facts": facts}
    if values.get("notes", "").strip():
        changes["notes"] = values["notes"].strip()
    if not errors:
        try:
            new = requests.resubmit(session, rt, principal=principal, request_id=request_id, changes=changes)
            session.commit()
            return redirect(f"/requests/{new.id}", notice=f"Resubmitted as request {new.id}.")
        except Invalid as exc:
            session.rollback()
            errors = {f.field: f.message for f in exc.fields} or {"form": exc.message}
    session.rollback()
    req = requests.get(session, rt, principal=principal, request_id=request_id)
    view = requests.request_view(rt, req, now=rt.clock.now())
    wf = workflow.workflow_view(session, req)
    session.commit()
    # The resubmit form shows messages only beside fact fields: any other (e.g. notes) goes in the alert.
    shown = {item["field"] for item in _resubmit_fields(rt, req)} if req.policy_id else set()
    elsewhere = [f"{k}: {v}" for k, v in errors.items() if k != "form" and k not in shown]
    if elsewhere:
        errors["form"] = "; ".join([errors["form"], *elsewhere] if "form" in errors else elsewhere)
    return render(
        request,
        "requests/detail.html",
        status_code=422,
        r=view,
        reasons=_reasons(view),
        workflow=wf,
        is_open=False,
        resubmit_fields=_resubmit_fields(rt, req),
        can_resubmit=True,
        errors=errors,
        values=values,
    )


@router.post("/requests/{request_id}/withdraw", response_class=HTMLResponse)
def withdraw_page(
    request: Request,
    request_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ProviderPrincipal,
    form: Annotated[FormData, Depends(csrf_form("request-withdraw"))],
) -> Response:
    """The practice withdraws its request, against the version its page showed (as If-Match does)."""
    reason = str(form.get("reason") or "").strip()
    raw_version = str(form.get("version") or "")
    version = parse_id(raw_version)
    back = f"/requests/{request_id}"
    if "\x00" in reason:
        return redirect(back, notice=f"Not withdrawn: reason: {NUL_MESSAGE}.")
    if len(reason) > WITHDRAW_REASON_MAX:
        return redirect(back, notice=f"Not withdrawn: reason: at most {WITHDRAW_REASON_MAX:,} characters.")
    if raw_version and version is None:
        return redirect(back, notice="Not withdrawn: the form was altered; reload the page.")
    try:
        requests.withdraw(
            session, rt, principal=principal, request_id=request_id, reason=reason or None,
            expected_version=version,
        )  # fmt: skip
        session.commit()
    except ApiError as exc:
        session.rollback()
        return redirect(back, notice=f"Not withdrawn: {exc.message}")
    return redirect(back, notice=f"Request {request_id} withdrawn.")


@router.post("/requests/{request_id}/information/{info_id}", response_class=HTMLResponse)
def answer_information(
    request: Request,
    request_id: IdPath,
    info_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ProviderPrincipal,
    form: Annotated[FormData, Depends(csrf_form("request-info-answer"))],
) -> Response:
    """The practice answers a request for information with a note."""
    note = str(form.get("note") or "").strip()[:4000]
    if "\x00" in note:
        return redirect(f"/requests/{request_id}", notice=f"Not sent: note: {NUL_MESSAGE}.")
    try:
        workflow.respond_information(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            information_request_id=info_id,
            note=note or None,
        )
        session.commit()
    except ApiError as exc:
        session.rollback()
        return redirect(f"/requests/{request_id}", notice=f"Not sent: {exc.message}")
    return redirect(f"/requests/{request_id}", notice="Answer sent to the reviewer.")


@router.post("/requests/{request_id}/peer-to-peer", response_class=HTMLResponse)
def ask_peer_to_peer(
    request: Request,
    request_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: WebPrincipal,
    form: Annotated[FormData, Depends(csrf_form("request-p2p"))],
) -> Response:
    """The provider (or reviewer) asks for a peer-to-peer conversation."""
    note = str(form.get("note") or "").strip()[:4000]
    back = "/review/" if principal.role is Role.REVIEWER else "/requests/"
    if "\x00" in note:
        return redirect(f"{back}{request_id}", notice=f"Not requested: note: {NUL_MESSAGE}.")
    try:
        workflow.request_peer_to_peer(
            session, rt, principal=principal, request_id=request_id, note=note or None
        )
        session.commit()
    except ApiError as exc:
        session.rollback()
        return redirect(f"{back}{request_id}", notice=f"Not requested: {exc.message}")
    return redirect(f"{back}{request_id}", notice="Peer-to-peer requested.")
