//! A small, explicit schema migrator shared by both backends: numbered SQL files embedded in the binary, a
//! `schema_migrations` table with each file's SHA-256, every file applied in its own transaction, and a hard
//! error when an applied file has changed.

use sha2::{Digest, Sha256};

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.sql.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

pub const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "journey", sql: include_str!("../migrations/sqlite/0001_journey.sql") },
    Migration { version: 2, name: "conversations", sql: include_str!("../migrations/sqlite/0002_conversations.sql") },
    Migration { version: 3, name: "write_layout", sql: include_str!("../migrations/sqlite/0003_write_layout.sql") },
    Migration { version: 4, name: "event_layout", sql: include_str!("../migrations/sqlite/0004_event_layout.sql") },
    Migration { version: 5, name: "carried_state", sql: include_str!("../migrations/sqlite/0005_carried_state.sql") },
    Migration { version: 6, name: "event_keys", sql: include_str!("../migrations/sqlite/0006_event_keys.sql") },
];

pub const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "journey", sql: include_str!("../migrations/postgres/0001_journey.sql") },
    Migration { version: 2, name: "conversations", sql: include_str!("../migrations/postgres/0002_conversations.sql") },
    Migration { version: 3, name: "write_layout", sql: include_str!("../migrations/postgres/0003_write_layout.sql") },
];
