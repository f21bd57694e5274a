"""Errors the services raise; the HTTP layer turns them into clear 4xx JSON naming the field."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field, addressed by a dotted path such as `beneficiary.mbi`."""

    field: str
    message: str


@dataclass
class ApiError(Exception):
    """Base of all expected errors: a status, a machine code, a sentence and the fields at fault."""

    message: str
    fields: list[FieldError] = field(default_factory=list)
    status_code: int = 400
    code: str = "bad_request"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_dict(self) -> dict[str, object]:
        """The JSON error body."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "fields": [{"field": f.field, "message": f.message} for f in self.fields],
            }
        }


class NotFound(ApiError):
    """The object does not exist or is outside the caller's scope (the two are indistinguishable)."""

    def __init__(self, message: str = "not found") -> None:
        super().__init__(message, [], 404, "not_found")


class Forbidden(ApiError):
    """The caller's role may not do this."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 403, "forbidden")


class Conflict(ApiError):
    """The request conflicts with the current state (a race lost, a reused idempotency key)."""

    def __init__(self, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message, fields or [], 409, "conflict")


class Invalid(ApiError):
    """The input is well-formed JSON but breaks a rule; every offending field is named."""

    def __init__(self, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message, fields or [], 422, "invalid")


def field_path(loc: tuple[object, ...] | list[object]) -> str:
    """A validation error's location as the API names fields: ('body', 'lines', 0, 'code') -> 'lines[0].code'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def invalid(field_name: str, message: str) -> Invalid:
    """Shorthand for a one-field validation error."""
    return Invalid(f"{field_name}: {message}", [FieldError(field_name, message)])
