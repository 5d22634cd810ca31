"""Mosquitto's dynamic security plugin, spoken to over MQTT: the broker identity of an
enrolled box (a login named after its site, a role allowing exactly its own topics)
made and ended while the broker runs, without a password file to edit or a reload.

Nothing counts as done until the broker said so: every command carries a correlation
id, and a change is reported only once each of its commands came back on
``$CONTROL/dynamic-security/v1/response`` without an error. What a failed change had
made already is removed again before the failure is reported, so a refused enrolment
leaves no login behind.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

from haldor.errors import HaldorError
from haldor.integrator.broker_client import acked_publish, connect
from haldor.mqtt import BrokerOptions
from haldor.records import record

log = logging.getLogger(__name__)

CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSE = f"{CONTROL}/response"
#: the broker's answers to one batch of commands, waited for at most this long
ANSWER_S = 10.0

#: what a box may do, as haldor.acl's %u patterns say (tests/test_enrol.py checks they agree):
#: each topic under ``<prefix>/<site>/``, read or write
SITE_TOPICS = (
    ("read", "schedule"),
    ("read", "schedule/delta"),
    ("read", "cmd"),
    ("write", "cmd/result"),
    ("write", "sync/request"),
    ("write", "events"),
    ("read", "events/resend"),
    ("write", "events/resent"),
    ("write", "status"),
)


class DynsecError(HaldorError):
    """The broker refused a command, or did not answer; the words say which."""


def role_name(site: str) -> str:
    """Each site a role of its own: Mosquitto 2.0.11's plugin reads ``%u`` in a role's topic
    literally (tried: ``t/%u/status`` let user x publish on ``t/%u/status``, not ``t/x/status``),
    so one role with haldor.acl's patterns cannot serve every box."""
    return f"haldor-site-{site}"


def site_acls(prefix: str, site: str) -> list[dict[str, Any]]:
    """The role's ACLs: a box subscribes to and receives what it reads, publishes what it writes."""
    acls: list[dict[str, Any]] = []
    for access, leaf in SITE_TOPICS:
        topic = f"{prefix}/{site}/{leaf}"
        kinds = ("subscribePattern", "publishClientReceive") if access == "read" else ("publishClientSend",)
        acls += [{"acltype": kind, "topic": topic, "allow": True} for kind in kinds]
    return acls


@record
class Answer:
    command: str
    error: str | None


class Dynsec:
    """The fleet's admin login to the plugin (``opts``: the broker, its user name and
    password file). A connection per change: enrolments are rare, and a connection held
    open would be one more thing to watch."""

    def __init__(self, opts: BrokerOptions) -> None:
        self.opts = opts

    def run(self, commands: list[dict[str, Any]]) -> list[Answer]:
        """Send ``commands`` in one message; the broker's answer to each, in order. A
        broker that cannot be reached or does not answer every one raises DynsecError."""
        ids = [uuid.uuid4().hex for _ in commands]
        sent = [{**c, "correlationData": i} for c, i in zip(commands, ids, strict=True)]
        answers: dict[str, Answer] = {}
        done, subscribed = threading.Event(), threading.Event()

        def on_message(c, userdata, msg) -> None:
            try:
                responses = json.loads(msg.payload).get("responses", [])
            except (ValueError, AttributeError):
                return
            for r in responses:
                if isinstance(r, dict) and r.get("correlationData") in ids:
                    answers[r["correlationData"]] = Answer(str(r.get("command")), r.get("error"))
            if len(answers) == len(ids):
                done.set()

        client = self.opts.client("dynsec")
        client.on_message = on_message
        client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        try:
            connect(client, self.opts)
        except HaldorError as exc:
            raise DynsecError(f"dynamic security: {exc}") from None
        try:
            client.subscribe(RESPONSE, qos=1)
            if not subscribed.wait(ANSWER_S):
                raise DynsecError(f"dynamic security: broker {self.opts.host}:{self.opts.port} did not grant {RESPONSE}")
            try:
                acked_publish(client, self.opts, CONTROL, json.dumps({"commands": sent}).encode(), timeout=ANSWER_S)
            except HaldorError as exc:
                raise DynsecError(f"dynamic security: {exc}") from None
            if not done.wait(ANSWER_S):
                raise DynsecError(
                    f"dynamic security: broker {self.opts.host}:{self.opts.port} answered {len(answers)} of "
                    f"{len(ids)} commands within {ANSWER_S:.0f} s (is the plugin loaded, is {self.opts.username!r} its admin?)"
                )
        finally:
            client.disconnect()
            client.loop_stop()
        return [answers[i] for i in ids]

    def create_site_login(self, site: str, password: str) -> None:
        """A role with the site's topics and a client named after the site holding it, or
        nothing at all: what was made before a refusal is deleted again."""
        role = role_name(site)
        steps = [
            ({"command": "createRole", "rolename": role, "acls": site_acls(self.opts.prefix, site)}, "deleteRole"),
            (
                {"command": "createClient", "username": site, "password": password, "roles": [{"rolename": role}]},
                "deleteClient",
            ),
        ]
        made: list[dict[str, Any]] = []
        try:
            for command, undo in steps:
                self._one(command)
                key = "rolename" if undo == "deleteRole" else "username"
                made.append({"command": undo, key: command[key]})
        except DynsecError:
            for undo_command in reversed(made):
                try:
                    self._one(undo_command)
                except DynsecError as exc:  # said in the log; the first failure is the one reported
                    log.error("dynamic security: could not undo %s: %s", undo_command, exc)
            raise

    def delete_site_login(self, site: str) -> None:
        """The site's login and role gone; the broker drops the box's connection at once.
        A login already gone counts as gone (a revocation that failed half-way is done again)."""
        for command in ({"command": "deleteClient", "username": site}, {"command": "deleteRole", "rolename": role_name(site)}):
            try:
                self._one(command)
            except DynsecError as exc:
                if "not found" not in str(exc).lower():
                    raise

    def _one(self, command: dict[str, Any]) -> None:
        answer = self.run([command])[0]
        if answer.error:
            what = command.get("username") or command.get("rolename")
            raise DynsecError(f"dynamic security refused {command['command']} {what}: {answer.error}")
