"""Print the Markdown table of every packaged criterion (for docs/policy.md).

Run ``python scripts/criteria_table.py`` to print it, or ``--update docs/policy.md`` to replace the table
between the ``<!-- criteria-table:start -->`` and ``<!-- criteria-table:end -->`` markers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from wiserpa.policy.criteria import CriteriaLibrary, Criterion, FrequencyLimit, load_criteria

START = "<!-- criteria-table:start -->"
END = "<!-- criteria-table:end -->"
_MAX_STATEMENT = 110


def _short(text: str) -> str:
    first = text.split(". ")[0].rstrip(".")
    if len(first) > _MAX_STATEMENT:
        first = first[: _MAX_STATEMENT - 1].rsplit(" ", 1)[0] + "…"
    return first.replace("|", "\\|")


def table(library: CriteriaLibrary | None = None) -> str:
    """The Markdown table, one row per criterion or frequency limit, grouped by policy."""
    lib = library or load_criteria()
    rows = [
        "| Category | Policy | Id | Kind | Statement (short) | Citation | Confidence |",
        "|---|---|---|---|---|---|---|",
    ]
    ordered = sorted(lib.policies.values(), key=lambda p: (p.categories[0], p.policy_id))
    for policy in ordered:
        items: list[Criterion | FrequencyLimit] = [*policy.criteria, *policy.frequency_limits]
        for item in items:
            kind = "criterion" if isinstance(item, Criterion) else "frequency limit"
            section = item.citation.section.replace("|", "\\|")
            rows.append(
                f"| {', '.join(policy.categories)} | {policy.policy_id} | `{item.id}` | {kind} "
                f"| {_short(item.statement)} | {item.citation.policy} §{section} | {item.confidence} |"
            )
    return "\n".join(rows) + "\n"


def update(path: Path) -> bool:
    """Rewrite the table between the markers in ``path``; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{path}: markers {START} / {END} not found")
    new = f"{head}{START}\n{table()}{END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def main() -> None:
    """Print the table, or update a Markdown file in place."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="Markdown file whose marked table to replace")
    args = parser.parse_args()
    if args.update:
        print(f"{args.update}: {'updated' if update(args.update) else 'already current'}")
    else:
        sys.stdout.write(table())


if __name__ == "__main__":
    main()
