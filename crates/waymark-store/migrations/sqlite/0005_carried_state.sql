-- A web session's row carries the part of its customer's state that changes with every event (version, totals,
-- recent client event ids, the session's first and last event times) while it is the customer's current
-- session, so that most events rewrite the session row only and not the customer row as well. NULL: the
-- customer row holds the whole state.
ALTER TABLE sessions ADD COLUMN carried BLOB;
