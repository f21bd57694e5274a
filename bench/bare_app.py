"""Baselines for same-run comparisons: a bare FastAPI JSON endpoint, and floors that add one cost at a time.

`/echo` is the bare endpoint the submit goal is measured against. The floors show how much of that budget
the first unavoidable steps of a real submit take before any business logic runs:

- `/floor/validate`: the same body parsed into wiserpa's `SubmitRequestIn` model in an async endpoint;
- `/floor/validate-sync`: the same in a sync endpoint (FastAPI runs it on a worker thread, as it runs every
  route that uses a synchronous database session);
- `/floor/insert`: `/floor/validate` plus one committed SQLite insert of the raw body (WAL, synchronous=NORMAL,
  the settings wiserpa uses), with the plain `sqlite3` module.
"""

import os
import sqlite3
import tempfile
import threading
from typing import Any

from fastapi import FastAPI, Request

from wiserpa.requests.schemas import SubmitRequestIn

app = FastAPI()

_db_path = os.path.join(
    os.environ.get("BENCH_FLOOR_DIR") or tempfile.mkdtemp(prefix="wiserpa-floor-"), "floor.db"
)
_db = sqlite3.connect(_db_path, check_same_thread=False, isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS submissions (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
_lock = threading.Lock()


@app.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    """Parse the JSON body and answer a small JSON document (no database)."""
    body = await request.json()
    return {"ok": True, "keys": len(body)}


@app.post("/floor/validate")
async def floor_validate(body: SubmitRequestIn) -> dict[str, Any]:
    """Validate the body against the submit model (async endpoint, no database)."""
    return {"ok": True, "lines": len(body.lines)}


@app.post("/floor/validate-sync")
def floor_validate_sync(body: SubmitRequestIn) -> dict[str, Any]:
    """The same validation in a sync endpoint, which FastAPI runs on a worker thread."""
    return {"ok": True, "lines": len(body.lines)}


@app.post("/floor/insert")
async def floor_insert(request: Request) -> dict[str, Any]:
    """Validate, then commit one row holding the raw body (the least a durable submit can do)."""
    raw = await request.body()
    body = SubmitRequestIn.model_validate_json(raw)
    with _lock:
        _db.execute("BEGIN IMMEDIATE")
        row_id = _db.execute("INSERT INTO submissions (body) VALUES (?)", (raw.decode(),)).lastrowid
        _db.execute("COMMIT")
    return {"ok": True, "id": row_id, "lines": len(body.lines)}
