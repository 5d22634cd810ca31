"""Who is asking: a session in a signed cookie (HttpOnly, SameSite=Strict, Secure
unless the page is served on loopback), a CSRF token in it that every form sends
back, or a name from a reverse proxy that did the municipality's single sign-on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from .operators import Operator, Operators

COOKIE = "haldor_session"
SESSION_S = 8 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    operator: Operator
    csrf: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    def __init__(self, operators: Operators, *, secure: bool, trusted_header: str = "", clock=time.time) -> None:
        self.operators = operators
        self.secure = secure
        self.trusted_header = trusted_header
        self.clock = clock
        self._key = operators.secret("session")

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def cookie_for(self, operator: Operator) -> str:
        """The Set-Cookie value of a new session."""
        body = _b64(json.dumps({"u": operator.name, "exp": self.clock() + SESSION_S, "csrf": secrets.token_urlsafe(24)}).encode())
        flags = "; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if self.secure else "")
        return f"{COOKIE}={body}.{self._sign(body)}; Max-Age={SESSION_S}{flags}"

    def ended(self) -> str:
        return f"{COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if self.secure else "")

    def session(self, headers) -> Session | None:
        """The session of a request, or None. With a trusted header, the proxy's word on
        who it is (the user must exist here, for the role); the CSRF token is then made
        from the name, so forms work alike."""
        if self.trusted_header:
            name = (headers.get(self.trusted_header) or "").strip()
            operator = self.operators.get(name) if name else None
            return Session(operator, self._sign(f"csrf:{name}")) if operator else None
        try:
            jar = SimpleCookie(headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = jar.get(COOKIE)
        if morsel is None or "." not in morsel.value:
            return None
        body, signature = morsel.value.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            doc = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("exp"), (int, float)) or doc["exp"] < self.clock():
            return None
        operator = self.operators.get(str(doc.get("u")))
        if operator is None or self.operators.locked(operator.name):
            return None  # removed or locked out since: the session ends with it
        return Session(operator, str(doc.get("csrf")))
