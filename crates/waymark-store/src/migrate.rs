//! A small, explicit schema migrator shared by both backends: numbered SQL files embedded in the binary, a
//! `schema_migrations` table with each file's SHA-256, every file applied in its own transaction, and a hard
//! error when an applied file has changed or when the store was migrated by a newer build.

use crate::StoreError;
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

/// Refuse a store whose highest applied migration (`applied_max`) is one this build does not have: a newer
/// build wrote it, and this one may not read what that build stores (the embedded store's packed event bodies
/// were such a change). Nothing is migrated or written then.
pub fn refuse_newer(applied_max: Option<i64>, migrations: &[Migration], store: &str) -> Result<(), StoreError> {
    let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    match applied_max {
        Some(v) if v > known => Err(StoreError::Schema(format!(
            "{store} has schema version {v}, newer than this build of Waymark knows ({known}): a newer Waymark \
             wrote it. Run that version (or newer), or restore a backup taken before the upgrade"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod refuse_newer_tests {
    use super::*;

    #[test]
    fn a_store_from_a_newer_build_is_refused_with_what_to_do() {
        let known = SQLITE.iter().map(|m| m.version).max().unwrap();
        assert!(refuse_newer(None, SQLITE, "the store").is_ok(), "a fresh store");
        assert!(refuse_newer(Some(known), SQLITE, "the store").is_ok(), "this build's own store");
        assert!(refuse_newer(Some(known - 1), SQLITE, "the store").is_ok(), "an older store is migrated");
        let e = refuse_newer(Some(known + 1), SQLITE, "the store at /d/waymark.db").unwrap_err().to_string();
        assert!(e.contains(&format!("schema version {}", known + 1)) && e.contains("/d/waymark.db"), "{e}");
        assert!(e.contains("newer Waymark"), "{e}");
    }
}
