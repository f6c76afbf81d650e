-- Write layout for sustained ingest.
--
-- Retried events are recognised by the client event ids remembered in the customer's state (one random
-- index entry per event less); the table of idempotency keys is gone.
DROP TABLE event_keys;

-- A session row is updated on every commit that touches it. PostgreSQL can update a row in place (a HOT
-- update: no new entry in any index) only when no indexed value changes and the page has room. `last_ms`
-- changes every time, so it is no longer indexed: open sessions are found by a 5-minute bucket of it, which
-- changes at most every 5 minutes, and retention finds sessions by `created_ms`.
ALTER TABLE sessions ADD COLUMN idle_bucket BIGINT GENERATED ALWAYS AS (last_ms / 300000) STORED;
DROP INDEX sessions_open;
DROP INDEX sessions_by_last;
CREATE INDEX sessions_open ON sessions (idle_bucket) WHERE NOT ended;
CREATE INDEX sessions_by_created ON sessions (created_ms);
ALTER TABLE sessions SET (fillfactor = 80);
-- A customer's `updated_ms` (indexed for retention) now moves only when it is an hour behind.
ALTER TABLE customers SET (fillfactor = 80);
