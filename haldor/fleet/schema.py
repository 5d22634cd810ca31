"""The fleet's database schema, the same for SQLite and PostgreSQL (types as
``{float}``, ``{bigint}``: :mod:`haldor.sql`), append only: each migration runs once,
in order, and an older ``fleet.db`` is brought up to date at start."""

#: "IF NOT EXISTS": a fleet.db made before the schema had this runner has these tables already
MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS sites (
        site TEXT PRIMARY KEY, online INTEGER, since {float}, status_at {float}, seen_at {float},
        schedule_version {bigint}, last_sync {float}, outbox_pending INTEGER, outbox_oldest TEXT,
        agent_version TEXT, mode TEXT, doors TEXT, readers TEXT);
    CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY, site TEXT, seq {bigint}, at TEXT, at_ts {float}, type TEXT,
        door TEXT, reader TEXT, booking TEXT, reason TEXT, usage TEXT);
    CREATE INDEX IF NOT EXISTS idx_events_site_type_at_ts ON events (site, type, at_ts);
    CREATE INDEX IF NOT EXISTS idx_events_type_at_ts ON events (type, at_ts)
    """,
    # names and the site's zone from the status; when a site's events last came (for the
    # page's refresh); the credential of access events (the access log, by id only)
    """
    ALTER TABLE sites ADD COLUMN name TEXT;
    ALTER TABLE sites ADD COLUMN timezone TEXT;
    ALTER TABLE sites ADD COLUMN names TEXT;
    ALTER TABLE sites ADD COLUMN event_at {float};
    ALTER TABLE events ADD COLUMN credential TEXT;
    CREATE INDEX IF NOT EXISTS idx_events_site_at_ts ON events (site, at_ts)
    """,
    # each booking's figures, worked out when its usage arrives: the page sums them
    """
    CREATE TABLE usage (
        id TEXT PRIMARY KEY, site TEXT NOT NULL, booking TEXT, day TEXT NOT NULL, week TEXT NOT NULL,
        room TEXT NOT NULL, association TEXT NOT NULL, room_name TEXT, association_name TEXT,
        booked_hours {float} NOT NULL, used_hours {float} NOT NULL, no_show INTEGER NOT NULL,
        closed INTEGER NOT NULL, unobserved INTEGER NOT NULL);
    CREATE INDEX idx_usage_day ON usage (day);
    CREATE INDEX idx_usage_site_day ON usage (site, day)
    """,
    # alerts: each incident once (one open per key), each message to each channel until delivered
    """
    ALTER TABLE sites ADD COLUMN storage TEXT;
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL, site TEXT NOT NULL, subject TEXT,
        detail TEXT, since {float}, opened_at {float} NOT NULL, resolved_at {float});
    CREATE UNIQUE INDEX idx_incidents_open ON incidents (key) WHERE resolved_at IS NULL;
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY, incident TEXT NOT NULL, phase TEXT NOT NULL, channel TEXT NOT NULL,
        created_at {float} NOT NULL, attempts INTEGER NOT NULL, next_at {float} NOT NULL, sent_at {float},
        last_error TEXT);
    CREATE INDEX idx_deliveries_due ON deliveries (sent_at, next_at)
    """,
    # what operators did from the page, and what the boxes answered: written, never edited
    """
    CREATE TABLE audit (
        id TEXT PRIMARY KEY, at {float} NOT NULL, who TEXT NOT NULL, role TEXT, site TEXT, action TEXT NOT NULL,
        door TEXT, detail TEXT, command TEXT, expires_at {float}, ok INTEGER, error TEXT, answered_at {float});
    CREATE INDEX idx_audit_at ON audit (at);
    CREATE INDEX idx_audit_command ON audit (command)
    """,
    # one usage per booking of a site, whatever event id carried it (a box restored from a copy reports again)
    """
    DELETE FROM usage WHERE id NOT IN (SELECT MIN(id) FROM usage GROUP BY site, booking);
    CREATE UNIQUE INDEX idx_usage_booking ON usage (site, booking)
    """,
    # every seq of every site: how far each is whole, what is missing (asked for again), what is lost for good
    """
    CREATE TABLE sequences (
        site TEXT PRIMARY KEY, complete_seq {bigint} NOT NULL, last_seq {bigint} NOT NULL, gap_since {float},
        asked_at {float}, missing {bigint} NOT NULL DEFAULT 0, lost {bigint} NOT NULL DEFAULT 0);
    CREATE TABLE lost_events (
        site TEXT NOT NULL, first_seq {bigint} NOT NULL, last_seq {bigint} NOT NULL, at {float} NOT NULL,
        PRIMARY KEY (site, first_seq));
    CREATE INDEX idx_events_site_seq ON events (site, seq);
    INSERT INTO sequences (site, complete_seq, last_seq) SELECT site, MAX(seq), MAX(seq) FROM events WHERE seq IS NOT NULL GROUP BY site
    """,
    # each booking's start, length, entries and check-ins: the dashboard's weekday-by-hour map and an
    # association's season page (filled from the events for the rows stored before, see usage_details.py)
    """
    ALTER TABLE usage ADD COLUMN start TEXT;
    ALTER TABLE usage ADD COLUMN booked_min INTEGER;
    ALTER TABLE usage ADD COLUMN entries INTEGER;
    ALTER TABLE usage ADD COLUMN checkins INTEGER;
    ALTER TABLE usage ADD COLUMN used INTEGER;
    ALTER TABLE usage ADD COLUMN weekday INTEGER;
    ALTER TABLE usage ADD COLUMN start_min INTEGER;
    CREATE INDEX idx_usage_association_day ON usage (association, day)
    """,
    # the register of boxes to enrol (issue 27): each site once, its enrolment codes only as keyed
    # hashes, the box's pinned sealing key, when it was enrolled and revoked; the key of the hashes
    """
    CREATE TABLE register (
        site TEXT PRIMARY KEY, name TEXT NOT NULL, zone TEXT NOT NULL, profile TEXT NOT NULL,
        created_at {float} NOT NULL, created_by TEXT NOT NULL, enrolled_at {float}, sealing_key TEXT,
        revoked_at {float}, revoked_by TEXT);
    CREATE TABLE enrol_codes (
        hash TEXT PRIMARY KEY, site TEXT NOT NULL, made_at {float} NOT NULL, expires_at {float} NOT NULL,
        used_at {float});
    CREATE INDEX idx_enrol_codes_site ON enrol_codes (site);
    CREATE TABLE register_secret (name TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    # the dashboard's sums kept up to date as each booking's figures arrive (usage_sums.py): per site and
    # day (site '' for every site), and the weekday-by-hour map's slots per site, room and day (room ''
    # for the whole site); each booking's hours to the hundredth, so every sum of them adds up to the same
    # figure however it is grouped (the lines of the CSV, a week, a site, the season); the association
    # ranking read from an index that holds what it sums (and serves an association's own reads, as the
    # index it replaces did), the table's first lines in the order of an index
    """
    UPDATE usage SET booked_hours = ROUND(CAST(booked_hours AS NUMERIC), 2), used_hours = ROUND(CAST(used_hours AS NUMERIC), 2);
    CREATE TABLE usage_sums (
        site TEXT NOT NULL, day TEXT NOT NULL, week TEXT NOT NULL, bookings INTEGER NOT NULL,
        booked_hours {float} NOT NULL, used_hours {float} NOT NULL, no_shows INTEGER NOT NULL,
        closed INTEGER NOT NULL, unobserved INTEGER NOT NULL, PRIMARY KEY (site, day));
    CREATE TABLE usage_slots (
        site TEXT NOT NULL, room TEXT NOT NULL, day TEXT NOT NULL, weekday INTEGER NOT NULL, start_min INTEGER NOT NULL,
        hours {float} NOT NULL, booked_hours {float} NOT NULL, used_hours {float} NOT NULL,
        PRIMARY KEY (site, room, day, start_min, hours));
    DROP INDEX idx_usage_association_day;
    CREATE INDEX idx_usage_association_site ON usage (
        association, site, day, booked_hours, used_hours, no_show, closed, unobserved, association_name);
    CREATE INDEX idx_usage_lines ON usage (week, site, room, association, day)
    """,
    # a release rolled out in stages from the page (issue 27): the rollout, and each site's stage, command
    # and outcome, so its progress survives a reload of the page
    """
    CREATE TABLE rollouts (
        id TEXT PRIMARY KEY, version TEXT NOT NULL, url TEXT NOT NULL, manifest TEXT NOT NULL, stages TEXT NOT NULL,
        test_sites TEXT NOT NULL, max_failures INTEGER NOT NULL, wait_s {float} NOT NULL, started_at {float} NOT NULL,
        started_by TEXT NOT NULL, state TEXT NOT NULL, stage INTEGER NOT NULL, ended_at {float}, why TEXT);
    CREATE TABLE rollout_sites (
        rollout TEXT NOT NULL, site TEXT NOT NULL, stage INTEGER NOT NULL, command TEXT, sent_at {float},
        outcome TEXT NOT NULL, why TEXT, PRIMARY KEY (rollout, site));
    CREATE INDEX idx_rollouts_started ON rollouts (started_at)
    """,
]
