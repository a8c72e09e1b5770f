"""The prompt library's table: save, list by tag, rename, retag, delete, and import many in one go.

Its own module because presets are a separate table with their own key (the casefolded name, unique per
ledger) and touch no run: saving one costs nothing and never reaches the gateway. What a valid preset is
lives in lib/presets.py; this module only stores them.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from lib.contract import VideoRequest
from lib.ledger.model import LedgerError
from lib.ledger.schema import presets_table
from lib.ledger.store import Store
from lib.presets import NameTaken, Preset, clean_name, name_key, name_problem, parse_tags, tags_of, with_tag

P = presets_table.c


@dataclass
class ImportResult:
    """What an import wrote and what it left out, each in words."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _to_preset(row: Any) -> Preset:
    try:
        tags = tuple(str(t) for t in json.loads(row.tags or "[]"))
    except (ValueError, TypeError):
        tags = ()
    try:
        params = json.loads(row.params)
    except (ValueError, TypeError):
        params = {}
    request = VideoRequest.from_dict(params if isinstance(params, dict) else {})
    return Preset(name=row.name, request=request, tags=tags, preset_id=row.preset_id,
                  created_at=row.created_at, updated_at=row.updated_at)


class Presets(Store):
    """Presets: one row each, unique by name (case-insensitive)."""

    def _preset_values(self, preset: Preset) -> dict[str, Any]:
        return {"name": preset.name, "name_key": preset.key, "tags": json.dumps(list(preset.tags)),
                "params": json.dumps(preset.settings()), "fingerprint": preset.fingerprint(),
                "updated_at": self._now()}

    def save_preset(self, preset: Preset, *, overwrite: bool = False) -> Preset:
        """Store a new preset; its name taken raises NameTaken, unless `overwrite` replaces that one's
        tags and settings (keeping its id, so a manager page's selection still points at it)."""
        values = self._preset_values(preset)
        try:
            return self._save_preset(preset, values, overwrite=overwrite)
        except sa.exc.IntegrityError:  # PostgreSQL: another tab saved this name between our look and write
            raise NameTaken(preset.name) from None

    def _save_preset(self, preset: Preset, values: dict[str, Any], *, overwrite: bool) -> Preset:
        with self._write() as conn:
            existing = conn.execute(sa.select(P.preset_id, P.created_at)
                                    .where(P.name_key == preset.key)).first()
            if existing is not None and not overwrite:
                raise NameTaken(preset.name)
            if existing is not None:
                conn.execute(sa.update(presets_table).where(P.preset_id == existing.preset_id)
                             .values(**values))
                return replace(preset, preset_id=existing.preset_id, created_at=existing.created_at,
                               updated_at=values["updated_at"])
            preset_id = self.new_id()
            conn.execute(sa.insert(presets_table).values(preset_id=preset_id, created_at=values["updated_at"],
                                                         **values))
        return replace(preset, preset_id=preset_id, created_at=values["updated_at"],
                       updated_at=values["updated_at"])

    def get_preset(self, preset_id: str) -> Preset | None:
        with self._read() as conn:
            row = conn.execute(sa.select(presets_table).where(P.preset_id == preset_id)).first()
        return _to_preset(row) if row else None

    def find_preset(self, name: str) -> Preset | None:
        """The preset with this name, compared like uniqueness is ("Fox" finds "fox ")."""
        with self._read() as conn:
            row = conn.execute(sa.select(presets_table).where(P.name_key == name_key(name))).first()
        return _to_preset(row) if row else None

    def list_presets(self, tag: str | None = None, limit: int = 1000) -> list[Preset]:
        """Every preset by name (with `tag`: those carrying it, any case)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(presets_table).order_by(P.name_key).limit(limit)).all()
        return with_tag([_to_preset(r) for r in rows], tag)

    def preset_tags(self) -> list[str]:
        """Every tag in use, once each (the first spelling seen), in alphabetical order."""
        return tags_of(self.list_presets())

    def rename_preset(self, preset_id: str, new_name: str) -> Preset:
        """Rename; the words of name_problem or NameTaken when it cannot be done."""
        problem = name_problem(new_name)
        if problem:
            raise LedgerError(problem)
        with self._write() as conn:
            row = conn.execute(sa.select(presets_table).where(P.preset_id == preset_id)).first()
            if row is None:
                raise LedgerError("That preset no longer exists (deleted in another tab?).")
            clash = conn.execute(sa.select(P.preset_id).where(P.name_key == name_key(new_name),
                                                              P.preset_id != preset_id)).first()
            if clash is not None:
                raise NameTaken(clean_name(new_name))
            renamed = replace(_to_preset(row), name=clean_name(new_name))
            values = self._preset_values(renamed)
            conn.execute(sa.update(presets_table).where(P.preset_id == preset_id).values(**values))
        return replace(renamed, updated_at=values["updated_at"])

    def retag_preset(self, preset_id: str, tags: Any) -> Preset:
        clean, problems = parse_tags(tags)
        if problems:
            raise LedgerError(" ".join(problems))
        with self._write() as conn:
            row = conn.execute(sa.select(presets_table).where(P.preset_id == preset_id)).first()
            if row is None:
                raise LedgerError("That preset no longer exists (deleted in another tab?).")
            retagged = replace(_to_preset(row), tags=clean)
            values = self._preset_values(retagged)
            conn.execute(sa.update(presets_table).where(P.preset_id == preset_id).values(**values))
        return replace(retagged, updated_at=values["updated_at"])

    def delete_preset(self, preset_id: str) -> bool:
        with self._write() as conn:
            return conn.execute(sa.delete(presets_table).where(P.preset_id == preset_id)).rowcount == 1

    def import_presets(self, presets: Sequence[Preset]) -> ImportResult:
        """Add every preset in one transaction (all or none if the database fails mid-way): one with the
        same name and content as a stored one is skipped; one whose name is taken by other settings is
        reported, never overwritten."""
        try:
            return self._import(presets)
        except sa.exc.IntegrityError:  # a name saved by another tab between our look and write: all undone
            raise LedgerError("Another tab saved a preset of the same name at the same moment; nothing was "
                              "imported — import the file again.") from None

    def _import(self, presets: Sequence[Preset]) -> ImportResult:
        result = ImportResult()
        now = self._now()
        with self._write() as conn:
            stored = {r.name_key: (r.fingerprint, r.name) for r in
                      conn.execute(sa.select(P.name_key, P.fingerprint, P.name)).all()}
            for preset in presets:
                known = stored.get(preset.key)
                if known is not None and known[0] == preset.fingerprint():
                    result.skipped.append(f"“{preset.name}” is already in the library; skipped.")
                    continue
                if known is not None:
                    result.problems.append(f"“{preset.name}”: a preset named “{known[1]}” already exists "
                                           "with "
                                           "other settings; skipped — rename one of them and import again.")
                    continue
                values = {**self._preset_values(preset), "preset_id": self.new_id(), "created_at": now}
                conn.execute(sa.insert(presets_table).values(**values))
                stored[preset.key] = (values["fingerprint"], preset.name)
                result.added.append(preset.name)
        return result
