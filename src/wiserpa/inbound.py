"""The base of every inbound API shape: unknown fields are an error, strings trimmed, no NUL characters."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["Strict"]

_NUL_MESSAGE = "must not contain the NUL character (U+0000)"

# Set while an enclosing shape validates a body it has already scanned: its nested shapes need not scan again.
_SCANNED: ContextVar[bool] = ContextVar("wiserpa_inbound_scanned", default=False)


def _has_nul(value: Any) -> bool:
    """True when a string in `value` (or in its plain lists and dicts, keys included) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _may_hold_nul(data: Any) -> bool:
    """False when `data` surely holds no NUL character; True when it does or may.

    JSON text escapes U+0000 as the six characters \\u0000, so one orjson encoding (about 1 us for a submission)
    answers for the whole body; walking it in Python took about 10 us. Text that spells out \\u0000 itself, or a
    body orjson cannot encode, answers True and is then checked exactly.
    """
    try:
        return b"\\u0000" in orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return True


def _nul_fields(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(path, value) of each value holding a NUL, descending through nested shapes wherever they sit (a field, a
    list, a dict) down to the field of the shape that holds it; a plain value such as the clinical facts dict is
    named by its field."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _nul_fields(getattr(value, name), (*path, name))
    elif isinstance(value, list | tuple) and any(isinstance(v, BaseModel) for v in value):
        for i, item in enumerate(value):
            yield from _nul_fields(item, (*path, i))
    elif isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values()):
        for key, item in value.items():
            yield from _nul_fields(item, (*path, key))
    elif _has_nul(value):
        yield path, value


class Strict(BaseModel):
    """Base for inbound shapes: unknown fields are an error, strings are trimmed and may not hold NUL."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="wrap")
    @classmethod
    def _no_nul(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # PostgreSQL text and JSONB cannot store U+0000: refuse it here, naming the field, not with a 500 later.
        # The outermost shape checks the whole body once; only a body that may hold one is checked field by field.
        if _SCANNED.get():
            return handler(data)
        token = _SCANNED.set(True)
        try:
            model = handler(data)
        finally:
            _SCANNED.reset(token)
        if not _may_hold_nul(data):
            return model
        errors = [
            InitErrorDetails(type=PydanticCustomError("nul_character", _NUL_MESSAGE), loc=loc, input=value)
            for loc, value in _nul_fields(model)
        ]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return model
