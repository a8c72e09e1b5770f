"""Uploaded frame images by content hash, so the same file is never uploaded (or paid for) twice.

Its own module because it is a separate table with its own key, touched only by the upload path.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from lib.ledger.schema import uploads_table
from lib.ledger.store import Store


class Uploads(Store):
    """The uploads table: upsert and look-up."""

    def add_upload(self, sha256: str, url: str, filename: str | None, local_path: str | None) -> None:
        """Remember an uploaded image by content hash so the same file is not uploaded twice."""
        values = {"sha256": sha256, "url": url, "filename": filename,
                  "local_path": None if local_path is None else str(local_path), "created_at": self._now()}
        ins = (sqlite_dialect.insert if self.dialect == "sqlite" else pg_dialect.insert)(uploads_table)
        stmt = ins.values(**values).on_conflict_do_update(
            index_elements=["sha256"],
            set_={"url": values["url"], "filename": values["filename"], "local_path": values["local_path"]},
        )
        with self._write() as conn:
            conn.execute(stmt)

    def find_upload(self, sha256: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(uploads_table).where(uploads_table.c.sha256 == sha256)
            ).mappings().first()
        return dict(row) if row else None
