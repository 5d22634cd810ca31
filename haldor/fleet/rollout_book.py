"""A rollout's rows in the fleet's database (issue 27): the rollout, each site's stage,
command and outcome, and what the boxes said (their answers on the audit log's rows,
their versions in their statuses). Kept there so the page shows the same progress after
a reload, whichever of its requests asks."""

from __future__ import annotations

import json
import uuid
from typing import Any

from haldor.integrator.stages import outcome
from haldor.records import record
from haldor.sql import Database

ROLLOUT_COLUMNS = (
    "id",
    "version",
    "url",
    "stages",
    "test_sites",
    "max_failures",
    "wait_s",
    "started_at",
    "started_by",
    "state",
    "stage",
    "ended_at",
    "why",
)


@record
class Planned:
    """A rollout checked and planned, before it starts: what the page shows for a yes."""

    version: str
    url: str
    manifest: dict[str, Any]
    stages: list[str]
    test_sites: list[str]
    max_failures: int
    wait_s: float
    sites: list[list[str]]
    skipped: list[str]


class RolloutBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, planned: Planned, by: str, now: float) -> str:
        rollout = str(uuid.uuid4())
        with self.db.transaction():
            self.db.execute(
                f"INSERT INTO rollouts({', '.join(ROLLOUT_COLUMNS[:11])}, manifest) VALUES ({', '.join('?' * 12)})",
                [
                    rollout,
                    planned.version,
                    planned.url,
                    json.dumps(planned.stages),
                    json.dumps(planned.test_sites),
                    planned.max_failures,
                    planned.wait_s,
                    now,
                    by,
                    "running",
                    0,
                    json.dumps(planned.manifest),
                ],
            )
            rows = [[rollout, s, i, "planned"] for i, sites in enumerate(planned.sites) for s in sites]
            rows += [[rollout, s, -1, "skipped"] for s in planned.skipped]
            if rows:
                self.db.executemany("INSERT INTO rollout_sites(rollout, site, stage, outcome) VALUES (?, ?, ?, ?)", rows)
        return rollout

    def stage(self, rollout: str, stage: int) -> None:
        self.db.execute("UPDATE rollouts SET stage = ? WHERE id = ?", [stage, rollout])

    def sent(self, rollout: str, site: str, command: str, now: float) -> None:
        self.db.execute(
            "UPDATE rollout_sites SET command = ?, sent_at = ?, outcome = 'sent' WHERE rollout = ? AND site = ?",
            [command, now, rollout, site],
        )

    def settle(self, rollout: str, site: str, result: str, why: str | None) -> None:
        self.db.execute(
            "UPDATE rollout_sites SET outcome = ?, why = ? WHERE rollout = ? AND site = ? AND outcome = 'sent'",
            [result, why, rollout, site],
        )

    def end(self, rollout: str, state: str, why: str | None, now: float) -> None:
        self.db.execute(
            "UPDATE rollouts SET state = ?, why = ?, ended_at = ? WHERE id = ? AND state = 'running'", [state, why, now, rollout]
        )

    def judge(self, rollout: str, stage: int, target: str) -> int:
        """Each sent site of the stage settled as done or failed once its answer and status
        say so; how many are still waited for."""
        rows = self.db.rows(
            "SELECT r.site, a.ok, a.error, a.answered_at, s.agent_version FROM rollout_sites r "
            "LEFT JOIN audit a ON a.command = r.command AND a.site = r.site LEFT JOIN sites s ON s.site = r.site "
            "WHERE r.rollout = ? AND r.stage = ? AND r.outcome = 'sent'",
            [rollout, stage],
        )
        waiting = 0
        for site, ok, error, answered_at, version in rows:
            result = None if answered_at is None else {"ok": bool(ok), "error": error}
            why = outcome(result, version, target)
            if why is None:
                self.settle(rollout, site, "done", None)
            elif why:
                self.settle(rollout, site, "failed", why)
            else:
                waiting += 1
        return waiting

    def unanswered(self, rollout: str, stage: int, why: str) -> None:
        """What the stage's wait ran out on counts as failed."""
        self.db.execute(
            "UPDATE rollout_sites SET outcome = 'failed', why = ? WHERE rollout = ? AND stage = ? AND outcome IN ('sent', 'planned')",
            [why, rollout, stage],
        )

    def counts(self, rollout: str) -> dict[int, dict[str, int]]:
        """Per stage (-1: skipped), how many sites are in each outcome."""
        counts: dict[int, dict[str, int]] = {}
        for stage, result, n in self.db.rows(
            "SELECT stage, outcome, COUNT(*) FROM rollout_sites WHERE rollout = ? GROUP BY stage, outcome", [rollout]
        ):
            counts.setdefault(int(stage), {})[str(result)] = int(n)
        return counts

    def failures(self, rollout: str, stage: int | None = None) -> list[tuple[str, str]]:
        clause, params = (" AND stage = ?", [rollout, stage]) if stage is not None else ("", [rollout])
        return [
            (str(site), str(why or ""))
            for site, why in self.db.rows(
                f"SELECT site, why FROM rollout_sites WHERE rollout = ? AND outcome = 'failed'{clause} ORDER BY site", params
            )
        ]

    def latest(self) -> dict[str, Any] | None:
        row = self.db.one(f"SELECT {', '.join(ROLLOUT_COLUMNS)} FROM rollouts ORDER BY started_at DESC LIMIT 1")
        if row is None:
            return None
        doc = dict(zip(ROLLOUT_COLUMNS, row, strict=True))
        doc["stages"], doc["test_sites"] = json.loads(doc["stages"]), json.loads(doc["test_sites"])
        return doc

    def versions(self) -> dict[str, str | None]:
        """Every site's release, as its status says (None: not known)."""
        return {str(site): (str(v) if v else None) for site, v in self.db.rows("SELECT site, agent_version FROM sites")}
