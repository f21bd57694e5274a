"""Find patient identifiers in experience-report narratives so the API can reject them (R9).

Experience reports are evidence that may be published, so a narrative must not carry patient identifiers.
The intake REJECTS a narrative with any finding and tells the reporter which kind it found; it never strips
text silently, because a silently edited narrative could change meaning and the reporter would not learn.

What is caught (``PhiFinding.kind``):

* ``mbi``: the 11-character Medicare Beneficiary Identifier shape (digit 1-9, letter, alphanumeric, digit,
  letter, alphanumeric, digit, letter, letter, digit, digit), any case, with the 4-3-4 groups run together or
  separated by a hyphen or dash (spaces around it allowed), a space or a dot, each gap on its own
  (``1EG4TE5MK73``, ``1EG4-TE5-MK73``, ``1eg4 te5 mk73``, ``1EG4–TE5MK73``). Any letter is accepted where CMS allows only 20 (no S L O I B Z) because a
  mistyped MBI is still an identifier. A UTN (2 alphanumerics, ``A``/``H``, then digits) cannot match.
* ``phone``: US numbers written as 3-3-4 digit groups with separators: ``(555) 123-4567``, ``555-123-4567``,
  ``555.123.4567``, ``555 123 4567``, ``+1 555 123 4567``, ``1-555-123-4567``. CPT codes, counts and
  4-digit years have no 3-3-4 structure and never match.
* ``ssn``: ``123-45-6789`` or ``123 45 6789``, and a bare 9-digit number right after "SSN" or
  "social security".
* ``email``: ``name@domain.tld``.
* ``date_of_birth``: a date within three words after "DOB", "D.O.B.", "date of birth", "birth date",
  "birthdate" (or directly after "born" / "born on" / "born in"), or a date directly followed by "(DOB)".
  Dates may be numeric (``3/4/1950``, ``03-04-50``, ``1950-03-04``) or use month names (``March 4, 1950``,
  ``4th of March 1950``, ``Mar 1950``). A date with no birth keyword ("delayed from 3/2 to 3/21", "on
  March 3") is an event date and is NOT flagged.
* ``name``: a capitalised name after a courtesy title (``Mr``, ``Mrs``, ``Ms``, ``Mx``, ``Miss``), after
  "patient" / "pt" / "beneficiary" (``patient John Smith``, ``pt Jones``, ``the patient, Mary Jones,``),
  or after "name is" / "name was" / "name:" / "named". Words that are capitalised for other reasons
  (weekdays, months, states, participants, MACs, "Portal", "Access", ...) are on a stop list and end a name.

Known false negatives (accepted; reviewers still read narratives before publication):

* names without a cue word ("John Smith called us"), lower-case names ("mr smith"), and names after
  "Dr." (deliberately not flagged: narratives name reviewing physicians far more often than patients);
* bare 10-digit phone numbers (``5551234567``) and 7-digit local numbers (they collide with NPIs and
  claim numbers), numbers with extensions are caught without the extension;
* bare 9-digit SSNs without an SSN cue; dates of birth more than three words from the keyword, or written
  as a year only ("born in 1948": a year alone is not a HIPAA date element below age 90) or as an age;
* addresses, record numbers and other HIPAA identifiers outside the six kinds above.

Known false positives: a non-birth date within three words of "birth date" ("birth date field rejected
3/4"); a capitalised non-name word after "patient" that is not on the stop list ("the patient Reported");
and business numbers and addresses (a MAC's phone line, a staff email), which are flagged like any other
phone or email because the scanner cannot tell whose they are. The corpus of 48 ordinary narratives in
``tests/experience/test_phi.py`` has 0 findings (false-positive rate 0%).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["PhiFinding", "PhiKind", "find_identifiers", "mask"]

PhiKind = Literal["mbi", "phone", "date_of_birth", "name", "ssn", "email"]


@dataclass(frozen=True, slots=True)
class PhiFinding:
    """One suspected identifier: its kind, character span in the text and a masked excerpt."""

    kind: PhiKind
    start: int
    end: int
    excerpt_masked: str


def mask(text: str) -> str:
    """Mask every letter and digit after the first, keeping punctuation so the shape stays recognisable."""
    out: list[str] = []
    seen_alnum = False
    for ch in text:
        if ch.isalnum():
            out.append("*" if seen_alnum else ch)
            seen_alnum = True
        else:
            out.append(ch)
    return "".join(out)


# --- MBI -------------------------------------------------------------------------------------------------
_L = "[A-Za-z]"
_AN = "[A-Za-z0-9]"
_D = "[0-9]"
# Between the printed groups (4-3-4) a writer may put nothing, a space, a dot, or a hyphen or dash with or
# without spaces around it; each gap is matched on its own, so "1EG4-TE5MK73" and "1EG4 TE5 MK73" are caught.
_MBI_SEP = r"(?:[ \t]*[-\u2010-\u2015][ \t]*|[ \t.])?"
_MBI_RE = re.compile(
    rf"(?<![A-Za-z0-9-])[1-9]{_L}{_AN}{_D}{_MBI_SEP}{_L}{_AN}{_D}{_MBI_SEP}{_L}{_L}{_D}{_D}(?![A-Za-z0-9])"
)

# --- phone -----------------------------------------------------------------------------------------------
# Groups must be separated (or the area code parenthesised) so that bare digit runs such as NPIs never match;
# the two separators of a 3-3-4 number must agree, which rules out stray "123 456-7890"-like collisions.
_PHONE_RE = re.compile(
    r"(?<![\w+(.\-/])"
    r"(?:\+?1[\s.\-]?)?"
    r"(?:\(\d{3}\)[\s.\-]?\d{3}[\s.\-]\d{4}"
    r"|\d{3}(?P<sep>[\s.\-])\d{3}(?P=sep)\d{4})"
    r"(?![\w\-/]|\.\d)"
)

# --- SSN -------------------------------------------------------------------------------------------------
_SSN_RE = re.compile(r"(?<![\w\-/.])\d{3}(?P<sep>[\- ])\d{2}(?P=sep)\d{4}(?![\w\-/]|\.\d)")
_SSN_CUE_RE = re.compile(
    r"(?i:\b(?:ssn|ss\s?#|social\s+security(?:\s+(?:number|no\.?|#))?))\W{0,3}(?P<v>\d{9})(?!\d)"
)

# --- email -----------------------------------------------------------------------------------------------
_EMAIL_RE = re.compile(r"(?<![\w.+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")

# --- date of birth ---------------------------------------------------------------------------------------
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
_DATE = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}"
    r"|\d{1,2}[/\-.]\d{1,2}(?:[/\-.]\d{2,4})?"
    rf"|{_MONTH}\s+\d{{1,2}}{_ORD}(?:,?\s+\d{{2,4}})?"
    rf"|\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{2,4}})?"
    rf"|{_MONTH},?\s+\d{{4}})"
)
_DATE_END = r"(?![\w/\-]|\.\d)"
_DOB_KEY = r"(?:\bd\.?o\.?b\b\.?|\bdate\s+of\s+birth\b|\bbirth\s*-?\s*date\b)"
_DOB_RE = re.compile(
    rf"{_DOB_KEY}[\s:;,=#()\-–—]*(?:[A-Za-z']+[\s:;,\-–—]+){{0,3}}?\b(?P<d>{_DATE}){_DATE_END}",
    re.IGNORECASE,
)
_BORN_RE = re.compile(rf"\bborn\s+(?:on\s+|in\s+)?\b(?P<d>{_DATE}){_DATE_END}", re.IGNORECASE)
_DATE_THEN_DOB_RE = re.compile(
    rf"(?<![\w/\-.])(?P<d>{_DATE})\s*[(,\-–—]?\s*(?:d\.?o\.?b\b\.?|date\s+of\s+birth)", re.IGNORECASE
)

# --- names -----------------------------------------------------------------------------------------------
_NAME_TOKEN = r"(?:[A-Z]')?(?:Ma?c)?[A-Z][a-z]+(?:-[A-Z][a-z]+)?"
_NAME_OR_CAPS = rf"(?:{_NAME_TOKEN}|[A-Z]{{2,}}(?:-[A-Z]{{2,}})?)"
_INITIAL = r"(?:[A-Z]\.\s*)"
_TITLE_RE = re.compile(
    rf"\b(?:[Mm]rs?|[Mm]s|Mx)\.?[ \t]+(?P<n>{_INITIAL}?{_NAME_OR_CAPS}(?:[ \t]+{_NAME_OR_CAPS})?)\b"
    rf"|\bMiss[ \t]+(?P<n2>{_INITIAL}?{_NAME_TOKEN}(?:[ \t]+{_NAME_TOKEN})?)\b"
)
_PATIENT_RE = re.compile(
    r"\b(?:[Pp]atient|[Pp]t\.?|[Bb]eneficiary)[ \t]+"
    rf"(?P<n>{_INITIAL}?{_NAME_TOKEN}(?:[ \t]+{_NAME_TOKEN})?)\b"
    rf"|\b(?:[Pp]atient|[Bb]eneficiary),[ \t]+(?P<n2>{_NAME_TOKEN}[ \t]+{_NAME_TOKEN})\b"
)
_NAMED_RE = re.compile(
    r"\b(?:[Nn]ame[ \t]+(?:is|was)[ \t]+|[Nn]ame[ \t]*:[ \t]*|[Nn]amed[ \t]+)"
    rf"(?P<n>{_INITIAL}?{_NAME_TOKEN}(?:[ \t]+{_NAME_TOKEN})?)\b"
)

# Capitalised words that follow cue words in ordinary narratives without being names.
_NOT_NAMES_TEXT = """
    the a an and or but this that these those he she they we i it his her their our its my your
    was is has had will would could should did does do not no yes who which what when where why how
    monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    alabama alaska arizona arkansas california colorado connecticut delaware florida georgia hawaii idaho
    illinois indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan minnesota
    mississippi missouri montana nebraska nevada new hampshire jersey mexico york carolina dakota ohio
    oklahoma oregon pennsylvania rhode island south north tennessee texas utah vermont virginia washington
    west wisconsin wyoming
    medicare medicaid cms cmmi wiser mac novitas noridian cgs palmetto cohere genzeon humata innovaccer
    virtix zyter trucare health solutions advantage
    portal access care services service advocate advocacy experience safety financial account support center
    centre coordinator navigator intake relations information education assistance record records chart
    number status request requests id identifier name first last family services
    emergency hospital clinic office surgery anesthesia anesthesiology pain medicine
"""
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())


def _name_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Trim a candidate name at the first stop-listed word; None when nothing name-like remains."""
    kept_end = start
    for tok in re.finditer(r"[A-Za-z][A-Za-z'\-]*\.?", text[start:end]):
        word = tok.group(0).rstrip(".").lower()
        # Single-letter initials are fine; anything on the stop list ends the name.
        if len(word) > 1 and word in _NOT_NAMES:
            break
        kept_end = start + tok.end()
    if kept_end == start:
        return None
    candidate = text[start:kept_end].rstrip(". ")
    # A lone initial is not a name.
    if len(candidate.replace(".", "").strip()) < 2:
        return None
    return start, start + len(candidate)


def _group_span(m: re.Match[str], *names: str) -> tuple[int, int]:
    """Span of the first named group that took part in the match."""
    for name in names:
        if name in m.re.groupindex and m.group(name) is not None:
            return m.span(name)
    return m.span()


def find_identifiers(text: str) -> list[PhiFinding]:
    """Return suspected patient identifiers in ``text``, ordered by position, overlaps resolved."""
    raw: list[tuple[PhiKind, int, int]] = []
    for m in _MBI_RE.finditer(text):
        raw.append(("mbi", *m.span()))
    for m in _PHONE_RE.finditer(text):
        raw.append(("phone", *m.span()))
    for m in _SSN_RE.finditer(text):
        raw.append(("ssn", *m.span()))
    for m in _SSN_CUE_RE.finditer(text):
        raw.append(("ssn", *m.span("v")))
    for m in _EMAIL_RE.finditer(text):
        raw.append(("email", *m.span()))
    for rx in (_DOB_RE, _BORN_RE, _DATE_THEN_DOB_RE):
        for m in rx.finditer(text):
            raw.append(("date_of_birth", *m.span("d")))
    for rx in (_TITLE_RE, _PATIENT_RE, _NAMED_RE):
        for m in rx.finditer(text):
            s, e = _group_span(m, "n", "n2")
            span = _name_span(text, s, e)
            if span is not None:
                raw.append(("name", *span))

    # Longest match first at each position, then drop anything overlapping a kept finding, so one
    # identifier is reported once under its most specific reading.
    raw.sort(key=lambda r: (r[1], -(r[2] - r[1])))
    findings: list[PhiFinding] = []
    last_end = -1
    for kind, s, e in raw:
        if s < last_end:
            continue
        findings.append(PhiFinding(kind=kind, start=s, end=e, excerpt_masked=mask(text[s:e])))
        last_end = e
    return findings
