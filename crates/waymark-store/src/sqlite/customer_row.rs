//! How the embedded store keeps a customer's state between events: the customer row, and the part of the state
//! that changes with every event, which the current session's row carries between two writes of the customer
//! row.
//!
//! Most events change few fields of a [`CustomerState`]: its version and totals, its recent `clientEventId`s and
//! the current session's first and last event times ([`CarriedPart`]). The writer rewrites the event's session
//! row anyway, so those fields ride in that row's `carried` column, and the customer row (LZ4-compressed JSON,
//! a page of its own in each commit's WAL) is written only when the rest of the state changes (a new session,
//! an identify, a rule or offer change), or when its indexed activity time would lag too far behind. Which of
//! the two a save needs is told by a fingerprint of the rest ([`fingerprint`]), kept with the state in memory
//! ([`StoredMark`]). [`load_state`] reads the customer row and lays a newer carried part over it.

use super::sql_err;
use super::tx::CUSTOMER_UPDATED_SLACK_MS;
use crate::ingest::{decode_session, decode_stored_state, encode_state_sessions_apart, with_sessions_stubbed};
use crate::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use waymark_domain::Timestamp;
use waymark_domain::ids::OrgId;
use waymark_domain::journey::{CustomerState, RecentClientEvents, StoredMark};

/// The customer row's indexed activity time moves once it lags the state's activity by more than this; the
/// current session's row carries the state no longer than the activity stays within this of the customer
/// row's last write. Together the column lags by at most [`CUSTOMER_UPDATED_SLACK_MS`], which retention allows.
const ACTIVITY_STEP_MS: i64 = CUSTOMER_UPDATED_SLACK_MS / 2;

/// The fields of a [`CustomerState`] that change with every event, as the current session's row carries them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CarriedPart {
    version: i64,
    total_events: i64,
    total_pageviews: i64,
    first_at: Timestamp,
    last_at: Timestamp,
    recent_client_events: RecentClientEvents,
}

/// Format byte, then five little-endian `i64`s, then the packed client event ids.
const CARRIED_FORMAT: u8 = 1;
const CARRIED_HEADER_BYTES: usize = 1 + 5 * 8;

impl CarriedPart {
    /// The carried part of `state`, or `None` when it has no current session to carry it.
    fn of(state: &CustomerState) -> Option<CarriedPart> {
        let current = state.current.as_ref()?;
        Some(CarriedPart {
            version: state.version,
            total_events: state.total_events,
            total_pageviews: state.total_pageviews,
            first_at: current.first_at,
            last_at: current.last_at,
            recent_client_events: state.recent_client_events.clone(),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CARRIED_HEADER_BYTES + 14 * self.recent_client_events.len());
        out.push(CARRIED_FORMAT);
        for n in [
            self.version,
            self.total_events,
            self.total_pageviews,
            self.first_at.unix_millis(),
            self.last_at.unix_millis(),
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        self.recent_client_events.pack_into(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> StoreResult<CarriedPart> {
        let corrupt = || StoreError::Corrupt(format!("carried customer state of {} bytes", bytes.len()));
        if bytes.len() < CARRIED_HEADER_BYTES || bytes[0] != CARRIED_FORMAT {
            return Err(corrupt());
        }
        let mut n = [0i64; 5];
        for (i, chunk) in bytes[1..CARRIED_HEADER_BYTES].chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            n[i] = i64::from_le_bytes(b);
        }
        Ok(CarriedPart {
            version: n[0],
            total_events: n[1],
            total_pageviews: n[2],
            first_at: Timestamp::from_unix_millis(n[3]),
            last_at: Timestamp::from_unix_millis(n[4]),
            recent_client_events: RecentClientEvents::unpack(&bytes[CARRIED_HEADER_BYTES..]).ok_or_else(corrupt)?,
        })
    }

    /// Lay this part over `state` read from its customer row, if it is newer than the row.
    fn lay_over(self, state: &mut CustomerState) {
        if self.version <= state.version {
            return;
        }
        let Some(current) = state.current.as_mut() else { return };
        current.first_at = self.first_at;
        current.last_at = self.last_at;
        state.version = self.version;
        state.total_events = self.total_events;
        state.total_pageviews = self.total_pageviews;
        state.recent_client_events = self.recent_client_events;
    }
}

/// A fingerprint of everything `state`'s customer row holds except the [`CarriedPart`]: two states with the
/// same fingerprint differ at most in what the current session's row can carry. `None` if the state cannot be
/// fingerprinted (then its row is written each time). The state is borrowed mutably only to swap the carried
/// fields and the sessions' bodies out while it is hashed; it comes back as it was.
pub(crate) fn fingerprint(state: &mut CustomerState) -> Option<u64> {
    let recent = std::mem::take(&mut state.recent_client_events);
    let counts = (state.version, state.total_events, state.total_pageviews);
    (state.version, state.total_events, state.total_pageviews) = (0, 0, 0);
    let zero = Timestamp::from_unix_millis(0);
    let times = state
        .current
        .as_mut()
        .map(|c| (std::mem::replace(&mut c.first_at, zero), std::mem::replace(&mut c.last_at, zero)));
    let hashed = with_sessions_stubbed(state, crate::fingerprint::fingerprint);
    if let (Some(c), Some((first, last))) = (state.current.as_mut(), times) {
        (c.first_at, c.last_at) = (first, last);
    }
    (state.version, state.total_events, state.total_pageviews) = counts;
    state.recent_client_events = recent;
    hashed
}

/// The activity time a customer row is indexed by.
fn activity_ms(state: &CustomerState) -> i64 {
    state.current.as_ref().map_or(state.created, |c| c.last_at).unix_millis()
}

/// Save `state`: write its customer row, or, when only its carried part changed since the row was written and
/// `session_row_written` (its current session's row is written in the same transaction), return the carried
/// part for that row to hold instead.
pub(crate) fn save(
    conn: &Connection,
    org: OrgId,
    state: &mut CustomerState,
    session_row_written: bool,
) -> StoreResult<Option<Vec<u8>>> {
    let print = fingerprint(state).unwrap_or(0);
    let activity = activity_ms(state);
    let mark = state.stored;
    if session_row_written
        && mark.fingerprint == print
        && print != 0
        && activity.saturating_sub(mark.activity_ms) <= ACTIVITY_STEP_MS
        && let Some(part) = CarriedPart::of(state)
    {
        metrics::counter!("waymark_store_customer_saves_total", "write" => "carried").increment(1);
        return Ok(Some(part.encode()));
    }
    write_row(conn, org, state, activity)?;
    state.stored = StoredMark { fingerprint: print, activity_ms: activity };
    metrics::counter!("waymark_store_customer_saves_total", "write" => "row").increment(1);
    Ok(None)
}

/// Write a customer's row: the state in place (no index changes), the indexed contact and activity time only
/// when they changed (activity: by more than [`ACTIVITY_STEP_MS`]). The state is stored without its open
/// sessions' bodies: they are the session rows this transaction writes too, and a state half the size puts
/// twice as many of the visitors active at once on each page a commit rewrites.
fn write_row(conn: &Connection, org: OrgId, state: &mut CustomerState, activity: i64) -> StoreResult<()> {
    let blob = encode_state_sessions_apart(state)?;
    let o = org.to_text();
    let contact = state.contact_id.map(|c| c.to_text());
    let changed = conn
        .prepare_cached("UPDATE customers SET version = ?3, state = ?4 WHERE org_id = ?1 AND cookie_id = ?2")
        .map_err(sql_err)?
        .execute(params![o, state.cookie_id.as_str(), state.version, blob])
        .map_err(sql_err)?;
    if changed == 0 {
        conn.prepare_cached(
            "INSERT INTO customers (org_id, cookie_id, id, contact_id, created_ms, updated_ms, version, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql_err)?
        .execute(params![
            o,
            state.cookie_id.as_str(),
            state.customer_id.to_text(),
            contact,
            state.created.unix_millis(),
            activity,
            state.version,
            blob
        ])
        .map_err(sql_err)?;
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE customers SET contact_id = ?3, updated_ms = MAX(updated_ms, ?4)
         WHERE org_id = ?1 AND cookie_id = ?2 AND (contact_id IS NOT ?3 OR updated_ms < ?4 - ?5)",
    )
    .map_err(sql_err)?
    .execute(params![o, state.cookie_id.as_str(), contact, activity, ACTIVITY_STEP_MS])
    .map_err(sql_err)?;
    Ok(())
}

/// Decode a customer row's state, with its open sessions read from their rows and the current session's
/// carried part laid over it.
pub(crate) fn load_state(conn: &Connection, org: OrgId, blob: &[u8]) -> StoreResult<CustomerState> {
    let o = org.to_text();
    let stored = decode_stored_state(blob)?;
    let current = stored.state.current.as_ref().map(|c| c.session.id.clone());
    let mut carried = None;
    let mut state = stored.rehydrate(|id| {
        let row: Option<(String, Option<Vec<u8>>)> = conn
            .prepare_cached("SELECT body, carried FROM sessions WHERE org_id = ?1 AND id = ?2")
            .map_err(sql_err)?
            .query_row(params![o, id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sql_err)?;
        let Some((body, part)) = row else { return Ok(None) };
        if current.as_deref() == Some(id) {
            carried = part;
        }
        decode_session(&body).map(Some)
    })?;
    if let Some(bytes) = carried {
        CarriedPart::decode(&bytes)?.lay_over(&mut state);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_domain::ids::{ContactId, CustomerId};
    use waymark_domain::web_event::CookieId;

    fn state_with_session() -> CustomerState {
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        let mut state = CustomerState::new(CustomerId(uuid::Uuid::nil()), CookieId::parse("c").unwrap(), at);
        state.current = Some(Box::new(waymark_domain::journey::OpenSession {
            session: waymark_domain::session::Session::new("s1".into(), waymark_domain::session::SessionType::Web, at),
            first_at: at,
            last_at: at,
            source: None,
            rules: Default::default(),
            offers: Default::default(),
        }));
        state
    }

    #[test]
    fn carried_part_round_trips_and_refuses_damage() {
        let mut state = state_with_session();
        for i in 0..5 {
            state.recent_client_events.remember(
                &format!("e{i}"),
                Timestamp::from_unix_millis(1_800_000_000_000 + i),
                3_600,
            );
        }
        (state.version, state.total_events, state.total_pageviews) = (7, 5, 3);
        let part = CarriedPart::of(&state).unwrap();
        let bytes = part.encode();
        assert_eq!(bytes.len(), CARRIED_HEADER_BYTES + 5 * 14);
        assert_eq!(CarriedPart::decode(&bytes).unwrap(), part);
        for bad in [&bytes[..CARRIED_HEADER_BYTES - 1], &bytes[..bytes.len() - 1], &[]] {
            assert!(matches!(CarriedPart::decode(bad), Err(StoreError::Corrupt(_))), "{} bytes", bad.len());
        }
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(CarriedPart::decode(&other).is_err(), "an unknown format is refused");
    }

    #[test]
    fn a_carried_part_is_laid_over_an_older_row_only() {
        let mut newer = state_with_session();
        (newer.version, newer.total_events) = (9, 4);
        newer.current.as_mut().unwrap().last_at = Timestamp::from_unix_millis(1_800_000_060_000);
        newer.recent_client_events.remember("x", Timestamp::from_unix_millis(1_800_000_060_000), 3_600);
        let part = CarriedPart::of(&newer).unwrap();

        let mut row = state_with_session();
        (row.version, row.total_events) = (6, 1);
        part.clone().lay_over(&mut row);
        assert_eq!(row, newer, "the row's state plus the carried part is the newer state");

        let mut fresher = state_with_session();
        (fresher.version, fresher.total_events) = (10, 5);
        let before = fresher.clone();
        part.lay_over(&mut fresher);
        assert_eq!(fresher, before, "an older carried part changes nothing");
    }

    #[test]
    fn the_fingerprint_ignores_the_carried_part_only() {
        let mut state = state_with_session();
        let base = fingerprint(&mut state).unwrap();
        let kept = state.clone();
        assert_eq!(state, kept, "fingerprinting gives the state back as it was");

        let mut carried = state.clone();
        (carried.version, carried.total_events, carried.total_pageviews) = (3, 2, 1);
        carried.current.as_mut().unwrap().last_at = Timestamp::from_unix_millis(1_800_000_500_000);
        carried.current.as_mut().unwrap().session.event_count = 2;
        carried.recent_client_events.remember("x", Timestamp::from_unix_millis(1_800_000_500_000), 3_600);
        assert_eq!(fingerprint(&mut carried).unwrap(), base, "carried fields and session bodies are left out");

        let mut identified = state.clone();
        identified.contact_id = Some(ContactId(uuid::Uuid::from_u128(1)));
        let mut authenticated = state.clone();
        authenticated.authenticated = true;
        let mut new_session = state.clone();
        new_session.previous = new_session.current.take();
        let mut counted = state.clone();
        counted.rules.counters.insert(1, 1);
        for (what, mut changed) in
            [("contact", identified), ("authenticated", authenticated), ("sessions", new_session), ("rules", counted)]
        {
            assert_ne!(fingerprint(&mut changed).unwrap(), base, "a change of {what} changes the fingerprint");
        }
    }
}
