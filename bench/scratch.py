"""A scratch PostgreSQL database for a benchmark: created on a server URL, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from wiserpa.store.db import make_engine


@contextmanager
def scratch_postgres(server_url: str, label: str = "bench") -> Iterator[str]:
    """Yield the URL of a new, empty database on the server of `server_url`; drop it on the way out."""
    name = f"wiserpa_{label}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
