//! Waymark storage.
//!
//! One [`Store`] trait, two implementations: [`sqlite::SqliteStore`] (embedded, the zero-setup default) and
//! `postgres::PgStore` (the scale-out store). Both run the **same** journey logic ([`ingest`]) inside their
//! write transaction: the customer's state is read, the pure domain functions place the event, and every
//! resulting row is written in the same transaction. A caller is answered only after the commit, so nothing
//! is acknowledged before it is durable.
//!
//! Writes are grouped: many concurrent requests share one transaction (group commit).

pub mod fingerprint;
pub mod ingest;
pub mod migrate;
pub mod packed_event;
pub mod postgres;
pub mod record;
pub mod sqlite;
pub mod types;

pub use record::{Record, RecordKind};
pub use types::*;

use async_trait::async_trait;
use waymark_domain::Timestamp;
use waymark_domain::event::Event;
use waymark_domain::ids::{ContactId, OrgId, SessionId};
use waymark_domain::web_event::CookieId;

/// What can go wrong in storage. Callers map these to `store_unavailable`/`internal` wire codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the write; the caller should retry later (503).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A unique key was taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The schema on disk does not match what this build expects.
    #[error("schema problem: {0}")]
    Schema(String),
    /// Stored data could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("internal store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The journey reads behind the read API's listings, handing back rows' JSON bodies as stored so that the API
/// writes them into its responses without decoding and re-encoding them (`waymark-server`'s `journey_wire`).
/// Same queries, order, paging and organisation scoping as the typed reads of [`Store`].
#[async_trait]
pub trait JourneyReads: Send + Sync {
    /// A session and a page of its events in time order from after the cursor, in one read; `None` when the
    /// organisation has no such session.
    async fn session_with_events_json(
        &self,
        org: OrgId,
        session: SessionId,
        page: &EventPage,
    ) -> StoreResult<Option<(SessionRecord, Vec<StoredEventJson>)>>;

    /// A contact's sessions, newest first, following merges to the surviving contact, in one read; `None`
    /// when the organisation has no such contact.
    async fn contact_sessions_json(
        &self,
        org: OrgId,
        contact: ContactId,
        page: &SessionPage,
    ) -> StoreResult<Option<Vec<StoredSessionJson>>>;

    /// A customer's (cookie id's) sessions, newest first.
    async fn customer_sessions_json(
        &self,
        org: OrgId,
        cookie: &CookieId,
        page: &SessionPage,
    ) -> StoreResult<Vec<StoredSessionJson>>;
}

/// The storage contract every backend fulfils. All methods are scoped by organisation where data belongs to
/// one; nothing ever crosses organisations.
#[async_trait]
pub trait Store: JourneyReads + Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The form in which this store keeps web events' request-side fields: [`WebItem::new`] encodes them so
    /// on the request's thread.
    fn web_fields_form(&self) -> WebFieldsForm {
        WebFieldsForm::Json
    }

    /// Apply a batch of journey inputs of one organisation. Returns one result per item, in order, after
    /// the transaction holding them has committed.
    async fn ingest(&self, batch: IngestBatch) -> StoreResult<Vec<ItemResult>>;

    /// One session.
    async fn get_session(&self, org: OrgId, id: SessionId) -> StoreResult<Option<SessionRecord>>;

    /// A session's events in time order, from after the cursor.
    async fn session_events(&self, org: OrgId, session: SessionId, page: &EventPage) -> StoreResult<Vec<Event>>;

    /// A contact's sessions (all its customers' web sessions and its conversations), newest first.
    async fn contact_sessions(
        &self,
        org: OrgId,
        contact: ContactId,
        page: &SessionPage,
    ) -> StoreResult<Vec<SessionRecord>>;

    /// A customer's (cookie id's) sessions, newest first.
    async fn customer_sessions(
        &self,
        org: OrgId,
        cookie: &CookieId,
        page: &SessionPage,
    ) -> StoreResult<Vec<SessionRecord>>;

    /// A customer by cookie id.
    async fn get_customer(&self, org: OrgId, cookie: &CookieId) -> StoreResult<Option<CustomerRecord>>;

    /// One external contact (following merges).
    async fn get_contact(&self, org: OrgId, id: ContactId) -> StoreResult<Option<Contact>>;

    /// Find contacts by name, email, phone or cookie id.
    async fn search_contacts(&self, org: OrgId, query: &ContactQuery, limit: usize) -> StoreResult<Vec<Contact>>;

    /// The session a contact-center conversation folded into, by the contact center's conversation id (`None`
    /// for unknown conversations and for those refused for their channel).
    async fn conversation_session(&self, org: OrgId, conversation_id: &str) -> StoreResult<Option<SessionId>>;

    /// Insert or replace an administrative record. With `expect_version`, fails with `Conflict` when the stored
    /// version differs (optimistic concurrency); with `unique_name`, fails when another record of the kind and
    /// organisation has the same name.
    async fn put_record(&self, record: &Record, expect_version: Option<i64>, unique_name: bool) -> StoreResult<()>;

    /// A record by kind and id (ids are globally unique).
    async fn get_record(&self, kind: RecordKind, id: &str) -> StoreResult<Option<Record>>;

    /// A record by kind, organisation (or none, for global kinds) and name (case-insensitive).
    async fn find_record(&self, kind: RecordKind, org: Option<OrgId>, name: &str) -> StoreResult<Option<Record>>;

    /// All records of a kind in an organisation (or every organisation when `org` is `None`), by name.
    async fn list_records(&self, kind: RecordKind, org: Option<OrgId>) -> StoreResult<Vec<Record>>;

    /// Delete a record; `false` when it did not exist.
    async fn delete_record(&self, kind: RecordKind, org: Option<OrgId>, id: &str) -> StoreResult<bool>;

    /// Delete everything that happened before `cutoff` (retention).
    async fn purge_before(&self, cutoff: Timestamp) -> StoreResult<PurgeReport>;

    /// Close web sessions inactive since before `idle_before`, returning them (ended) for models and the hub.
    async fn close_idle_sessions(&self, idle_before: Timestamp, limit: usize) -> StoreResult<Vec<SessionRecord>>;

    /// Counts for health and metrics.
    async fn stats(&self) -> StoreResult<StoreStats>;

    /// Run-once coordination of background jobs (retention, idle sessions, model training) across nodes:
    /// `Some(lease)` when this node should run `job` now, `None` while another node holds it. Single-node
    /// stores always grant it.
    async fn job_lease(&self, job: &str) -> StoreResult<Option<JobLease>> {
        let _ = job;
        Ok(Some(JobLease::local()))
    }

    /// Journey changes committed by **other nodes** sharing this store, for the live hub. `None` when the
    /// store has a single node (the embedded store).
    fn remote_changes(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<RemoteChange>>> {
        None
    }

    /// Read other nodes' changes back only for organisations `interest` names (by default: all of them);
    /// the others arrive as [`RemoteChange::skipped`]. A no-op on a single-node store.
    fn watch_remote(&self, interest: RemoteInterest) {
        let _ = interest;
    }
}
