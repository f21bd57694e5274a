"""Unique Tracking Numbers (UTNs) for WISeR decisions.

Format (source S37, Noridian "UTN Field Requirements for Prior Authorization"): 14 characters —
positions 1–2 alphanumeric, position 3 ``A`` or ``H``, positions 4–14 eleven digits.

How this project fills the fields:

- Positions 1–2: the participant's two-character code from the catalog (``StateInfo.utn_prefix``). These codes
  are project codes, not CMS-assigned ones.
- Position 3: ``A`` when the service is billed on an institutional (Part A) claim — the hospital
  outpatient settings, place of service 19 and 22 — and ``H`` otherwise (office, home, ASC).
  ASSUMPTION: S37 only fixes the format (``A`` or ``H``); this letter mapping is the project's
  reading, not a published rule.
- Positions 4–14: a zero-padded serial number, unique per participant prefix.
"""

from __future__ import annotations

import re

__all__ = ["UTN_LENGTH", "is_valid_utn", "make_utn", "utn_part_for_place_of_service"]

UTN_LENGTH = 14
_MAX_SERIAL = 10**11 - 1
_UTN_RE = re.compile(r"^[A-Z0-9]{2}[AH][0-9]{11}$")
_PREFIX_RE = re.compile(r"^[A-Z0-9]{2}$")
# Hospital outpatient settings bill on the institutional claim (assumption; see the module docstring).
_INSTITUTIONAL_POS = frozenset({"19", "22"})


def utn_part_for_place_of_service(place_of_service: str) -> str:
    """Position-3 letter for a place of service: 'A' for hospital outpatient (POS 19, 22), else 'H'."""
    return "A" if place_of_service.strip().zfill(2) in _INSTITUTIONAL_POS else "H"


def make_utn(*, prefix2: str, part: str, serial: int) -> str:
    """Build a 14-character UTN from a 2-character prefix, the 'A'/'H' letter and a serial (max 11 digits)."""
    prefix = prefix2.strip().upper()
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"UTN prefix must be two letters or digits, got {prefix2!r}")
    letter = part.strip().upper()
    if letter not in ("A", "H"):
        raise ValueError(f"UTN position 3 must be 'A' or 'H', got {part!r}")
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 0:
        raise ValueError(f"UTN serial must be a non-negative integer, got {serial!r}")
    if serial > _MAX_SERIAL:
        raise ValueError(f"UTN serial {serial} does not fit in 11 digits")
    return f"{prefix}{letter}{serial:011d}"


def is_valid_utn(s: str) -> bool:
    """True when ``s`` has the 14-character UTN format (no normalization: the claim field is exact)."""
    return isinstance(s, str) and _UTN_RE.fullmatch(s) is not None
