"""The ToAPIs gateway client as a package (being split; see client.py)."""
from __future__ import annotations

from lib.gateway.client import *  # noqa: F403
from lib.gateway.client import __all__  # noqa: F401
