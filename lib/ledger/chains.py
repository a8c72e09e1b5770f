"""Shot chains in the ledger: which run continues which (and from what frame), and each sequence's export.

Why tables of their own (migration 0007) rather than columns on `runs`: a link is written after its run
(Compose's Generate makes the run, then the link), it is never needed to send, poll or archive a run,
and a run can be continued several times (branches). `chain_links` holds one row per continuing run:
its parent, its place (1 for the first shot, parent's + 1), the frame's time in the parent and its role
(the next shot's first frame, or the last frame of a shot that leads into the parent). `sequences` gives
the shots up to one run an unguessable id of its own for the share link, and remembers the exported MP4
(its key, poster and the signature of the shots it was made from, so a second Export reuses it).
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from lib.ledger.reads import Reads
from lib.ledger.schema import metadata

FIRST, LAST = "first", "last"   # the frame's role in the new shot
MAX_SHOTS = 12                  # the longest chain a sequence follows (walks are bounded by it)

chain_links_table = sa.Table(
    "chain_links",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("parent_run_id", sa.String(64), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("frame_time", sa.Double, nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)
sa.Index("ix_chain_links_parent", chain_links_table.c.parent_run_id)

sequences_table = sa.Table(
    "sequences",
    metadata,
    sa.Column("sequence_id", sa.String(64), primary_key=True),
    sa.Column("last_run_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("export_signature", sa.String(64)),
    sa.Column("video_path", sa.Text),
    sa.Column("poster_path", sa.Text),
    sa.Column("duration", sa.Double),
    sa.Column("export_mode", sa.String(8)),
    sa.Column("exported_at", sa.Double),
)
sa.Index("ux_sequences_last_run", sequences_table.c.last_run_id, unique=True)

L = chain_links_table.c
S = sequences_table.c


@dataclass(frozen=True)
class ChainLink:
    run_id: str
    parent_run_id: str
    position: int
    frame_time: float
    role: str


@dataclass(frozen=True)
class SequenceRow:
    sequence_id: str
    last_run_id: str
    export_signature: str | None = None
    video_path: str | None = None
    poster_path: str | None = None
    duration: float | None = None
    export_mode: str | None = None


def _link(row: sa.Row) -> ChainLink:
    return ChainLink(row.run_id, row.parent_run_id, int(row.position), float(row.frame_time), row.role)


class Chains(Reads):
    """Links between shots and the sequences' exports; short transactions like every other concept."""

    def link_shot(self, run_id: str, parent_run_id: str, frame_time: float, role: str) -> ChainLink:
        """Record `run_id` as the shot made from `parent_run_id`'s frame; the first link of a run wins
        (a second press of Generate that made no new run changes nothing)."""
        if role not in (FIRST, LAST):
            raise ValueError(f"unknown role {role!r}")
        if run_id == parent_run_id:
            raise ValueError("a shot cannot continue itself")
        with self._write() as conn:
            parent = conn.execute(sa.select(L.position).where(L.run_id == parent_run_id)).first()
            position = (int(parent.position) if parent else 1) + 1
            conn.execute(self._insert_ignore(chain_links_table, {
                "run_id": run_id, "parent_run_id": parent_run_id, "position": position,
                "frame_time": float(frame_time), "role": role, "created_at": self._now()}, "run_id"))
            row = conn.execute(sa.select(chain_links_table).where(L.run_id == run_id)).first()
            self._bump(conn)
        assert row is not None
        return _link(row)

    def chain_link(self, run_id: str) -> ChainLink | None:
        with self._read() as conn:
            row = conn.execute(sa.select(chain_links_table).where(L.run_id == run_id)).first()
        return _link(row) if row else None

    def chain_path(self, run_id: str, limit: int = MAX_SHOTS) -> list[ChainLink]:
        """The links from `run_id` up to the chain's first shot (nearest first), at most `limit - 1`:
        a bounded walk, safe against a cycle a hand-edited ledger might hold."""
        path: list[ChainLink] = []
        seen = {run_id}
        current = run_id
        with self._read() as conn:
            while len(path) < limit - 1:
                row = conn.execute(sa.select(chain_links_table).where(L.run_id == current)).first()
                if row is None or row.parent_run_id in seen:
                    break
                path.append(_link(row))
                seen.add(row.parent_run_id)
                current = row.parent_run_id
        return path

    def continued(self, run_id: str) -> bool:
        """Whether any shot was made from one of this run's frames."""
        with self._read() as conn:
            found = conn.execute(sa.select(L.run_id).where(L.parent_run_id == run_id).limit(1)).first()
        return found is not None

    # ----------------------------------------------------------------- sequences
    def sequence_for(self, last_run_id: str) -> SequenceRow:
        """The sequence ending at this run, made on first use (its id is what a share link carries)."""
        with self._write() as conn:
            conn.execute(self._insert_ignore(sequences_table, {
                "sequence_id": self.new_id(), "last_run_id": last_run_id, "created_at": self._now()},
                "last_run_id"))
            row = conn.execute(sa.select(sequences_table).where(S.last_run_id == last_run_id)).first()
        assert row is not None
        return _sequence(row)

    def sequence(self, sequence_id: str) -> SequenceRow | None:
        with self._read() as conn:
            row = conn.execute(sa.select(sequences_table).where(S.sequence_id == sequence_id)).first()
        return _sequence(row) if row else None

    def set_sequence_export(self, sequence_id: str, *, signature: str, video_path: str,
                            poster_path: str | None, duration: float, mode: str) -> bool:
        """Keep an export unless one of the same shots is already kept (another tab or process was first):
        False then, and the caller drops its own file and uses the stored one."""
        with self._write() as conn:
            done = conn.execute(
                sa.update(sequences_table)
                .where(S.sequence_id == sequence_id)
                .where(sa.or_(S.export_signature.is_(None), S.export_signature != signature))
                .values(export_signature=signature, video_path=video_path, poster_path=poster_path,
                        duration=float(duration), export_mode=mode, exported_at=self._now())
            ).rowcount == 1
            if done:
                self._bump(conn)
        return done


def _sequence(row: sa.Row) -> SequenceRow:
    return SequenceRow(row.sequence_id, row.last_run_id, row.export_signature, row.video_path,
                       row.poster_path, None if row.duration is None else float(row.duration),
                       row.export_mode)
