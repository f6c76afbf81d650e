-- Contact-center conversations: every distinct lifecycle event of a conversation (JSON), so that a late event
-- re-folds its session, and tombstones of conversations refused for their channel.
CREATE TABLE conversations (
    org_id          TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    session_id      TEXT,
    refused         INTEGER NOT NULL DEFAULT 0,
    updated_ms      INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    PRIMARY KEY (org_id, conversation_id)
) WITHOUT ROWID;
CREATE INDEX conversations_by_updated ON conversations (updated_ms);
