"""Why the playground could not start, in words: which setting, what is wrong, what to set.

Why a module: a bad setting (PLAYGROUND_BUDGET_USD=abc) or a ledger that cannot be opened (a database
that is down, a password that is refused, a folder that cannot be written) used to reach the screen as a
traceback on every page. `diagnose` turns the exception `start_services`/`load_settings` raised into a
`StartupProblem` the set-up page (lib/ui/setup_page.py) draws, and `log_failure` writes the details to
the server log. Neither ever shows a credential: database URLs go through `mask_db_url`, and the
database driver's own message (which may name hosts and users) stays in the log, with any password
removed from it.
"""
from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lib.config import SettingError, Settings, mask_db_url

log = logging.getLogger(__name__)

DB_SETTING = "PLAYGROUND_DB_URL"
DB_FIX = (f"Set {DB_SETTING} to a database this server can reach, such as "
          "sqlite:////absolute/path/ledger.db or postgresql+psycopg://user:password@host:5432/name, "
          "or remove it to use the SQLite file data/ledger.db.")
_DRIVERS = ("psycopg", "psycopg2", "MySQLdb", "pymysql", "asyncpg", "pg8000", "cx_Oracle", "pyodbc")
_NAMED = re.compile(r"^([A-Z][A-Z0-9_]{2,})\b")   # config's ValueErrors start with the variable's name

# (words in the driver's message, what the user reads): first match wins
_DB_CAUSES = (
    (("password authentication failed", "authentication failed", "no password supplied"),
     "the database refused the user name or password in the URL"),
    (("does not exist",), "the database named in the URL does not exist on that server"),
    (("could not translate host name", "name or service not known", "nodename nor servname",
      "temporary failure in name resolution"), "the database server's host name cannot be found"),
    (("timeout", "timed out"), "the database server did not answer in time"),
    (("connection refused", "connection failed", "could not connect", "server closed the connection",
      "no route to host", "network is unreachable"), "the database server cannot be reached"),
    (("unable to open database file",), "the SQLite file cannot be opened: its folder is missing or not "
                                        "writable"),
    (("readonly database", "read-only"), "the database can only be read, not written"),
    (("permission denied",), "the database refused access (permission denied)"),
    (("file is not a database", "file is encrypted", "malformed"), "the SQLite file is not a readable "
                                                                   "ledger (it may be damaged)"),
)


@dataclass(frozen=True)
class StartupProblem:
    """What the set-up page says. `detail` is for the owner only (it names a masked URL or a folder)."""

    setting: str      # the environment variable to change ("" when no single setting is to blame)
    problem: str      # what is wrong, in words
    fix: str          # what to set
    detail: str = ""


def diagnose(exc: BaseException, settings: Settings | None = None) -> StartupProblem:
    """The words for a start-up failure. `settings` (when they could be read) name the URL and folders."""
    if isinstance(exc, SettingError):
        return StartupProblem(exc.name, str(exc), exc.fix)
    if isinstance(exc, ValueError) and (named := _NAMED.match(str(exc))):
        name = named.group(1)
        return StartupProblem(name, str(exc), f"Correct {name}, or remove it to use the default.")
    if isinstance(exc, OSError) and not _is_database_error(exc):
        return _folder_problem(exc, settings)
    if _is_database_error(exc):
        return _database_problem(exc, settings)
    return StartupProblem(
        "", f"The playground could not start ({type(exc).__name__}).",
        "Check the server log for the details, correct the cause, then reload this page.")


def _is_database_error(exc: BaseException) -> bool:
    import sqlalchemy.exc

    from lib.ledger import LedgerError

    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError | LedgerError):
        return True
    if isinstance(exc, ModuleNotFoundError):
        return (exc.name or "").split(".")[0] in _DRIVERS
    return False


def _database_problem(exc: BaseException, settings: Settings | None) -> StartupProblem:
    import sqlalchemy.exc

    from lib.ledger import LedgerError

    url = settings.db_url if settings is not None else ""
    detail = f"The ledger URL in use is {mask_db_url(url)}." if url else ""
    if isinstance(exc, LedgerError):
        problem = str(exc)  # already words for the user, without credentials
    elif isinstance(exc, ModuleNotFoundError):
        problem = (f"the database driver this URL needs ({exc.name}) is not installed; this app ships "
                   "psycopg 3 for PostgreSQL, used with URLs that start postgresql+psycopg://")
    elif isinstance(exc, sqlalchemy.exc.ArgumentError):
        problem = "it is not a database URL this app can use (SQLite or PostgreSQL)"
    else:
        text = str(getattr(exc, "orig", None) or exc).lower()
        problem = next((words for keys, words in _DB_CAUSES if any(k in text for k in keys)),
                       "the database answered with an error when the ledger was opened")
    sentence = problem if isinstance(exc, LedgerError) else f"The ledger cannot be opened: {problem}."
    return StartupProblem(DB_SETTING, sentence, DB_FIX, detail)


def _folder_problem(exc: OSError, settings: Settings | None) -> StartupProblem:
    """A folder that cannot be made or written: the archive, the data folder or the SQLite file's."""
    failed = Path(str(exc.filename)) if exc.filename else None
    what = exc.strerror or type(exc).__name__
    setting = "PLAYGROUND_DATA"
    if settings is not None and failed is not None:
        if _within(failed, settings.archive_dir):
            setting = "PLAYGROUND_ARCHIVE"
        elif settings.db_url.startswith("sqlite") and _within(failed, _sqlite_folder(settings.db_url)):
            setting = DB_SETTING
    detail = f"The folder is {failed}." if failed is not None else ""
    return StartupProblem(
        setting, f"A folder the playground needs cannot be created or written ({what.lower()}).",
        f"Point {setting} at a folder this server's user can write, or make that folder writable.",
        detail)


def _within(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        return path == folder or path.is_relative_to(folder) or folder.is_relative_to(path)
    except (TypeError, ValueError):
        return False


def _sqlite_folder(url: str) -> Path | None:
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    return Path(path[1:] if path.startswith("//") else path).parent if path else None


def passcode_set(env: Mapping[str, str], secrets: Mapping[str, Any]) -> bool:
    """Whether a passcode is configured, read without loading (possibly broken) settings: a protected
    deployment shows strangers no details of what is wrong, only the owner's server log does."""
    for source in (env, secrets):
        try:
            value = source.get("PLAYGROUND_PASSCODE")
        except (AttributeError, KeyError, TypeError):
            value = None
        if value is not None and not isinstance(value, Mapping) and str(value).strip():
            return True
    return False


def log_failure(exc: BaseException, problem: StartupProblem, settings: Settings | None = None) -> None:
    """The whole story for the owner, in the server log, with any database password replaced by ***."""
    text = "".join(traceback.format_exception(exc))
    secret = _db_password(settings.db_url) if settings is not None else None
    if secret:
        text = text.replace(secret, "***")
    log.error("the playground cannot start: %s %s %s\n%s", problem.setting or "-", problem.problem,
              problem.detail, text)


def _db_password(url: str) -> str | None:
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None
