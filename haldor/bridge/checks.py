"""What the bridge checks before it seals a site's schedule, and why it would not serve
that site. Pure: plain data in, one line out.

A schedule sealed to the wrong key is refused by the box at every reconnect, and one in
the wrong time zone moves every booking on the caretaker's screen; both looked like a
success at the municipality (issue 24). The box says its key and zone in its retained
status, so the bridge compares before it publishes.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .settings import Site


def fingerprint(key: str) -> str:
    """A short, stable name for a base64 public key (8 hex digits of its SHA-256), so that
    two keys can be told apart in one line without printing them whole."""
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = key.encode()
    return hashlib.sha256(raw).hexdigest()[:8]


def unserved(site: Site) -> str | None:
    """Why the site cannot be sent anything: no key to seal to and no ``plain = true``
    (a missing key never means "send the card numbers in clear")."""
    if site.public_key or site.plain:
        return None
    return (
        f"{site.id}: not published: [[sites]] public_key is empty (run `haldor keygen --site` on the box and "
        "put its key there; or plain = true for a box with [trust] plain_documents = true)"
    )


def mismatch(site: Site, status: dict[str, Any], sent_zone: str | None = None) -> str | None:
    """Why the box's own status says the site is configured wrongly here, or None. A box
    reports the zone of the schedule it applied: ``sent_zone`` (the one the bridge sent
    it last) is the bridge's own echo, not the box's, so a corrected zone is not refused."""
    problems = []
    theirs = status.get("site_key")
    if site.public_key and isinstance(theirs, str) and theirs and theirs != site.public_key:
        problems.append(
            f"public_key {fingerprint(site.public_key)} here, but the box's site_key is {fingerprint(theirs)} "
            "(the box could not open it; take the key from `haldor keygen --site` on the box)"
        )
    zone = status.get("timezone")
    if isinstance(zone, str) and zone and zone not in (site.timezone, sent_zone):
        problems.append(f"timezone {site.timezone} here, but the box's is {zone} (every booking would be shifted)")
    if not problems:
        return None
    return f"{site.id}: not published: " + "; ".join(problems)


def unseen(site: Site) -> str:
    """The warning for a site whose box has never reported: nothing to compare with."""
    return (
        f"warning: {site.id}: no status from its box yet (never connected?): its key and time zone are not checked, "
        "and no answer is waited for"
    )
