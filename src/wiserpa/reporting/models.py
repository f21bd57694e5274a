"""Pre-aggregated report blocks: the settled requests of each block of request ids, summed once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wiserpa.store.base import Base, UTCDateTime


class ReportChunk(Base):
    """Aggregates of the settled requests whose ids fall in one block, and the counts they were built from.

    A block is reused only while its request and decision counts are unchanged: every outcome change
    appends a decision, so a changed count means the block must be summed again (see reporting/rollup.py).
    """

    __tablename__ = "report_chunks"

    chunk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    requests: Mapped[int] = mapped_column(Integer)
    decisions: Mapped[int] = mapped_column(Integer)
    params: Mapped[str] = mapped_column(String(64))  # what else the sums depend on (penalties, format)
    built_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # the report clock when summed
    payload: Mapped[str] = mapped_column(Text)  # JSON: fine request rows and duration histograms
