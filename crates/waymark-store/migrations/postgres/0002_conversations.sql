-- Contact-center conversations: every distinct lifecycle event of a conversation (JSON), so that a late event
-- re-folds its session, and tombstones of conversations refused for their channel. A row with a NULL state is
-- a writer's reservation to lock a conversation not stored yet (never visible otherwise).
CREATE TABLE conversations (
    org_id          UUID    NOT NULL,
    conversation_id TEXT    NOT NULL,
    session_id      TEXT,
    refused         BOOLEAN NOT NULL DEFAULT FALSE,
    updated_ms      BIGINT  NOT NULL,
    state           TEXT,
    PRIMARY KEY (org_id, conversation_id)
);
CREATE INDEX conversations_by_updated ON conversations (updated_ms);
