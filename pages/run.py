"""The share view: /run?id=<run_id> shows one run, /run?group=<group_id> a comparison, read-only."""
from __future__ import annotations

from lib.ui import frame, share_view

services = frame.render("Shared run", icon=":material/link:", public=True)
share_view.render(services)
