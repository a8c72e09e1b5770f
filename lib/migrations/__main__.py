"""`python -m lib.migrations`: the ledger's schema from the command line (any working directory).

    current            the ledger's schema revision (PLAYGROUND_DB_URL or --url) and this code's head
    upgrade            what the app does on start: stamp an e215a0f ledger, upgrade under the lock
    check              exit 1 when lib.ledger's models differ from the migrations' head (as CI checks)
    revision MESSAGE   write the next versions/NNNN_*.py from those differences (then read and edit it)
"""
from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa

from lib import migrations
from lib.config import load_settings, mask_db_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.migrations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("current", "upgrade", "check", "revision"))
    parser.add_argument("message", nargs="?", help="what the new revision changes (revision only)")
    parser.add_argument("--url", help="the ledger's SQLAlchemy URL (default: PLAYGROUND_DB_URL's)")
    args = parser.parse_args(argv)
    if args.command == "check":
        with migrations.scratch_at_head() as conn:
            diffs = migrations.differences(conn)
        for diff in diffs:
            print(f"not in the migrations: {diff}")
        print("models and migrations differ: write a revision" if diffs else "models match the migrations")
        return 1 if diffs else 0
    if args.command == "revision":
        if not args.message:
            parser.error("revision needs a MESSAGE")
        print(f"wrote {migrations.new_revision(args.message)}")
        return 0
    url = args.url or load_settings().db_url
    if args.command == "upgrade":
        from lib.ledger import Ledger

        ledger = Ledger(url)
        ledger.close()
        print(f"{mask_db_url(url)} is at {ledger.schema_revision} (head)")
        return 0
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            at = migrations.current(conn)
    finally:
        engine.dispose()
    print(f"{mask_db_url(url)}: {', '.join(at) or 'unversioned'}; this code's head: {migrations.head()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
