"""Row ids as they arrive in text (form fields, headers, query values): ASCII digits within 64 bits."""

from __future__ import annotations

import re

# Ids are 64-bit signed integers in both databases; a larger number can name nothing.
MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(value: object) -> int | None:
    """The integer a text names, if it is ASCII digits within 64 bits; else None.

    Not `str.isdigit`: it also accepts '²' or '٣', which `int` refuses or reads, and a long digit string
    overflows the database's integer — both used to answer 500 instead of a 4xx.
    """
    text = str(value if value is not None else "").strip()
    if not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if number <= MAX_ID else None
