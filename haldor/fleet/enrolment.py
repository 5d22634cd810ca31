"""A box enrolled in one request (issue 27): it sends its code and the public half of its
own sealing key; the fleet takes the code, makes the box's broker login in the dynamic
security plugin (each command confirmed by the broker), pins the key in the register,
and answers with everything the box's configuration needs. A failure at any step
undoes the steps before it: the login is deleted again and the code can be used again."""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from dataclasses import field
from pathlib import Path
from typing import Any

from haldor.access import sealing
from haldor.errors import HaldorError
from haldor.records import record

from .dynsec import Dynsec, DynsecError
from .profiles import PROFILES
from .register import Refused, Register, Site

log = logging.getLogger(__name__)


@record(kw_only=True)
class Enrolment:
    """``[enrolment]`` of fleet.toml: the broker as the boxes reach it, the dynamic
    security admin the fleet logs in as, and the keys every box trusts."""

    broker_host: str = ""
    broker_port: int = 8883
    tls: bool = True
    #: the CA the boxes check the broker's certificate against (its text goes to each box)
    ca_file: str = ""
    transport: str = "tcp"
    admin_username: str = ""
    admin_password_file: str = ""
    schedule_keys: dict[str, str] = field(default_factory=dict)
    command_keys: dict[str, str] = field(default_factory=dict)
    #: the bearer token the bridge shows for ``GET /register.json`` (empty: not served)
    register_token: str = ""


def sealing_key(text: Any) -> str:
    """A box's public X25519 key as sent, checked: base64 of 32 bytes, and a key the bridge
    can seal to (a low-order one would fail every bridge run that reaches its site)."""
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise Refused("bad_request", "sealing_key: base64 of a 32-byte X25519 public key")
    encoded = base64.b64encode(raw).decode()
    try:
        sealing.load_public(encoded)
    except ValueError as exc:
        raise Refused("bad_request", f"sealing_key: {exc}") from None
    return encoded


class Enroller:
    def __init__(self, register: Register, dynsec: Dynsec, settings: Enrolment, prefix: str) -> None:
        self.register, self.dynsec, self.settings, self.prefix = register, dynsec, settings, prefix
        self.ca_text = Path(settings.ca_file).read_text() if settings.ca_file else ""

    def enrol(self, request: Any, now: float) -> dict[str, Any]:
        """The box's configuration; Refused (the box's fault) or HaldorError (the broker's)."""
        if not isinstance(request, dict) or not isinstance(request.get("code"), str):
            raise Refused("bad_request", "a JSON object with code and sealing_key")
        key = sealing_key(request.get("sealing_key"))
        code = request["code"]
        site = self.register.take(code, now)
        password = secrets.token_urlsafe(24)
        try:
            self.dynsec.create_site_login(site.site, password)
        except DynsecError:
            self.register.give_back(code)
            raise
        try:
            self.register.enrolled(site.site, key, now)
        except Exception:
            log.exception("enrolment of %s: the register could not be written; its broker login is deleted again", site.site)
            self._undo(site.site, code)
            raise HaldorError(f"enrolment of {site.site}: the fleet's database did not take it") from None
        log.info("enrolled %s (%s)", site.site, site.name)
        return self.configuration(site, password)

    def _undo(self, site: str, code: str) -> None:
        try:
            self.dynsec.delete_site_login(site)
        except DynsecError as exc:
            log.error("enrolment of %s: its broker login could not be deleted again: %s", site, exc)
        self.register.give_back(code)

    def configuration(self, site: Site, password: str) -> dict[str, Any]:
        s = self.settings
        profile = PROFILES[site.profile]
        return {
            "site": {"id": site.site, "name": site.name, "timezone": site.zone},
            "mqtt": {
                "host": s.broker_host,
                "port": s.broker_port,
                "tls": s.tls,
                "transport": s.transport,
                "ca_pem": self.ca_text,
                "username": site.site,
                "password": password,
                "topic_prefix": self.prefix,
            },
            "trust": {"keys": dict(s.schedule_keys), "command_keys": dict(s.command_keys)},
            "doors": [dict(d) for d in profile.doors],
            "readers": [dict(r) for r in profile.readers],
        }

    def revoke(self, site: str, by: str, now: float) -> None:
        """The site's broker login ended (the broker confirmed it and dropped the box), then the register marked."""
        found = self.register.get(site)
        if found is None:
            raise Refused("unknown_site", f"site {site}: not in the register")
        if found.state != "enrolled":
            raise Refused("not_enrolled", f"site {site}: no enrolled box to revoke")
        self.dynsec.delete_site_login(site)
        self.register.revoked(site, by, now)
        log.info("revoked %s by %s", site, by)
