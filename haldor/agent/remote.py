"""The broker's side of the loop: schedule documents and commands that come by network.

Every message is acknowledged once handled, whatever the outcome, so the broker never
delivers it again: a schedule once applied or refused, a command once what it did is
stored and its result sent. A crash before that has it delivered again, and the poison
guard (:mod:`inflight`) refuses it if it keeps doing so. Schedules go to the worker
process; commands (PROTOCOL 4) are answered here, each with one result and one event.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haldor.access import commands, envelope, resend
from haldor.access.controller import Controller, Emit
from haldor.access.envelope import open_envelope
from haldor.config import Config
from haldor.errors import DocumentError, StoreError
from haldor.protocol import Action, Event
from haldor.store import Store
from haldor.store.journal import Batch

from . import inflight, refused
from .budget import ReportBudget
from .link import MqttLink, Received
from .messages import Acked, AnyVersion, HttpSchedule, Publish, Remembered, ScheduleDone, TimeKnown
from .periodic import Once
from .site import policy_of
from .storage_watch import StorageWatch
from .timekeeping import Timekeeper

if TYPE_CHECKING:  # imported when the first document comes (multiprocessing: 14 ms at every start)
    from .schedule_worker import ScheduleWorker
    from .updating import Updating

log = logging.getLogger(__name__)

#: a schedule the store could not take is asked for again after this long
RESYNC_AFTER_FAILURE_S = 300.0


class Remote:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        controller: Controller,
        link: MqttLink | None,
        storage: StorageWatch,
        time: Timekeeper,
        unwritten: list[Batch],
        post: Callable[[Any], None],
        clock: Callable[[], float],
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.controller = controller
        self.link = link
        self.storage = storage
        self.time = time
        #: the loop's batches not yet committed (what the store does not show yet)
        self._unwritten = unwritten
        self._post = post
        self._clock = clock
        self.guard = inflight.InflightGuard(Path(cfg.data_dir) / "inflight")
        self._worker: ScheduleWorker | None = None
        #: how many refusals of unreadable messages are reported one by one, a kind each
        self._refusals = {"cmd": ReportBudget(), "schedule": ReportBudget()}
        #: a schedule that failed is asked for again
        self.resync = Once()
        #: the latest schedule document the store could not take, tried again (:mod:`.refused`)
        self.kept: refused.Kept | None = None
        #: the ``update`` command's side (set by the agent)
        self.updating: Updating | None = None
        # a key that signs schedules does not sign commands, once the site has command keys
        self.command_keys = cfg.command_keys or cfg.trusted_keys
        if cfg.trust.require_signature and cfg.trusted_keys and not cfg.command_keys:
            log.warning("trust.command_keys is empty: the schedule keys also sign commands; give commands a key of their own")

    def http_schedule(self, message: HttpSchedule, now: float) -> list:
        self._apply(message.payload, None)
        return []

    def _apply(self, document: bytes, message: Received | None) -> None:
        """To the worker; its outcome comes back to the loop (:meth:`schedule_done`)."""
        self.worker().submit(document, lambda outcome: self._post(ScheduleDone(outcome, message, document)))

    def tick(self, now: float) -> list:
        if self.resync.due(now):
            self.request_sync()
        if self.kept is not None and refused.due(
            self.kept, now, free=self.storage.free, disk_low=self.storage.disk_low is not None
        ):
            log.info("the schedule document the store could not take is tried again (attempt %d)", self.kept.attempts + 1)
            self.kept = refused.trying(self.kept)
            self._apply(self.kept.document, None)
        return self.unreported_refusals(now)

    def close(self, clean: bool) -> None:
        if self._worker is not None:
            self._worker.close()
        if clean:  # a clean stop is no crash: what was being handled is not held against it
            self.guard.forget_unfinished()

    def received(self, message: Received, now: float) -> list:
        """A document from the broker (acknowledged as the module says)."""
        topics = self.link.topics if self.link else None
        key = inflight.digest(message.topic, message.payload)
        schedule = bool(topics and message.topic in (topics.schedule, topics.delta))
        command = bool(topics and message.topic == topics.cmd)
        if (schedule or command) and not self.guard.begin(key):
            self._ack(message, key)
            if not self.guard.first_refusal(key):
                return []
            reason = "poison: the agent stopped while handling this message before; refused"
            if schedule:
                return [Emit(Event.SYNC_REJECTED, reason=reason)]
            return self._unreadable_command(message.payload, "poison", now)
        if schedule and not message.payload:  # how MQTT clears a retained message: nothing to apply
            self._ack(message, key)
            return []
        if schedule:
            self._apply(message.payload, message)  # beside the loop; acknowledged when it is done (ScheduleDone)
            return []
        if topics and message.topic == topics.resend:
            self.ack(message)
            return self._resend(message.payload, now)
        effects: list = []
        if command:
            try:
                effects = self._command(message.payload, now)
            except (sqlite3.Error, StoreError):
                raise  # the store, not the command: handle() reports it
            except Exception as exc:  # a command that trips the code is still only a bad command
                log.exception("command refused: it broke the parser")
                effects = self._unreadable_command(message.payload, f"malformed command ({type(exc).__name__})", now)
        else:
            log.warning("message on unexpected topic %s ignored", message.topic)
        self.guard.end(key)  # handled without a crash
        if not effects:  # nothing to store or to answer (a flood's refusal, an unexpected topic)
            self.ack(message)
            return []
        # acknowledged once what it did is stored and its result sent (Agent._stored): a crash or a
        # lost link before that has the broker deliver it again, and it is answered as before
        return effects + [Acked(message)]

    def _resend(self, payload: bytes, now: float) -> list:
        """The fleet asks for events again: handed to the outbox pump (which answers), or
        refused whole with the reason, on the same answer topic."""
        request: resend.ResendRequest | None = None
        try:
            request = resend.parse_request(payload)
            if request.site != self.cfg.site_id:
                raise DocumentError(f"site: for another site ({request.site})")
        except DocumentError as exc:
            log.warning("request to send events again refused: %s", exc)
            if self.link is not None:
                answer = resend.answer(request, self.cfg.site_id, self.store.iso(now), error=str(exc))
                self.link.publish(self.link.topics.resent, answer)
            return []
        if self.link is not None:
            self.link.resend(request)
        return []

    def stored(self, after: list) -> None:
        """A batch is committed: the results it carries go out, and only then is the
        message that caused them acknowledged (else the broker delivers it again, and the
        same result is sent then)."""
        sent = True
        for e in after:
            if isinstance(e, Publish) and self.link is not None:
                sent = self.link.publish(getattr(self.link.topics, e.topic), e.doc) and sent
        for e in after:
            if isinstance(e, Acked):
                if sent:
                    self.ack(e.message)
                else:
                    log.info("message on %s not acknowledged: its result could not be sent", e.message.topic)

    def ack(self, message: Received) -> None:
        """The broker may forget the message."""
        if self.link is not None:
            self.link.ack(message)

    def _ack(self, message: Received, key: str | None = None) -> None:
        self.ack(message)
        self.guard.end(key or inflight.digest(message.topic, message.payload))

    def worker(self) -> ScheduleWorker:
        if self._worker is None:
            from .schedule_worker import ScheduleWorker, StoreOpening  # not before the doors answer

            cfg = self.cfg
            self._worker = ScheduleWorker(
                StoreOpening(
                    str(cfg.data_dir),
                    cfg.site_id,
                    cfg.site.timezone,
                    policy_of(cfg),
                    dict(cfg.trust.keys),
                    cfg.trust.require_signature,
                    tuple(d.id for d in cfg.doors),
                    envelope.MAX_DOCUMENT_BYTES,
                    self.store.secret_fingerprint,
                    cfg.trust.plain_documents,
                ),
                self._clock,
            )
        return self._worker

    def schedule_done(self, done: ScheduleDone, now: float) -> list:
        """The worker's outcome, reported here: an event for every outcome but an ignored one."""
        outcome = done.outcome
        if outcome.damaged:  # not acknowledged: the broker delivers it again to the recovered store
            return self.storage.found_damage(outcome.damaged)
        effects: list = []
        if outcome.status == "applied":
            self.storage.rehash_needed = self.store.rehash_needed
            self.storage.recovered = None  # what the recovery lost is replaced
        free = self.storage.free_now() if outcome.retry else None
        self.kept = refused.after(self.kept, done.document, status=outcome.status, retry=outcome.retry, now=now, free=free)
        if outcome.status == "gap":
            self.request_sync()
        elif outcome.status == "failed":  # the store could not take it: ask again later
            effects += self.storage.check_files()  # deleted under the agent, maybe: put right at once
            if effects or outcome.again:
                self.request_sync()
            elif self.resync.next_at is None:
                self.resync.at(now + RESYNC_AFTER_FAILURE_S)
        if done.message is not None:
            self._ack(done.message)
        if outcome.status in ("rejected", "failed", "gap") and not self._refusals["schedule"].allow(now):
            return effects
        event = outcome.event()
        return effects + ([] if event is None else [Emit(event["type"], reason=event["reason"], extra=event.get("extra"))])

    def request_sync(self) -> None:
        if self.link is not None:
            self.link.publish(self.link.topics.sync_request, {"site": self.cfg.site_id, "have_version": self.store.version})
            log.info("asked for a schedule snapshot (have version %s)", self.store.version)

    def _command(self, payload: bytes, now: float) -> list:
        """PROTOCOL 4: every command, done or refused, gets one result and one event."""
        try:
            cmd = commands.parse_command(
                open_envelope(payload, self.command_keys, self.cfg.trust.require_signature, max_bytes=commands.MAX_COMMAND_BYTES)
            )
        except DocumentError as exc:
            return self._unreadable_command(payload, str(exc), now)
        digest = hashlib.sha256(payload).hexdigest()
        if cmd.site == self.cfg.site_id:
            answered = self._command_answered(cmd.id)
            if answered is not None and answered.get("digest") == digest and answered.get("result") is None:
                return []  # an update under way: answered by the release, or after its rollback
            if answered is not None and answered.get("digest") == digest:
                # the same message delivered again: its result may never have reached the broker
                log.info("command %s delivered again: its result is sent again", cmd.id)
                return [Publish("cmd_result", answered["result"])]
        # signed for this box: the real time is at least its issued_at
        known = [TimeKnown(cmd.issued_at)] if cmd.site == self.cfg.site_id and self.time.signed(cmd.issued_at) else []
        why = commands.refusal(
            cmd,
            site=self.cfg.site_id,
            doors=self.controller.doors,
            now=now,
            seen=self._command_seen(cmd.id),
            clock_trusted=self.time.trusted,
            floor=self.time.floor(),
        )
        effects = known + self._command_effects(cmd, why, now)
        result = next((e.doc for e in effects if isinstance(e, Publish) and e.topic == "cmd_result"), None)
        if cmd.site == self.cfg.site_id and (result is not None or (why is None and cmd.action == Action.UPDATE)):
            effects.insert(0, Remembered(cmd.id, cmd.expires_at, {"digest": digest, "result": result}))
        return effects

    def _command_effects(self, cmd: commands.CommandDoc, why: str | None, now: float) -> list:
        effects: list = []
        if why is not None:
            if not self._refusals["cmd"].allow(now):  # a signed command replayed by the thousand
                return []
            return self.command_result(cmd.id, cmd.action, cmd.door, why, now, cmd)
        log.info("command %s: %s %s by %s (%s)", cmd.id, cmd.action, cmd.door or "", cmd.by, cmd.reason or "no reason given")
        if cmd.action == Action.UPDATE and self.updating is not None:
            return self.updating.order(cmd, now)
        if cmd.action == "resync":
            self.request_sync()
        elif cmd.action == "reset_version":
            # the mark is stored before the request for a snapshot goes out
            effects += [AnyVersion(), Publish("sync_request", {"site": self.cfg.site_id, "have_version": None})]
            log.warning("reset_version: the next snapshot is applied whatever its version")
        else:
            effects += self.controller.command(now, cmd.action, cmd.door, cmd.duration_s)
        return effects + self.command_result(cmd.id, cmd.action, cmd.door, None, now, cmd)

    def _remembered(self, command_id: str) -> Remembered | None:
        """A command id kept by a write still on its way to the store."""
        return next((e for b in self._unwritten for e in b.after if isinstance(e, Remembered) and e.command == command_id), None)

    def _command_answered(self, command_id: str) -> dict | None:
        """What a command was answered with (``digest``, ``result``): stored, or on its way to the store."""
        remembered = self._remembered(command_id)
        return remembered.result if remembered is not None else self.store.commands.result(command_id)

    def _command_seen(self, command_id: str) -> bool:
        """Seen before: stored, or on its way to the store."""
        return self._remembered(command_id) is not None or self.store.commands.seen(command_id)

    def _unreadable_command(self, payload: bytes, error: str, now: float) -> list:
        """A command that cannot be read or trusted: answered, unless a flood of them is (budget)."""
        if not self._refusals["cmd"].allow(now):
            return []
        return self.command_result(commands.claimed_id(payload), None, None, error, now)

    def unreported_refusals(self, now: float) -> list:
        """Once a minute is over: how many refusals a flood had, in one event for each kind."""
        effects: list = []
        if n := self._refusals["cmd"].overdue(now):
            why = f"{n} more unreadable commands in a minute, refused without a result each (a flood?)"
            log.warning(why)
            effects.append(
                Emit(Event.COMMAND_RESULT, reason=why, extra={"command": None, "action": None, "ok": False, "unreported": n})
            )
        if n := self._refusals["schedule"].overdue(now):
            why = f"{n} more schedule documents in a minute, rejected without an event each (a flood?)"
            log.warning(why)
            effects.append(Emit(Event.SYNC_REJECTED, reason=why, extra={"unreported": n}))
        return effects

    def command_result(
        self,
        cmd_id: str | None,
        action: str | None,
        door: str | None,
        error: str | None,
        now: float,
        cmd: commands.CommandDoc | None = None,
    ) -> list:
        if error is not None:
            log.warning("command %s refused: %s", cmd_id, error)
        result = {"id": cmd_id, "ok": error is None, "error": error, "at": self.store.iso(now)}
        # who asked and why, for the audit trail (a refused command's claims are echoed, not trusted)
        extra = {"command": cmd_id, "action": action, "ok": error is None}
        if cmd is not None:
            extra |= {"by": cmd.by, "why": cmd.reason}
        # the result goes out after the event is stored: see _carry_out
        return [
            Emit(Event.COMMAND_RESULT, door=door, reason=error, extra=extra),
            Publish("cmd_result", result),
        ]
