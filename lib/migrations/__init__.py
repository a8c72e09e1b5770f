"""The ledger's schema history (Alembic revisions in versions/) and the one call that brings a database
up to date.

Why: `create_all` only creates missing tables, so the first release that added a column would have turned
every existing ledger into "no such column" errors. Each schema change is now a revision, and the app
upgrades the ledger when it opens it (lib.ledger.Ledger), inside the caller's write transaction: SQLite's
BEGIN IMMEDIATE, PostgreSQL's advisory lock. Two processes starting at once therefore migrate once; the
second finds the ledger at head.

No alembic.ini: the configuration is built here from this folder's path, so it works from any working
directory and for any PLAYGROUND_DB_URL. `python -m lib.migrations` is the command line (check, current,
upgrade, revision).

Revision 0001 is the schema exactly as commit e215a0f's create_all made it; a ledger with no
alembic_version table but a `runs` table was written by that code (the schema never changed before it)
and is stamped 0001, then upgraded, never recreated.
"""
from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

HERE = Path(__file__).resolve().parent
BASELINE = "0001"  # the schema of commit e215a0f, the last release without migrations


class UnknownRevision(Exception):
    """The database is at a schema revision this code does not have: a newer app wrote it."""

    def __init__(self, revisions: Sequence[str], head: str) -> None:
        self.revisions = tuple(revisions)
        self.head = head
        super().__init__(f"unknown schema revision {', '.join(self.revisions)} (this code's head is {head})")


def config(connection: Connection | None = None, *, location: Path = HERE,
           metadata: sa.MetaData | None = None, url: str | None = None) -> Config:
    """An Alembic Config without an ini file. `connection` (already in a transaction) is what env.py
    migrates; `metadata` replaces lib.ledger's models for autogenerate (tests); `url` is for the CLI."""
    cfg = Config()
    cfg.set_main_option("script_location", str(location).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    cfg.attributes["metadata"] = metadata
    return cfg


@functools.cache
def _script(location: Path = HERE) -> ScriptDirectory:
    return ScriptDirectory.from_config(config(location=location))


def head(location: Path = HERE) -> str:
    """The newest revision this code knows."""
    rev = _script(location).get_current_head()
    if rev is None:
        raise RuntimeError(f"no migrations in {location / 'versions'}")
    return rev


def known(location: Path = HERE) -> frozenset[str]:
    return frozenset(rev.revision for rev in _script(location).walk_revisions())


def current(conn: Connection) -> tuple[str, ...]:
    """The revisions recorded in the database (empty: unversioned or empty database)."""
    return tuple(MigrationContext.configure(conn).get_current_heads())


def upgrade(conn: Connection, *, location: Path = HERE) -> str:
    """Bring the database on `conn` to head and return it. The caller holds the database's write lock
    and commits; nothing is written when UnknownRevision is raised (the ledger is newer than the app)."""
    at = current(conn)
    top = head(location)
    if at == (top,):
        return top  # the usual start: one SELECT, Alembic's env and scripts are not even run
    unknown = [rev for rev in at if rev not in known(location)]
    if unknown:
        raise UnknownRevision(unknown, top)
    cfg = config(conn, location=location)
    if not at and sa.inspect(conn).has_table("runs"):
        command.stamp(cfg, BASELINE)  # written by e215a0f's create_all: that schema *is* the baseline
    command.upgrade(cfg, "head")
    return top


def differences(conn: Connection, metadata: sa.MetaData | None = None) -> list[Any]:
    """What autogenerate would write to turn the database on `conn` into the models (empty: in step)."""
    from alembic.autogenerate import compare_metadata

    if metadata is None:
        from lib.ledger import metadata as models  # lazy: lib.ledger imports this module

        metadata = models
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, metadata))


@contextmanager
def scratch_at_head(location: Path = HERE) -> Iterator[Connection]:
    """A throw-away SQLite database migrated to head, in a transaction (for check and revision)."""
    with tempfile.TemporaryDirectory(prefix="ledger-migrations-") as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}", poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                upgrade(conn, location=location)
                yield conn
        finally:
            engine.dispose()


def new_revision(message: str, *, location: Path = HERE, metadata: sa.MetaData | None = None) -> Path:
    """Write versions/NNNN_<slug>.py from what the models have and the migrations lack (autogenerate,
    batch operations for SQLite). Read and edit it before committing: autogenerate misses renames."""
    number = max((int(rev) for rev in known(location) if rev.isdigit()), default=0) + 1
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40] or "change"
    with scratch_at_head(location) as conn:
        script = command.revision(config(conn, location=location, metadata=metadata), message,
                                  autogenerate=True, rev_id=f"{number:04d}")
    _script.cache_clear()
    assert script is not None and not isinstance(script, list)
    return Path(script.path).rename(Path(script.path).with_name(f"{number:04d}_{slug}.py"))
