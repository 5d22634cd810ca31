"""What the bridge last published per site, how many rows each sheet had, the feeds'
``ETag``s, and what each feed and sheet gave when it was last parsed: the base of the
next delta, of versions that only grow, of the check that refuses a sheet cut in half,
and of a run that parses only what changed. SQLite by default, PostgreSQL for a
``postgresql://`` URL (the same schema, :mod:`haldor.sql`); a publication is recorded
only after the broker acknowledged it."""

from __future__ import annotations

import json
from typing import Any

from haldor.sql import Database

MIGRATIONS = [
    """
    CREATE TABLE bridge_published (site TEXT PRIMARY KEY, version {bigint} NOT NULL, doc TEXT NOT NULL, at {float} NOT NULL);
    CREATE TABLE bridge_sheet_rows (sheet TEXT PRIMARY KEY, rows INTEGER NOT NULL);
    CREATE TABLE bridge_feed_cache (source TEXT PRIMARY KEY, etag TEXT, modified TEXT, body {blob} NOT NULL)
    """,
    # what each feed and sheet gave at its last parse, under the hash of all it depends on
    "CREATE TABLE bridge_parsed (input TEXT PRIMARY KEY, key TEXT NOT NULL, result TEXT NOT NULL)",
]


class BridgeState:
    def __init__(self, target: str) -> None:
        self.db = Database.open(target)
        self.db.migrate("bridge", MIGRATIONS)

    def published(self, site: str) -> tuple[int, dict[str, Any] | None] | None:
        """The version and snapshot last published (snapshot None: forgotten, see ``forget``)."""
        row = self.db.one("SELECT version, doc FROM bridge_published WHERE site = ?", (site,))
        return None if row is None else (int(row[0]), json.loads(row[1]))

    def record(self, site: str, version: int, doc: dict[str, Any], at: float) -> None:
        self.db.execute(
            "INSERT INTO bridge_published (site, version, doc, at) VALUES (?, ?, ?, ?) ON CONFLICT (site) "
            "DO UPDATE SET version = excluded.version, doc = excluded.doc, at = excluded.at",
            (site, version, json.dumps(doc, ensure_ascii=False), at),
        )

    def forget(self, site: str) -> None:
        """A site whose box refused what it was sent: the next run sends a fresh snapshot
        (its version still above the refused one)."""
        self.db.execute("UPDATE bridge_published SET doc = 'null' WHERE site = ?", (site,))

    def sheet_rows(self, sheet: str) -> int | None:
        row = self.db.one("SELECT rows FROM bridge_sheet_rows WHERE sheet = ?", (sheet,))
        return None if row is None else int(row[0])

    def record_rows(self, sheet: str, rows: int) -> None:
        self.db.execute(
            "INSERT INTO bridge_sheet_rows (sheet, rows) VALUES (?, ?) ON CONFLICT (sheet) DO UPDATE SET rows = excluded.rows",
            (sheet, rows),
        )

    def forget_rows(self, sheet: str) -> None:
        self.db.execute("DELETE FROM bridge_sheet_rows WHERE sheet = ?", (sheet,))

    def cached_feed(self, source: str) -> tuple[str | None, str | None, bytes] | None:
        row = self.db.one("SELECT etag, modified, body FROM bridge_feed_cache WHERE source = ?", (source,))
        return None if row is None else (row[0], row[1], bytes(row[2]))

    def cache_feed(self, source: str, etag: str | None, modified: str | None, body: bytes) -> None:
        self.db.execute(
            "INSERT INTO bridge_feed_cache (source, etag, modified, body) VALUES (?, ?, ?, ?) ON CONFLICT (source) "
            "DO UPDATE SET etag = excluded.etag, modified = excluded.modified, body = excluded.body",
            (source, etag, modified, body),
        )

    def parsed(self, name: str, key: str) -> Any | None:
        """What ``name`` gave when it was last parsed, if that was under ``key``."""
        row = self.db.one("SELECT result FROM bridge_parsed WHERE input = ? AND key = ?", (name, key))
        return None if row is None else json.loads(row[0])

    def record_parsed(self, name: str, key: str, result: Any) -> None:
        self.record_all_parsed({name: (key, result)})

    def record_all_parsed(self, parsed: dict[str, tuple[str, Any]], keep: set[str] | None = None) -> None:
        """One row per input, a new key replacing the old one, in one transaction (2,000
        commits cost a first run over a second); ``keep``: the inputs still configured,
        the others' rows go."""
        rows = [(name, key, json.dumps(result, ensure_ascii=False)) for name, (key, result) in parsed.items()]
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO bridge_parsed (input, key, result) VALUES (?, ?, ?) ON CONFLICT (input) "
                "DO UPDATE SET key = excluded.key, result = excluded.result",
                rows,
            )
            if keep is not None:
                gone = [(name,) for (name,) in self.db.rows("SELECT input FROM bridge_parsed") if name not in keep]
                self.db.executemany("DELETE FROM bridge_parsed WHERE input = ?", gone)

    def forget_feeds(self) -> None:
        self.db.execute("DELETE FROM bridge_feed_cache")

    def close(self) -> None:
        self.db.close()
