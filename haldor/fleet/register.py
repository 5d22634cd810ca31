"""The fleet's register of boxes (issue 27): each site an operator created, the one-time
codes that enrol its box, the box's sealing key pinned at enrolment, and its revocation.

A code is shown once and stored only as an HMAC keyed with this fleet's own secret: a
stolen database gives no code away, and another municipality's code (made under
another key) is simply unknown here. A code is valid a day and used once; it is taken
in the same transaction that checks it, so two boxes racing with one code cannot both win.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata
from typing import Any

from haldor.errors import HaldorError
from haldor.protocol import IDENTIFIER, IDENTIFIER_TEXT
from haldor.records import record
from haldor.sql import Database

from .profiles import PROFILES

CODE_VALID_S = 24 * 3600.0
COLUMNS = (
    "site",
    "name",
    "zone",
    "profile",
    "created_at",
    "created_by",
    "enrolled_at",
    "sealing_key",
    "revoked_at",
    "revoked_by",
)


class Refused(HaldorError):
    """An enrolment or a register change refused; ``reason`` names it for texts.py (``enrol.<reason>``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@record
class Site:
    site: str
    name: str
    zone: str
    profile: str
    created_at: float
    created_by: str
    enrolled_at: float | None
    sealing_key: str | None
    revoked_at: float | None
    revoked_by: str | None

    @property
    def state(self) -> str:
        """waiting (for its box), enrolled, revoked"""
        if self.revoked_at is not None:
            return "revoked"
        return "enrolled" if self.enrolled_at is not None else "waiting"


def normal(code: str) -> str:
    """A code as typed: case, spaces and dashes do not matter."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def shown(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


class Register:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._key = self._secret()

    def _secret(self) -> bytes:
        made = secrets.token_hex(32)
        self.db.execute("INSERT INTO register_secret (name, value) VALUES ('codes', ?) ON CONFLICT (name) DO NOTHING", [made])
        row = self.db.one("SELECT value FROM register_secret WHERE name = 'codes'")
        assert row is not None
        return bytes.fromhex(row[0])

    def _hash(self, code: str) -> str:
        return hmac.new(self._key, normal(code).encode(), hashlib.sha256).hexdigest()

    def sites(self) -> list[Site]:
        return [Site(*r) for r in self.db.rows(f"SELECT {', '.join(COLUMNS)} FROM register ORDER BY site")]

    def heard(self) -> dict[str, float]:
        """When the fleet last heard each registered site's box (a status or an event): an
        enrolment the fleet answered is shown as done only once its box is heard after it."""
        rows = self.db.rows(
            "SELECT r.site, s.seen_at FROM register r JOIN sites s ON s.site = r.site WHERE s.seen_at IS NOT NULL"
        )
        return {str(site): float(at) for site, at in rows}

    def get(self, site: str) -> Site | None:
        row = self.db.one(f"SELECT {', '.join(COLUMNS)} FROM register WHERE site = ?", [site])
        return Site(*row) if row else None

    def add(self, site: str, name: str, zone: str, profile: str, by: str, now: float) -> str:
        """A new site and its first code (shown once)."""
        if not IDENTIFIER.fullmatch(site):
            raise Refused("bad_site", f"site id: {IDENTIFIER_TEXT}")
        if profile not in PROFILES:
            raise Refused("bad_profile", f"profile: one of {', '.join(PROFILES)}")
        if not name.strip() or any(unicodedata.category(ch) == "Cc" for ch in name):
            raise Refused("bad_name", "name: required, without control characters")
        with self.db.transaction():
            if self.get(site) is not None:
                raise Refused("site_exists", f"site {site}: already in the register")
            self.db.execute(
                f"INSERT INTO register ({', '.join(COLUMNS[:6])}) VALUES (?, ?, ?, ?, ?, ?)",
                [site, name.strip(), zone, profile, now, by],
            )
            return self._new_code(site, now)

    def new_code(self, site: str, now: float) -> str:
        """Another code for a site whose box is not enrolled (lost, expired, or revoked and replaced)."""
        with self.db.transaction():
            found = self.get(site)
            if found is None:
                raise Refused("unknown_site", f"site {site}: not in the register")
            if found.state == "enrolled":
                raise Refused("site_enrolled", f"site {site}: its box is enrolled; revoke it first")
            return self._new_code(site, now)

    def _new_code(self, site: str, now: float) -> str:
        code = base64.b32encode(secrets.token_bytes(15)).decode()  # 120 bits, 24 characters
        self.db.execute(
            "INSERT INTO enrol_codes (hash, site, made_at, expires_at) VALUES (?, ?, ?, ?)",
            [self._hash(code), site, now, now + CODE_VALID_S],
        )
        return shown(code)

    def take(self, code: str, now: float) -> Site:
        """The site a valid code enrols, the code marked used; else Refused (unknown,
        used, expired, the site's box enrolled already, or made before its box last
        enrolled: a revoked box does not come back with a spare code of its own time)."""
        digest = self._hash(code)
        with self.db.transaction():
            row = self.db.one("SELECT site, made_at, expires_at, used_at FROM enrol_codes WHERE hash = ?", [digest])
            if row is None:
                raise Refused("code_unknown")
            site_id, made_at, expires_at, used_at = row
            if used_at is not None:
                raise Refused("code_used")
            if now >= expires_at:
                raise Refused("code_expired")
            site = self.get(site_id)
            if site is None:
                raise Refused("code_unknown")
            if site.state == "enrolled":
                raise Refused("site_enrolled")
            if site.enrolled_at is not None and made_at <= site.enrolled_at:  # a spare code of the revoked box
                raise Refused("code_void")
            # taken only if still unused: on PostgreSQL another transaction may have taken it since the SELECT
            taken = self.db.execute("UPDATE enrol_codes SET used_at = ? WHERE hash = ? AND used_at IS NULL", [now, digest])
            if taken.rowcount != 1:
                raise Refused("code_used")
            return site

    def give_back(self, code: str) -> None:
        """A code taken for an enrolment that failed after all: usable again."""
        self.db.execute("UPDATE enrol_codes SET used_at = NULL WHERE hash = ?", [self._hash(code)])

    def enrolled(self, site: str, sealing_key: str, now: float) -> None:
        self.db.execute(
            "UPDATE register SET enrolled_at = ?, sealing_key = ?, revoked_at = NULL, revoked_by = NULL WHERE site = ?",
            [now, sealing_key, site],
        )

    def revoked(self, site: str, by: str, now: float) -> None:
        self.db.execute("UPDATE register SET revoked_at = ?, revoked_by = ? WHERE site = ?", [now, by, site])

    def published(self) -> list[dict[str, Any]]:
        """What the bridge may know: each enrolled or revoked site's state and pinned sealing key."""
        return [
            {"site": s.site, "name": s.name, "state": s.state, "public_key": s.sealing_key if s.state == "enrolled" else None}
            for s in self.sites()
            if s.state != "waiting"
        ]
