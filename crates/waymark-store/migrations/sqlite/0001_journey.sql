-- Waymark embedded store, schema 1.
-- Ids are TEXT UUIDs; times are INTEGER milliseconds since the Unix epoch (UTC).

CREATE TABLE records (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    org_id     TEXT    NOT NULL DEFAULT '',
    name       TEXT    NOT NULL,
    name_key   TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX records_by_name ON records (kind, org_id, name_key);

CREATE TABLE customers (
    org_id     TEXT    NOT NULL,
    cookie_id  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    contact_id TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    state      BLOB    NOT NULL,
    PRIMARY KEY (org_id, cookie_id)
) WITHOUT ROWID;
CREATE INDEX customers_by_contact ON customers (org_id, contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX customers_by_id ON customers (org_id, id);
CREATE INDEX customers_by_updated ON customers (updated_ms);

CREATE TABLE sessions (
    org_id      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    customer_id TEXT,
    contact_id  TEXT,
    type        TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL,
    ended       INTEGER NOT NULL DEFAULT 0,
    external_key TEXT,
    body        TEXT    NOT NULL,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
CREATE INDEX sessions_by_contact ON sessions (org_id, contact_id, created_ms DESC, id DESC) WHERE contact_id IS NOT NULL;
CREATE INDEX sessions_by_customer ON sessions (org_id, customer_id, created_ms DESC, id DESC);
CREATE INDEX sessions_open ON sessions (last_ms) WHERE ended = 0;
CREATE INDEX sessions_by_last ON sessions (last_ms);
CREATE UNIQUE INDEX sessions_by_external ON sessions (org_id, external_key) WHERE external_key IS NOT NULL;

CREATE TABLE events (
    org_id     TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    id         TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    PRIMARY KEY (org_id, session_id, created_ms, id)
) WITHOUT ROWID;
CREATE INDEX events_by_created ON events (created_ms);

-- Idempotency keys of client-identified events (cookie id + clientEventId).
CREATE TABLE event_keys (
    org_id     TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
) WITHOUT ROWID;
CREATE INDEX event_keys_by_created ON event_keys (created_ms);

CREATE TABLE contacts (
    org_id      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    merged_into TEXT,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    search      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;

CREATE TABLE contact_identifiers (
    org_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    PRIMARY KEY (org_id, kind, value)
) WITHOUT ROWID;
CREATE INDEX contact_identifiers_by_contact ON contact_identifiers (org_id, contact_id);
