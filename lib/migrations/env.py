"""Alembic's entry point for this ledger: migrate the connection lib.migrations passed in, inside the
caller's transaction (which holds the database's write lock). Never offline: the app migrates live."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

config = context.config


def _metadata() -> sa.MetaData:
    given = config.attributes.get("metadata")
    if given is not None:
        return given
    from lib.ledger import metadata

    return metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=_metadata(),
        compare_type=True,
        # SQLite cannot ALTER most things: autogenerate writes batch operations there (copy and move).
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if context.is_offline_mode() or given is None:
    raise SystemExit("The ledger is migrated live through lib.migrations (the app, or `python -m "
                     "lib.migrations`); offline (--sql) runs and a bare `alembic` command are not supported.")
_run(given)
