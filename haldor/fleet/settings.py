"""The fleet's own configuration (``haldor fleet --fleet-config fleet.toml``): which alarms
are worth waking someone for, and where alerts go (webhooks, e-mail). A fault stops
start-up with one line naming the key."""

from __future__ import annotations

import base64
import binascii
from dataclasses import fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from haldor import toml_file
from haldor.records import record
from haldor.texts import LANGUAGES

from .enrolment import Enrolment

#: what a negative number of minutes or events says
_NO_ALERT = "must not be negative (0: no alert)"


def _alert_after(default: int) -> Any:
    return toml_file.key(default, low=0, problem=_NO_ALERT)


@record
class AlertRules:
    door_forced: bool = True
    #: a door open (after door.held_open) this many minutes; 0: no alert
    door_held_open_min: int = _alert_after(10)
    reader_fault: bool = True
    storage_fault: bool = True
    #: a site offline or silent this many minutes; 0: no alert
    offline_min: int = _alert_after(15)
    #: events waiting in a box's outbox; 0: no alert
    outbox_backlog: int = _alert_after(10_000)
    #: a reader locked out for guessing (access.guessing) within this many minutes; 0: no alert
    access_guessing_min: int = _alert_after(60)
    #: the fleet itself has not heard the broker this many minutes; 0: no alert
    broker_lost_min: int = _alert_after(2)
    #: a box refused the last schedule sent to it (until one is applied)
    schedule_refused: bool = True
    #: a box refused or could not carry out a command, this many minutes after; 0: no alert
    command_failed_min: int = _alert_after(60)
    language: str = toml_file.key("da", choices=LANGUAGES)


@record(kw_only=True)
class _AlertsTable(AlertRules):
    """``[alerts]``: the rules, and how often they are checked."""

    every_s: float = toml_file.key(5.0, low=1, high=3600, problem="1 to 3600 seconds")


@record
class Webhook:
    url: str
    #: sent as "Authorization: Bearer <token>", so the receiver knows the alert is ours
    token: str = ""


@record(kw_only=True)
class _WebhookTable:
    """One ``[[webhooks]]`` table: the token is read from its file."""

    url: str = ""
    token_file: str = ""


@record(kw_only=True)
class Email:
    """``[email]``: the section as it is written, its files then read from the file's folder."""

    host: str = ""
    port: int = toml_file.key(587, low=1, high=65535, problem="must be 1-65535")
    starttls: bool = True
    ca_file: str = ""
    username: str = ""
    password_file: str = ""
    sender: str = ""
    to: tuple[str, ...] = ()


@record
class FleetSettings:
    path: str = ""
    alerts: AlertRules = AlertRules()
    webhooks: tuple[Webhook, ...] = ()
    email: Email | None = None
    #: checked every this many seconds
    every_s: float = 5.0
    #: boxes enrol themselves (issue 27); None: not offered
    enrolment: Enrolment | None = None

    @property
    def alerting(self) -> bool:
        return bool(self.webhooks or self.email)


def load(path: str | Path) -> FleetSettings:
    return parse(toml_file.read(path), str(path))


def parse(raw: dict[str, Any], path: str) -> FleetSettings:
    c = toml_file.Checker(path, toml_file.TYPE_NAMES)
    c.only(raw, ("alerts", "webhooks", "email", "enrolment"))
    a = c.section(raw, "alerts", _AlertsTable)
    rules = AlertRules(**{f.name: getattr(a, f.name) for f in fields(AlertRules)})
    webhooks = tuple(_webhook(c, w, i) for i, w in enumerate(c.tables(raw, "webhooks", _WebhookTable)))
    email = _email(c, c.section(raw, "email", Email)) if "email" in raw else None
    enrolment = _enrolment(c, c.section(raw, "enrolment", _EnrolmentTable)) if "enrolment" in raw else None
    return FleetSettings(path=path, alerts=rules, webhooks=webhooks, email=email, every_s=a.every_s, enrolment=enrolment)


@record(kw_only=True)
class _EnrolmentTable:
    """``[enrolment]`` as written (see :class:`Enrolment`)."""

    broker_host: str = ""
    broker_port: int = toml_file.key(8883, low=1, high=65535, problem="must be 1-65535")
    tls: bool = True
    ca_file: str = ""
    transport: str = toml_file.key("tcp", choices=("tcp", "websockets"))
    admin_username: str = ""
    admin_password_file: str = ""
    schedule_keys: dict[str, str] = toml_file.key({})
    command_keys: dict[str, str] = toml_file.key({})
    register_token_file: str = ""


def _enrolment(c: toml_file.Checker, e: _EnrolmentTable) -> Enrolment:
    """The boxes' broker and keys, checked: a box enrolled with a mistake here could not connect."""
    if not e.broker_host:
        raise c.fail("enrolment.broker_host", "required: the broker's address as the boxes reach it")
    if not e.admin_username or not e.admin_password_file:
        raise c.fail(
            "enrolment.admin_username" if not e.admin_username else "enrolment.admin_password_file",
            "required: the dynamic security plugin's admin login (mosquitto_ctrl dynsec init)",
        )
    if not e.schedule_keys:
        raise c.fail("enrolment.schedule_keys", "required: the keys that sign the boxes' schedules (kid = base64)")
    ca_file = c.resolve(e.ca_file) if e.ca_file else ""
    password_file = c.resolve(e.admin_password_file)
    for name, path in (("ca_file", ca_file), ("admin_password_file", password_file)):
        if path and not Path(path).is_file():
            raise c.fail(f"enrolment.{name}", f"cannot read {path}")
    for table in ("schedule_keys", "command_keys"):
        for kid, text in getattr(e, table).items():
            if len(_b64(text)) != 32:
                raise c.fail(f"enrolment.{table}.{kid}", "not a base64 Ed25519 public key (32 bytes)")
    token = ""
    if e.register_token_file:
        try:
            token = Path(c.resolve(e.register_token_file)).read_text().strip()
        except OSError as exc:
            raise c.fail("enrolment.register_token_file", f"cannot read: {exc.strerror}") from None
        if len(token) < 16 or any(ch.isspace() for ch in token):
            raise c.fail("enrolment.register_token_file", "one line of at least 16 characters: the bridge's token")
    return Enrolment(
        broker_host=e.broker_host,
        broker_port=e.broker_port,
        tls=e.tls,
        ca_file=ca_file,
        transport=e.transport,
        admin_username=e.admin_username,
        admin_password_file=password_file,
        schedule_keys=dict(e.schedule_keys),
        command_keys=dict(e.command_keys),
        register_token=token,
    )


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _webhook(c: toml_file.Checker, w: _WebhookTable, i: int) -> Webhook:
    url = urlsplit(w.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise c.fail(f"webhooks[{i}].url", "required: an http(s) URL")
    token = ""
    if w.token_file:
        try:
            token = Path(c.resolve(w.token_file)).read_text().strip()
        except OSError as exc:
            raise c.fail(f"webhooks[{i}].token_file", f"cannot read: {exc.strerror}") from None
        if not token or any(ch in token for ch in "\r\n"):
            raise c.fail(f"webhooks[{i}].token_file", "one line: the token the receiver expects")
    return Webhook(w.url, token)


def _email(c: toml_file.Checker, e: Email) -> Email:
    if not e.host:
        raise c.fail("email.host", "required: the SMTP server")
    if "@" not in e.sender:
        raise c.fail("email.sender", "required: the From address")
    if not e.to or not all("@" in x for x in e.to):
        raise c.fail("email.to", "required: a list of addresses")
    if e.username and not e.password_file:
        raise c.fail("email.password_file", "required with a username: a file holding the password")
    return replace(
        e,
        ca_file=c.resolve(e.ca_file) if e.ca_file else "",
        password_file=c.resolve(e.password_file) if e.password_file else "",
    )
