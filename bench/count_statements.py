"""How many SQL statements a simulated year sends, by statement: where fewer round trips would save time.

Runs the simulator's WA year of N requests under one profile on its in-memory SQLite database (as
`wiserpa simulate` does, without worker processes), counts every statement the engine sends through a
`before_cursor_execute` listener, and prints the total and the most frequent statements (first 110 characters).
Savepoints and SQLite id reservations go straight to the driver (store.db, store.base) and are not counted;
statements sent with store.base.driver_execute are (a listener sends them through SQLAlchemy).
Counts, not times: they do not depend on how busy the machine is.

    python bench/count_statements.py [--requests 10000] [--policy asa-reform] [--top 25]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import simulator_run
from sqlalchemy import event

from wiserpa.sim import engine


def main() -> None:
    """Run the year and print the statement counts."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--policy", default="asa-reform")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    counts: Counter[str] = Counter()
    with simulator_run(args.requests, args.policy) as run:

        @event.listens_for(run.rt.engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            counts[re.sub(r"\s+", " ", statement)[:110]] += 1

        with run.rt.sessions() as session:
            run.setup(session)
            with engine._few_collections():
                run.run(session)
    total = sum(counts.values())
    print(f"{args.policy}, {args.requests} requests: {total:,} statements")
    for statement, n in counts.most_common(args.top):
        print(f"{n:>8,} {100 * n / total:5.1f} %  {statement}")


if __name__ == "__main__":
    main()
