"""The Sequence view: /sequence?id=<sequence id> plays a shot chain as one, read-only, for anyone with it."""
from __future__ import annotations

from lib.ui import frame, sequence_view

services = frame.render("Sequence", icon=":material/movie:", public=True)
sequence_view.render(services)
