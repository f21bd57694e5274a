"""The base of every inbound API shape: unknown fields are an error, strings trimmed, no NUL characters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["Strict"]


def _has_nul(value: Any) -> bool:
    """True when a string in `value` (or in its plain lists and dicts, keys included) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class Strict(BaseModel):
    """Base for inbound shapes: unknown fields are an error, strings are trimmed and may not hold NUL."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text and JSONB cannot store U+0000: refuse it here, naming the field, not with a 500 later.
        # Nested models were checked by their own validator, so only plain values are walked.
        if _has_nul(value):
            raise ValueError("must not contain the NUL character (U+0000)")
        return value
