"""What the bridge last published per site, and how many rows each sheet had: the base
of the next delta, of versions that only grow, and of the check that refuses a sheet
cut in half. SQLite, written only after the broker acknowledged what it records."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS published (site TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sheet_rows (sheet TEXT PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS feed_cache (source TEXT PRIMARY KEY, etag TEXT, modified TEXT, body BLOB NOT NULL);
"""


class BridgeState:
    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def published(self, site: str) -> tuple[int, dict[str, Any]] | None:
        row = self.db.execute("SELECT version, doc FROM published WHERE site = ?", (site,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def record(self, site: str, version: int, doc: dict[str, Any], at: float) -> None:
        self.db.execute(
            "INSERT INTO published (site, version, doc, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(site) DO UPDATE SET version = excluded.version, doc = excluded.doc, at = excluded.at",
            (site, version, json.dumps(doc, ensure_ascii=False), at),
        )

    def sheet_rows(self, sheet: str) -> int | None:
        row = self.db.execute("SELECT rows FROM sheet_rows WHERE sheet = ?", (sheet,)).fetchone()
        return None if row is None else int(row[0])

    def record_rows(self, sheet: str, rows: int) -> None:
        self.db.execute(
            "INSERT INTO sheet_rows (sheet, rows) VALUES (?, ?) ON CONFLICT(sheet) DO UPDATE SET rows = excluded.rows",
            (sheet, rows),
        )

    def cached_feed(self, source: str) -> tuple[str | None, str | None, bytes] | None:
        row = self.db.execute("SELECT etag, modified, body FROM feed_cache WHERE source = ?", (source,)).fetchone()
        return None if row is None else (row[0], row[1], bytes(row[2]))

    def cache_feed(self, source: str, etag: str | None, modified: str | None, body: bytes) -> None:
        self.db.execute(
            "INSERT INTO feed_cache (source, etag, modified, body) VALUES (?, ?, ?, ?) ON CONFLICT(source) DO UPDATE "
            "SET etag = excluded.etag, modified = excluded.modified, body = excluded.body",
            (source, etag, modified, body),
        )

    def close(self) -> None:
        self.db.close()
