"""Who made a run and who may act on it, when sign-in is on.

Why in lib and not only in the pages: hiding a button is not a rule. Every action that writes because of
an existing run (re-run, promote, extend, another take, the other mode's version, recover into it) asks
`refusal()` here first, so a callback fired with another user's run id is refused in words whatever the
page drew. The rules:
- no sign-in configured (the single-user default, or the shared passcode): everyone is the team, every
  run may be acted on, nothing changes from before sign-in existed;
- sign-in configured: a run made by a signed-in user belongs to them (runs.owner = the provider's `sub`);
  runs made before sign-in was turned on have no owner and stay the whole team's, open to everyone;
  another user's run can be looked at (the "Whole team" view, a share link) but the only way to build on
  it is its share link's "Re-run this config", which fills Compose, so the new run is the viewer's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lib import money

if TYPE_CHECKING:
    from lib.ledger import Run

TEAM_LABEL = "Team"  # how a run with no owner (made before sign-in, or without it) is named
ANYONE = "a team member"  # a signed-in user whose provider gave no name, e-mail or user name


@dataclass(frozen=True)
class Actor:
    """The person pressing: their stable id and display name, or nobody signed in."""

    owner: str | None = None
    name: str | None = None
    signed_in: bool = False


NOBODY = Actor()


def display_name(claims: Any) -> str:
    """A readable name from the provider's claims: name, else user name, else the e-mail's local part."""
    def claim(key: str) -> str:
        try:
            value = claims.get(key)
        except Exception:  # noqa: BLE001 - claims may be st.user or a plain dict
            value = None
        return value.strip() if isinstance(value, str) else ""

    for key in ("name", "preferred_username", "nickname"):
        if text := claim(key):
            return text[:200]
    email = claim("email")
    return email.split("@", 1)[0][:200] if email else ANYONE


def actor_from_claims(claims: Any) -> Actor:
    """The Actor for a signed-in session's claims (st.user); NOBODY when the claims lack a subject."""
    sub = claims.get("sub") if hasattr(claims, "get") else None
    if not isinstance(sub, str) or not sub.strip():
        return NOBODY
    return Actor(owner=sub.strip()[:255], name=display_name(claims), signed_in=True)


def owner_label(run: Run) -> str:
    """Whose run this is, for a badge or a shared view."""
    if getattr(run, "owner", None) is None:
        return TEAM_LABEL
    return getattr(run, "owner_name", None) or ANYONE


def is_mine(run: Run, actor: Actor) -> bool:
    return actor.signed_in and getattr(run, "owner", None) == actor.owner


def may_act(sign_in: bool, run: Run, actor: Actor) -> bool:
    """Whether `actor` may act on `run` (see the module docstring)."""
    return refusal(sign_in, run, actor, "use") is None


SIGN_IN_FIRST = "Sign in first: with sign-in on, every run belongs to the person who made it."


def refusal(sign_in: bool, run: Run, actor: Actor, action: str) -> str | None:
    """Why `actor` may not `action` (e.g. "promote") `run`, in words; None when they may."""
    if not sign_in:
        return None
    if not actor.signed_in or not actor.owner:
        return SIGN_IN_FIRST
    owner = getattr(run, "owner", None)
    if owner is None or owner == actor.owner:
        return None
    return (f"This run belongs to {owner_label(run)}, so you cannot {action} it: you can look at it, but "
            "only its owner acts on it. To make your own version, open its share link and press "
            "Re-run this config; the new run is then yours.")


class NotYours(ValueError):
    """An action on another user's run (str() is the words); a ValueError so pages that show a
    ValueError's words (recover, re-run) show these too."""


def check(sign_in: bool, run: Run, actor: Actor, action: str) -> None:
    """Raise NotYours with the words when `actor` may not `action` `run`."""
    words = refusal(sign_in, run, actor, action)
    if words:
        raise NotYours(words)


def owner_filter(sign_in: bool, actor: Actor, whole_team: bool) -> str | None:
    """The RunFilter.owner a list uses: the actor's own runs by default once sign-in is on."""
    if not sign_in or whole_team:
        return None
    # signed out: an owner no run has (stored owners are stripped, so none starts with a space): the
    # list is empty, never everyone's
    return actor.owner or " signed out"


def spend_of(engine: sa.Engine, runs_table: sa.Table, owner: str, failed_state: str = "failed") -> float:
    """One owner's estimated spend as the per-user cap counts it (every run but failed ones)."""
    c = runs_table.c
    stmt = (sa.select(sa.func.coalesce(sa.func.sum(c.est_cost), 0.0))
            .where(c.owner == owner, c.state != failed_state))
    with engine.connect() as conn:
        return float(conn.execute(stmt).scalar_one())


def user_refusal_words(what: str, cost: float, spent: float, budget: float) -> str:
    """The per-user cap's refusal with the numbers (the team cap has its own words)."""
    left = max(0.0, budget - spent)
    return (f"{what} is estimated at {money.usd(cost)}, but only {money.usd(left)} of your own "
            f"{money.usd(budget)} budget is left ({money.usd(spent)} already spent by you, estimated). "
            "Choose std or a shorter duration, or ask the playground's owner to raise "
            "PLAYGROUND_USER_BUDGET_USD.")
