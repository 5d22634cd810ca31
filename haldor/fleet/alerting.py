"""The fleet's alerting: every few seconds the rules are checked against the database
(so it sees what every consumer wrote), incidents opened and resolved, and their
messages sent by webhook (a JSON POST) and e-mail (SMTP with STARTTLS). A message that
fails is tried again with a growing pause and never dropped; the page and /metrics
show what waits. Run it in one fleet process (the one given ``--fleet-config``)."""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from haldor.protocol import Schema
from haldor.texts import t

from . import alerts
from .formats import iso
from .incidents import Delivery, IncidentBook
from .report import site_names, site_rows
from .settings import Email, FleetSettings
from .store import FleetStore

log = logging.getLogger(__name__)
#: door events older than this do not open an incident (a door forced last month and never closed is a box's problem)
DOOR_WINDOW_S = 7 * 24 * 3600
SEND_TIMEOUT_S = 10.0


class AlertWorker:
    def __init__(self, settings: FleetSettings, store: FleetStore, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.book = IncidentBook(store.db)
        self.clock = clock
        self.channels = [f"webhook:{i}" for i in range(len(settings.webhooks))] + (["email"] if settings.email else [])
        #: (channel kind, outcome) -> count, for /metrics
        self.deliveries: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-alerts", daemon=True)
        self._client = httpx.Client(timeout=SEND_TIMEOUT_S, follow_redirects=False)
        #: since when the fleet has not heard the broker, and before when a status says nothing
        #: about now (the consumer of this process tells: :meth:`FleetConsumer.unsure_before`)
        self.blind: Callable[[], float | None] = lambda: None
        self.unsure: Callable[[float], float | None] = lambda now: self.blind()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(SEND_TIMEOUT_S + 5)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(self.clock())
            except Exception:  # the database or a bug: the next round tries again
                log.exception("alerting round failed")
            self._stop.wait(self.settings.every_s)

    def run_once(self, now: float) -> None:
        sites = self.store.sites()
        rules = self.settings.alerts
        notices = self.store.guessing(now - rules.access_guessing_min * 60) if rules.access_guessing_min else []
        if rules.schedule_refused:
            notices += self.store.refused_schedules(now - DOOR_WINDOW_S)
        if rules.command_failed_min:
            notices += self.store.failed_commands(now - rules.command_failed_min * 60)
        blind_since, unsure = self.blind(), self.unsure(now)
        found = alerts.conditions(sites, self.store.door_states(now - DOOR_WINDOW_S), now, rules, notices, unsure)
        if unsure is not None:  # boxes not heard since: an offline one stays as it was, none opens or resolves
            unknown = {s["site"] for s in site_rows(sites, now, unsure) if s["unknown"]}
            kept = self.book.open_incidents().items()
            found |= {k: alerts.Condition(**alerts.fields(i)) for k, i in kept if i["kind"] == "offline" and i["site"] in unknown}
        if blind_since is not None and rules.broker_lost_min and now - blind_since >= rules.broker_lost_min * 60:
            found["broker"] = alerts.Condition("broker", "broker", "", None, blind_since)
        opened, resolved = self.book.update(found, self.channels, now)
        if opened or resolved:
            log.info("alerts: %d opened, %d resolved", opened, resolved)
        names = {s["site"]: s for s in sites}
        for delivery in self.book.due(now):
            if self._stop.is_set():
                return
            if not self.book.claim(delivery, now):
                continue  # another fleet process took it
            kind = delivery.channel.split(":")[0]
            try:
                self._send(delivery, names.get(delivery.incident["site"], {}))
            except Exception as exc:  # any failure: kept, tried again later
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "alert %s to %s not delivered (attempt %d): %s",
                    delivery.phase,
                    delivery.channel,
                    delivery.attempts + 1,
                    error,
                )
                self.book.failed(delivery, error, now)
                self.deliveries[kind, "failed"] += 1
            else:
                self.book.sent(delivery.id, now)
                self.deliveries[kind, "sent"] += 1

    def message(self, delivery: Delivery, site: dict[str, Any]) -> dict[str, Any]:
        """What a receiver gets: the facts with ids and names, and one line of text."""
        i = delivery.incident
        lang = self.settings.alerts.language
        names = site_names(site.get("names"))
        subject_names = names["doors"] if i["kind"].startswith("door.") else {}
        site_name = site.get("name") or i["site"] or t("fleet.title", lang)  # no site: the fleet's own incident
        subject_name = subject_names.get(i["subject"]) or i["subject"]
        zone, page_zone = site.get("timezone"), "Europe/Copenhagen"
        return {
            "schema": Schema.ALERT.value,
            "incident": i["id"],
            "state": delivery.phase,
            "kind": i["kind"],
            "site": i["site"] or None,
            "site_name": site_name,
            "subject": i["subject"],
            "subject_name": subject_name,
            "detail": i["detail"] or None,
            "since": iso(i["since"] if i["since"] is not None else i["opened_at"], zone, page_zone),
            "resolved_at": iso(i["resolved_at"], zone, page_zone) or None,
            "text": alerts.describe(i["kind"], site_name, subject_name, i["detail"] or "", lang),
        }

    def _send(self, delivery: Delivery, site: dict[str, Any]) -> None:
        doc = self.message(delivery, site)
        if delivery.channel.startswith("webhook:"):
            hook = self.settings.webhooks[int(delivery.channel.split(":")[1])]
            headers = {"Authorization": f"Bearer {hook.token}"} if hook.token else {}
            reply = self._client.post(hook.url, json=doc, headers=headers)
            reply.raise_for_status()
        elif delivery.channel == "email" and self.settings.email is not None:
            send_email(self.settings.email, doc, self.settings.alerts.language)
        else:
            raise ValueError(f"no channel {delivery.channel!r} in {self.settings.path}")


def send_email(e: Email, doc: dict[str, Any], lang: str) -> None:
    """One message over SMTP; STARTTLS unless switched off (a relay on the same machine)."""
    head = t("alert.open" if doc["state"] == "open" else "alert.resolved", lang)
    msg = EmailMessage()
    msg["Subject"] = f"[Haldor] {head}: {doc['text']}"
    msg["From"] = e.sender
    msg["To"] = ", ".join(e.to)
    lines = [doc["text"], "", f"{t('alert.since', lang)}: {doc['since']}"]
    if doc["resolved_at"]:
        lines.append(f"{t('alert.resolved', lang)}: {doc['resolved_at']}")
    lines += ["", json.dumps(doc, ensure_ascii=False, indent=2)]
    msg.set_content("\n".join(lines))
    with smtplib.SMTP(e.host, e.port, timeout=SEND_TIMEOUT_S) as smtp:
        if e.starttls:
            context = ssl.create_default_context(cafile=e.ca_file or None)
            smtp.starttls(context=context)
        if e.username:
            smtp.login(e.username, Path(e.password_file).read_text().strip())
        smtp.send_message(msg)
