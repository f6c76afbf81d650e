-- Waymark PostgreSQL store, schema 1.
-- Organisation, customer and contact ids are UUIDs; session and event ids are their wire strings; times are
-- BIGINT milliseconds since the Unix epoch (UTC), the same values the embedded store keeps.
-- Every journey table leads with org_id: it is the Citus distribution column (see ARCHITECTURE.md).

-- Administrative records (few, read through caches). With Citus: a reference table.
CREATE TABLE records (
    kind       TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    org_id     TEXT   NOT NULL DEFAULT '',
    name       TEXT   NOT NULL,
    name_key   TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX records_by_name ON records (kind, org_id, name_key);

-- One row per cookie-keyed customer; `state` is the encoded CustomerState. A row with a NULL state is a
-- reservation made by a writer to lock a customer that does not exist yet (never visible to reads).
CREATE TABLE customers (
    org_id     UUID   NOT NULL,
    cookie_id  TEXT   NOT NULL,
    id         UUID,
    contact_id UUID,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    state      BYTEA,
    PRIMARY KEY (org_id, cookie_id)
);
CREATE INDEX customers_by_contact ON customers (org_id, contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX customers_by_id ON customers (org_id, id);
CREATE INDEX customers_by_updated ON customers (updated_ms);

CREATE TABLE sessions (
    org_id       UUID    NOT NULL,
    id           TEXT    NOT NULL,
    customer_id  UUID,
    contact_id   UUID,
    type         TEXT    NOT NULL,
    created_ms   BIGINT  NOT NULL,
    last_ms      BIGINT  NOT NULL,
    ended        BOOLEAN NOT NULL DEFAULT FALSE,
    external_key TEXT,
    body         TEXT    NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX sessions_by_contact ON sessions (org_id, contact_id, created_ms DESC, id DESC) WHERE contact_id IS NOT NULL;
CREATE INDEX sessions_by_customer ON sessions (org_id, customer_id, created_ms DESC, id DESC);
CREATE INDEX sessions_open ON sessions (last_ms) WHERE NOT ended;
CREATE INDEX sessions_by_last ON sessions (last_ms);
CREATE UNIQUE INDEX sessions_by_external ON sessions (org_id, external_key) WHERE external_key IS NOT NULL;

-- Events, range-partitioned by day on created_ms. Partitions (events_YYYYMMDD) are created ahead by the
-- store and by the maintenance job; retention drops whole partitions.
CREATE TABLE events (
    org_id     UUID   NOT NULL,
    session_id TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    id         TEXT   NOT NULL,
    type       TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    PRIMARY KEY (org_id, session_id, created_ms, id)
) PARTITION BY RANGE (created_ms);

-- Idempotency keys of client-identified events (cookie id + clientEventId).
CREATE TABLE event_keys (
    org_id     UUID   NOT NULL,
    key        TEXT   NOT NULL,
    session_id TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, key)
);
CREATE INDEX event_keys_by_created ON event_keys (created_ms);

CREATE TABLE contacts (
    org_id      UUID   NOT NULL,
    id          UUID   NOT NULL,
    merged_into UUID,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    search      TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE contact_identifiers (
    org_id     UUID NOT NULL,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    contact_id UUID NOT NULL,
    PRIMARY KEY (org_id, kind, value)
);
CREATE INDEX contact_identifiers_by_contact ON contact_identifiers (org_id, contact_id);
