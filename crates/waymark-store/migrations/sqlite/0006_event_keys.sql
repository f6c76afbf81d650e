-- A session's events are found by the session alone: session ids are random UUIDs of this store, so the
-- organisation in front of every entry of `events_by_session` (36 identical bytes in an organisation's part of
-- the index) only lengthened each key and each comparison on the way down the b-tree. Readers still filter by
-- the row's `org_id`, so an id of another organisation finds nothing.
DROP INDEX events_by_session;
CREATE UNIQUE INDEX events_by_session ON events (session_id, created_ms, id);
-- The same for a session's own row, which every event's commit finds (twice) by its id.
DROP INDEX sessions_by_key;
CREATE UNIQUE INDEX sessions_by_key ON sessions (id);
