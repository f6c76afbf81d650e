//! Day partitions of the `events` table (`events_YYYYMMDD`, range on `created_ms`): which exist, creating
//! them ahead (under an advisory lock, so nodes do not race), and retention by dropping whole partitions.

use super::read::{execute, query, query_opt};
use super::{Shared, pg_err, pool_err, quote_ident};
use crate::types::PurgeReport;
use crate::{StoreError, StoreResult};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashSet};
use waymark_domain::Timestamp;

const DAY_MS: i64 = 86_400_000;
/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN: i64 = 2_440_588;

/// The days whose partition this node knows to exist.
#[derive(Default)]
pub(crate) struct Partitions {
    known: Mutex<HashSet<i64>>,
}

impl Partitions {
    pub(crate) fn has(&self, day: i64) -> bool {
        self.known.lock().contains(&day)
    }

    pub(crate) fn forget(&self, day: i64) {
        self.known.lock().remove(&day);
    }
}

/// Days since the Unix epoch.
pub(crate) fn day_of(t: Timestamp) -> i64 {
    t.unix_millis().div_euclid(DAY_MS)
}

/// `events_YYYYMMDD` for a day.
pub(crate) fn name(day: i64) -> Option<String> {
    let date = time::Date::from_julian_day(i32::try_from(day + UNIX_EPOCH_JULIAN).ok()?).ok()?;
    Some(format!("events_{:04}{:02}{:02}", date.year(), date.month() as u8, date.day()))
}

/// The day of an `events_YYYYMMDD` name.
pub(crate) fn parse_name(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("events_")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..].parse().ok()?;
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.to_julian_day() as i64 - UNIX_EPOCH_JULIAN)
}

/// Existing partitions (day, name), oldest first.
pub(crate) async fn list(shared: &Shared) -> StoreResult<Vec<(i64, String)>> {
    let client = shared.pool.get().await.map_err(pool_err)?;
    let rows = query(
        &client,
        "SELECT c.relname::text FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
           JOIN pg_namespace n ON n.oid = p.relnamespace
         WHERE p.relname = 'events' AND n.nspname = $1",
        &[&shared.schema],
    )
    .await?;
    let mut out: Vec<(i64, String)> = rows
        .iter()
        .filter_map(|r| {
            let n: String = r.get(0);
            parse_name(&n).map(|d| (d, n))
        })
        .collect();
    out.sort();
    Ok(out)
}

pub(crate) async fn load_existing(shared: &Shared) -> StoreResult<()> {
    let days = list(shared).await?;
    shared.partitions.known.lock().extend(days.into_iter().map(|(d, _)| d));
    Ok(())
}

/// Create the partitions of these days if they do not exist.
pub(crate) async fn ensure(shared: &Shared, days: BTreeSet<i64>) -> StoreResult<()> {
    let missing: Vec<i64> = days.into_iter().filter(|d| !shared.partitions.has(*d)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut client = shared.pool.get().await.map_err(pool_err)?;
    let t = client.transaction().await.map_err(pg_err)?;
    let lock = format!("waymark-partitions:{}", shared.schema);
    query(&t, "SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock]).await?;
    for day in &missing {
        let name = name(*day).ok_or_else(|| StoreError::Internal(format!("no partition name for day {day}")))?;
        t.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})",
            quote_ident(&name),
            day * DAY_MS,
            (day + 1) * DAY_MS
        ))
        .await
        .map_err(pg_err)?;
    }
    t.commit().await.map_err(pg_err)?;
    tracing::debug!(days = ?missing, schema = %shared.schema, "event partitions ready");
    shared.partitions.known.lock().extend(missing);
    Ok(())
}

/// Retention: drop the partitions entirely before `cutoff`, delete older rows from the partition holding
/// it, and delete sessions, keys and customers past it. One node at a time (advisory lock); a node that
/// does not get the lock does nothing (another is doing it).
pub(crate) async fn purge_before(shared: &Shared, cutoff: Timestamp) -> StoreResult<PurgeReport> {
    let parts = list(shared).await?;
    let mut client = shared.pool.get().await.map_err(pool_err)?;
    let t = client.transaction().await.map_err(pg_err)?;
    let lock = format!("waymark-retention:{}", shared.schema);
    let got: bool = query_opt(&t, "SELECT pg_try_advisory_xact_lock(hashtext($1))", &[&lock])
        .await?
        .map(|r| r.get(0))
        .unwrap_or(false);
    if !got {
        return Ok(PurgeReport::default());
    }
    let cut = cutoff.unix_millis();
    let mut report = PurgeReport::default();
    let mut dropped = Vec::new();
    for (day, name) in parts {
        if (day + 1) * DAY_MS > cut {
            continue;
        }
        // The planner's row estimate: counting a whole day exactly would read it, defeating the drop.
        let estimate: i64 = query_opt(
            &t,
            "SELECT GREATEST(reltuples, 0)::int8 FROM pg_class WHERE oid = to_regclass($1)",
            &[&format!("{}.{}", quote_ident(&shared.schema), quote_ident(&name))],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0);
        t.batch_execute(&format!("DROP TABLE IF EXISTS {}", quote_ident(&name))).await.map_err(pg_err)?;
        report.events += estimate as u64;
        dropped.push(day);
    }
    report.events += execute(&t, "DELETE FROM events WHERE created_ms < $1", &[&cut]).await?;
    report.sessions = execute(&t, "DELETE FROM sessions WHERE created_ms < $1 AND last_ms < $1", &[&cut]).await?;
    report.customers = execute(
        &t,
        // `updated_ms` lags a customer's activity by up to an hour (it moves only when an hour behind).
        "DELETE FROM customers WHERE updated_ms < $1::int8 - 3600000 AND state IS NOT NULL",
        &[&cut],
    )
    .await?;
    execute(&t, "DELETE FROM conversations WHERE updated_ms < $1 AND state IS NOT NULL", &[&cut]).await?;
    t.commit().await.map_err(pg_err)?;
    let mut known = shared.partitions.known.lock();
    for d in dropped {
        known.remove(&d);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        assert_eq!(name(0).as_deref(), Some("events_19700101"));
        let day = day_of(Timestamp::parse("2026-11-24T18:00:00Z").unwrap());
        assert_eq!(name(day).as_deref(), Some("events_20261124"));
        for d in [0, 1, 365, 20_000, day] {
            assert_eq!(parse_name(&name(d).unwrap()), Some(d));
        }
        assert_eq!(parse_name("events_2026112"), None);
        assert_eq!(parse_name("events_20261340"), None);
        assert_eq!(parse_name("sessions"), None);
    }
}
