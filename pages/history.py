"""History: every run in the ledger, filtered and paged in the database, with details, export and stats."""
from __future__ import annotations

from lib.ui import frame, history_view

services = frame.render("History", icon=":material/history:")
history_view.render(services)
