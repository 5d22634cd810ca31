"""Who is asking: a session in a signed cookie (HttpOnly, SameSite=Strict, Secure
when the page's public address is https), a CSRF token in it that every form sends
back, or a name from a reverse proxy on this machine that did the municipality's
single sign-on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from haldor.records import record

from .login_limits import from_proxy
from .operators import Operator, Operators

COOKIE = "haldor_session"
SESSION_S = 8 * 3600


@record
class Session:
    operator: Operator
    csrf: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def same(a: str, b: str) -> bool:
    """Constant-time equality of two texts, whatever characters they hold."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def cookie_value(header: str | None, name: str = COOKIE) -> str | None:
    """One cookie's value, read by hand: another site's odd cookie on the same host name
    (which stops Python's SimpleCookie) must not log anyone out."""
    for part in (header or "").split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            return value.strip().strip('"')
    return None


class Sessions:
    def __init__(self, operators: Operators, *, secure: bool, trusted_header: str = "", clock=time.time) -> None:
        self.operators = operators
        self.secure = secure
        self.trusted_header = trusted_header
        self.clock = clock
        self._key = operators.secret("session")

    @property
    def passwords(self) -> bool:
        """Logins with a password here (not with a proxy's single sign-on)."""
        return not self.trusted_header

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def cookie_for(self, operator: Operator) -> str:
        """The Set-Cookie value of a new session."""
        doc = {"u": operator.name, "g": operator.generation, "exp": self.clock() + SESSION_S, "csrf": secrets.token_urlsafe(24)}
        body = _b64(json.dumps(doc).encode())
        flags = "; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if self.secure else "")
        return f"{COOKIE}={body}.{self._sign(body)}; Max-Age={SESSION_S}{flags}"

    def ended(self) -> str:
        return f"{COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if self.secure else "")

    def session(self, headers, peer: str = "127.0.0.1") -> Session | None:
        """The session of a request, or None. With a trusted header, the proxy's word on
        who it is, taken only from a proxy on this machine and only when given once (the
        user must exist here, for the role); the CSRF token is then made from the name."""
        if self.trusted_header:
            names = headers.get_all(self.trusted_header) or []
            if len(names) != 1 or not from_proxy(peer):
                return None
            operator = self.operators.get(names[0].strip()) if names[0].strip() else None
            return Session(operator, self._sign(f"csrf:{operator.name}:{operator.generation}")) if operator else None
        value = cookie_value(headers.get("Cookie"))
        if not value or "." not in value:
            return None
        body, signature = value.rsplit(".", 1)
        if not same(signature, self._sign(body)):
            return None
        try:
            doc = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("exp"), (int, float)) or doc["exp"] < self.clock():
            return None
        operator = self.operators.get(str(doc.get("u")))
        if operator is None or not same(str(doc.get("g", "")), operator.generation):
            return None  # removed, added again, or logged out since: the session is over
        return Session(operator, str(doc.get("csrf")))
