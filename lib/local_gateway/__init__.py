"""Embedded ToAPIs-compatible gateway that renders real MP4s (see README.md in this folder)."""

from __future__ import annotations

from .render import RESOLUTION, render_clip
from .runner import LocalGateway

__all__ = ["RESOLUTION", "LocalGateway", "render_clip"]
