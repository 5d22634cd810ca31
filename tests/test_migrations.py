"""One migration runner for every database Haldor owns (haldor.migrations): the box's store,
and the fleet's, the bridge's and the operators' schemas on SQLite or PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from haldor import migrations
from haldor.sql import Database
from haldor.store import Store
from haldor.store.migrations import MIGRATIONS

STEPS = ("CREATE TABLE a (x INTEGER)", "CREATE TABLE b (x {blob}); INSERT INTO a (x) VALUES (1)")


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path) -> str:
    return str(tmp_path / "t.db") if request.param == "sqlite" else request.getfixturevalue("postgres").database()


def test_a_store_counted_in_sqlites_header_is_taken_up_where_it_stood(tmp_path):
    """Every box made before the one runner counted its schema in ``PRAGMA user_version``:
    its steps are not run again (they would fail: the tables are there)."""
    Store.open(tmp_path, "s").close()
    conn = sqlite3.connect(tmp_path / "haldor.db")
    conn.executescript(f"DROP TABLE haldor_schema; DROP TABLE booking_known; PRAGMA user_version = {len(MIGRATIONS) - 1};")
    conn.close()
    store = Store.open(tmp_path, "s")
    try:
        assert store.db.execute("SELECT version FROM haldor_schema WHERE name = 'store'").fetchone()[0] == len(MIGRATIONS)
        assert store.db.execute("SELECT count(*) FROM booking_known").fetchone()[0] == 0  # the last step ran, once
    finally:
        store.close()


def test_a_step_that_fails_leaves_the_schema_at_the_one_before_and_nothing_of_itself(target):
    db = Database.open(target)
    try:
        with pytest.raises(Exception, match="already exists"):
            db.migrate("t", (STEPS[0], "CREATE TABLE c (x INTEGER); CREATE TABLE a (y INTEGER)"))
        assert migrations.version(db.conn, db.kind, "t") == 1
        with pytest.raises(Exception):  # noqa: B017 (the driver's own error: sqlite3 or psycopg)
            db.execute("SELECT * FROM c")
        db.migrate("t", STEPS)
        assert migrations.version(db.conn, db.kind, "t") == 2
        assert db.rows("SELECT x FROM a") == [(1,)]
    finally:
        db.close()


def test_schemas_in_one_database_are_counted_apart(target):
    db = Database.open(target)
    try:
        db.migrate("one", STEPS[:1])
        db.migrate("two", ("CREATE TABLE t2 (x INTEGER)",))
        assert (migrations.version(db.conn, db.kind, "one"), migrations.version(db.conn, db.kind, "two")) == (1, 1)
        assert migrations.version(db.conn, db.kind, "three") is None
    finally:
        db.close()


def test_services_starting_at_once_on_a_new_database_run_each_step_once(target):
    """Two services on one new database (two fleet processes of a shared group): one runs a
    step, the other waits for it and finds it done (the advisory lock on PostgreSQL,
    SQLite's write lock on a file)."""
    dbs = [Database.open(target) for _ in range(4)]
    failures: list[BaseException] = []

    def start(db: Database) -> None:
        try:
            db.migrate("t", STEPS)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert failures == []
        assert dbs[0].rows("SELECT x FROM a") == [(1,)]  # the second step's insert ran once
    finally:
        for db in dbs:
            db.close()
