"""The baseline: a bare FastAPI JSON endpoint served the same way as wiserpa, for same-run comparisons."""

from typing import Any

from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    """Parse the JSON body and answer a small JSON document (no database)."""
    body = await request.json()
    return {"ok": True, "keys": len(body)}
