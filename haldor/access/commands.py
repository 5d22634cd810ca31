"""Operator commands (PROTOCOL 4): validation and the checks that refuse one. Pure."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from haldor.errors import DocumentError
from haldor.protocol import DOOR_ACTIONS, SITE_ACTIONS, Action, Reason, Schema
from haldor.records import record

from .fields import Fields

COMMAND_SCHEMA = Schema.COMMAND
#: reset_version: the next snapshot is applied whatever its version (a version published too far ahead)
ACTIONS = DOOR_ACTIONS + SITE_ACTIONS
MAX_DURATION_S = 24 * 3600
#: a command is a few hundred bytes; larger payloads are refused before parsing
MAX_COMMAND_BYTES = 64 * 1024
#: ``by`` and ``reason`` are for the audit trail: short texts, not documents
MAX_NOTE_CHARS = 200
MAX_URL_CHARS = 2000
#: a command is for now: valid at most a day, and not issued ahead of the box's clock by more than this
MAX_VALIDITY_S = 24 * 3600
MAX_AHEAD_S = 300
#: what lets people in or lifts a restriction: never carried out when the box cannot tell
#: that the command is still valid (its clock untrusted)
OPENING = (Action.UNLOCK, Action.HOLD_OPEN, Action.LIFT_LOCKDOWN)


@record
class CommandDoc:
    id: str
    site: str
    action: str
    door: str | None
    duration_s: float | None
    issued_at: float
    expires_at: float
    by: str | None
    reason: str | None = None
    #: ``update``: the release's signed manifest (an envelope) and where its wheel is
    manifest: Any = None
    url: str | None = None


def command_id(doc: Any) -> str | None:
    """The id of a command too broken to parse, for its result, when it has a usable one."""
    claimed = doc.get("id") if isinstance(doc, dict) else None
    return claimed if isinstance(claimed, str) and 0 < len(claimed) <= 64 else None


def claimed_id(payload: bytes) -> str | None:
    """The id a refused payload claims (not trusted, only echoed in its result)."""
    if len(payload) > MAX_COMMAND_BYTES:
        return None
    try:
        outer = json.loads(payload)
        inner = json.loads(outer["doc"]) if isinstance(outer, dict) and isinstance(outer.get("doc"), str) else outer
    except (ValueError, TypeError, RecursionError):
        return None
    return command_id(inner)


def parse_command(doc: Any) -> CommandDoc:
    r = Fields(doc, "")
    schema = r.get("schema", str)
    if schema != COMMAND_SCHEMA:
        raise DocumentError(f"schema: expected {COMMAND_SCHEMA!r}, got {schema!r}")
    action = r.get("action", str)
    if action not in ACTIONS:
        raise DocumentError(f"action: must be one of {', '.join(ACTIONS)}, not {action!r}")
    door = r.ident("door", required=action in DOOR_ACTIONS, nullable=action not in DOOR_ACTIONS)
    if action not in DOOR_ACTIONS and door is not None:
        raise DocumentError(f"door: {action} acts on the whole site; leave door out (or null)")
    duration = r.get("duration_s", (int, float), required=False, nullable=True)
    if duration is not None and not 0 < duration <= MAX_DURATION_S:
        raise DocumentError(f"duration_s: must be more than 0 and at most {MAX_DURATION_S}")
    issued_at = r.instant("issued_at")
    expires_at = r.instant("expires_at")
    if expires_at <= issued_at:
        raise DocumentError("expires_at: must be after issued_at")
    if expires_at - issued_at > MAX_VALIDITY_S:
        raise DocumentError(f"expires_at: at most {MAX_VALIDITY_S // 3600} hours after issued_at (a command is for now)")
    return CommandDoc(
        id=r.ident("id"),
        site=r.ident("site"),
        action=action,
        door=door if action in DOOR_ACTIONS else None,
        duration_s=duration if action == "unlock" else None,
        issued_at=issued_at,
        expires_at=expires_at,
        by=_note(r, "by"),
        reason=_note(r, "reason"),
        **_release(r, action),
    )


def _release(r: Fields, action: str) -> dict[str, Any]:
    """``update`` carries the signed manifest and the wheel's URL (checked by the box in full
    before anything is fetched: :mod:`.release`)."""
    if action != Action.UPDATE:
        return {}
    manifest = r.get("manifest", dict)
    url = r.get("url", str)
    if not url.startswith(("http://", "https://")) or len(url) > MAX_URL_CHARS or any(ord(ch) <= 32 for ch in url):
        raise DocumentError(f"url: an http:// or https:// address of at most {MAX_URL_CHARS} characters")
    return {"manifest": manifest, "url": url}


def _note(r: Fields, key: str) -> str | None:
    text: str | None = r.get(key, str, required=False, nullable=True)
    if text is not None and len(text) > MAX_NOTE_CHARS:
        raise DocumentError(f"{key}: at most {MAX_NOTE_CHARS} characters")
    if text is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise DocumentError(f"{key}: one line, without control characters")
    return text


def refusal(
    cmd: CommandDoc,
    *,
    site: str,
    doors: Collection[str],
    now: float,
    seen: bool,
    clock_trusted: bool = True,
    floor: float | None = None,
) -> str | None:
    """Why ``cmd`` must not be carried out, or None. Replays first: a replayed command
    says so even after it expired.

    An untrusted clock (a Pi after a power cut, before time sync) may be hours behind:
    expiry is then judged by ``floor``, the newest time the box knows has passed (its
    last trusted reading, the newest signed ``issued_at`` / ``generated_at``), and since
    no lower bound tells that a command has *not* expired, what would let people in is
    refused; locking and asking for a schedule still work."""
    if cmd.site != site:
        return f"for another site ({cmd.site})"
    if seen:
        return "replayed: this command id was already received"
    judged_at = now if clock_trusted or floor is None else max(now, floor)
    if judged_at >= cmd.expires_at:
        return Reason.EXPIRED
    if not clock_trusted and cmd.action in OPENING:
        return f"{Reason.CLOCK_UNTRUSTED}: this box's clock is not trusted, so it cannot tell that the command has not expired"
    if clock_trusted and cmd.issued_at > now + MAX_AHEAD_S:
        return "issued in the future: the sender's clock and this box's disagree"
    if cmd.door is not None and cmd.door not in doors:
        return f"unknown door {cmd.door!r}"
    return None
